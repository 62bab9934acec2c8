"""Idle CPU priority for background work (the archive child, ``tapgrid
backup``): on a box the server fills, that work then takes only CPU nobody
else wants, so taps never queue behind it.

    >>> with idle_priority() as how:
    ...     how in ("sched_idle", "nice", "none")
    True

Both also keep the work to one CPU (``one_cpu``): SCHED_IDLE alone left
the server's threads waiting for a CPU behind it (traced, stop 24).
"""
import contextlib
import os

__all__ = ["idle_priority", "lower_priority", "nice_thread", "one_cpu"]


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


def one_cpu(whole_process=False):
    """Keep the calling thread (and the threads it starts after) to one CPU
    of those it may use, the last, when it may use two or more: the
    server's threads then always have a CPU this work is not on. SCHED_IDLE
    alone did not give them that: traced on this 2-vCPU VM (kernel 6.18,
    ``perf sched``, stop 24), the Writer's commit thread waited up to 5.8 ms
    on a run queue while the archive child's threads (SCHED_IDLE) ran on
    that CPU and on the other. ``whole_process``: the threads started
    before this call too (the archive child's, from its imports). Returns
    the CPUs kept, or None (one CPU, or no affinity on this OS)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        tids = [int(t) for t in os.listdir("/proc/self/task")] if whole_process else [0]
        for tid in tids:
            try:
                os.sched_setaffinity(tid, {cpus[-1]})
            except ProcessLookupError:      # a thread that ended meanwhile
                pass
        return [cpus[-1]]
    except (AttributeError, OSError):
        return None


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
    """``lower_priority`` and ``one_cpu`` for the block, the old policy,
    nice and CPUs restored after."""
    try:
        policy = os.sched_getscheduler(0)
        param = os.sched_getparam(0)
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        policy = None
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        cpus = None
    how = lower_priority()
    one_cpu()
    try:
        yield how
    finally:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if policy is not None:
            try:
                os.sched_setscheduler(0, policy, param)
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError:     # not allowed back up (an unprivileged user): stays low
                pass
