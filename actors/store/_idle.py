"""Idle CPU priority for background work (the archive child, ``tapgrid
backup``): on a box the server fills, that work then takes only CPU nobody
else wants, so taps never queue behind it.

    >>> with idle_priority() as how:
    ...     how in ("sched_idle", "nice", "none")
    True
"""
import contextlib
import os

__all__ = ["idle_priority", "lower_priority", "nice_thread"]


def lower_priority():
    """Put the calling thread (Linux: the process, when called from its only
    thread) on ``SCHED_IDLE``, else nice 19. Returns how: ``"sched_idle"``,
    ``"nice"`` or ``"none"``."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "sched_idle"
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
        return "nice"
    except (AttributeError, OSError):
        return "none"


def nice_thread(nice=10):
    """The calling thread back on ``SCHED_OTHER`` (from an inherited
    ``SCHED_IDLE``) at ``nice``: for work that must progress on a box other
    processes keep busy, yet yield to the server. True when it took."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, nice)    # Linux: this thread only
        return True
    except (AttributeError, OSError):
        return False


@contextlib.contextmanager
def idle_priority():
    """``lower_priority`` for the block, the old policy and nice restored after."""
    try:
        policy = os.sched_getscheduler(0)
        param = os.sched_getparam(0)
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        policy = None
    how = lower_priority()
    try:
        yield how
    finally:
        if policy is not None:
            try:
                os.sched_setscheduler(0, policy, param)
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError:     # not allowed back up (an unprivileged user): stays low
                pass
