"""Idle CPU priority for background work (the archive child, ``tapgrid
backup``): on a box the server fills, that work then takes only CPU nobody
else wants, so taps never queue behind it.

    >>> with idle_priority() as how:
    ...     how in ("sched_idle", "nice", "none")
    True
"""
import contextlib
import os

__all__ = ["idle_priority", "lower_priority", "nice_thread", "favour_thread", "FAVOUR_NICE",
           "FAVOUR_RT_PRIORITY"]

#: the Writer's commit thread: it wakes from each fsync holding every tap of
#: its batch. At nice 0 it queued for a CPU behind the event loop (its own
#: process) while the other CPU ran the archive child (stop 24's ``perf
#: sched``); at nice -10 its commits' p99 still rose 2-3.5 ms while
#: archiving (stop 26, perf/README). ``SCHED_FIFO`` at the lowest real-time
#: priority takes a CPU at wake-up from any normal thread. It sleeps on the
#: disk nearly all the time (a few hundred µs of CPU a commit, the rest
#: waiting for the GIL, which blocks), and the kernel's real-time throttle
#: (95 %) still bounds a runaway.
FAVOUR_RT_PRIORITY = 1
FAVOUR_NICE = -10           # without the right to real-time: the next best


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


def favour_thread(rt_priority=FAVOUR_RT_PRIORITY, nice=FAVOUR_NICE, fifo=True):
    """The calling thread (only it: on Linux the policy and nice are per
    thread) ahead of normal threads for a CPU: ``SCHED_FIFO`` at
    ``rt_priority`` (unless ``fifo`` is False), else ``nice`` below 0.
    Either needs CAP_SYS_NICE or the rlimit (under systemd: ``LimitRTPRIO=``,
    ``LimitNICE=``); without it the thread stays as it was. Returns
    ``"fifo"``, ``"nice"`` or ``None``."""
    if fifo:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt_priority))
            return "fifo"
        except (AttributeError, OSError):
            pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        return "nice"
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
