"""Idle CPU priority for background work (the archive child, ``tapgrid
backup``): on a box the server fills, that work then takes only CPU nobody
else wants, so taps never queue behind it.

    >>> with idle_priority() as how:
    ...     how in ("sched_idle", "nice", "none")
    True
"""
import contextlib
import os

__all__ = ["idle_priority", "lower_priority", "nice_thread", "favour_thread", "FAVOUR_NICE"]

#: the Writer's commit thread's nice: it wakes from each fsync holding every
#: tap of its batch, and at nice 0 it queued behind the event loop (its own
#: process) for a CPU while the other CPU ran the archive child (stop 24's
#: ``perf sched``); at -10 its weight is ~9x the loop's, so a wake-up takes
#: the CPU at once. It sleeps on the disk nearly all the time, so it never
#: takes more than its few hundred µs a commit.
FAVOUR_NICE = -10


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


def favour_thread(nice=FAVOUR_NICE):
    """The calling thread (only it: Linux's nice is per thread) at ``nice``,
    below 0: ahead of its own process's other threads and of background
    work for a CPU. Needs CAP_SYS_NICE (or ``LimitNICE=`` under systemd):
    without it the thread stays as it was. Returns the nice it now has, or
    None when it could not be raised."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        return None


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
