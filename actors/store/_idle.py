"""Idle CPU priority for background work (the archive child, ``tapgrid
backup``): on a box the server fills, that work then takes only CPU nobody
else wants, so taps never queue behind it.

    >>> with idle_priority() as how:
    ...     how in ("sched_idle", "nice", "none")
    True
"""
import contextlib
import ctypes
import os
import platform

__all__ = ["idle_priority", "lower_priority", "nice_thread", "favour_thread", "FAVOUR_NICE",
           "FAVOUR_RT_PRIORITY", "io_priority", "set_io_priority", "IO_IDLE", "IO_RT", "IO_BE"]

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


# I/O classes (linux/ioprio.h). The CPU policy does not carry to the disk:
# a task without an explicit I/O priority submits as class "none", which
# mq-deadline (this VM's scheduler) queues as best effort, beside the
# Writer's WAL writes; only an explicit class reaches its per-class queues.
IO_NONE, IO_RT, IO_BE, IO_IDLE = 0, 1, 2, 3
_IOPRIO_SHIFT = 13
_IOPRIO_WHO_PROCESS = 1          # with who=0: the calling thread
_SYS_IOPRIO = {"x86_64": (251, 252), "aarch64": (30, 31), "arm64": (30, 31)}
_libc = None


def _syscall(set_get, *args):
    global _libc
    nrs = _SYS_IOPRIO.get(platform.machine())
    if nrs is None or not hasattr(os, "sched_setscheduler"):     # not Linux
        return -1
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.syscall(nrs[set_get], *args)


def io_priority():
    """The calling thread's I/O (class, level); class 0 when never set."""
    v = _syscall(1, _IOPRIO_WHO_PROCESS, 0)
    return (-1, 0) if v < 0 else (v >> _IOPRIO_SHIFT, v & ((1 << _IOPRIO_SHIFT) - 1))


def set_io_priority(cls, level=0):
    """The calling thread's I/O class (``IO_IDLE``, ``IO_RT`` needs
    CAP_SYS_NICE/CAP_SYS_ADMIN) at ``level`` (0 highest .. 7); threads it
    starts inherit it. True when it took."""
    return _syscall(0, _IOPRIO_WHO_PROCESS, 0, (cls << _IOPRIO_SHIFT) | level) == 0


def lower_priority():
    """Put the calling thread (Linux: the process, when called from its only
    thread) on ``SCHED_IDLE``, else nice 19, and its disk I/O in the idle
    class (``set_io_priority``). Returns how (the CPU's): ``"sched_idle"``,
    ``"nice"`` or ``"none"``."""
    set_io_priority(IO_IDLE)
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
    io = io_priority()
    how = lower_priority()
    try:
        yield how
    finally:
        if io[0] >= 0:
            set_io_priority(*io)
        if policy is not None:
            try:
                os.sched_setscheduler(0, policy, param)
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError:     # not allowed back up (an unprivileged user): stays low
                pass
