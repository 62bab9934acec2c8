"""Dedicated native threads with a light handoff to and from the event loop.

gevent's threadpool pays for generality on every call: an AsyncResult, a
ThreadResult and an async watcher per task, a Python-level condition on
the way in. A ``NativePool`` is a few real threads (never gevent's, even
under monkey-patching) behind one C ``SimpleQueue``, and one async watcher
for everything that finishes: a burst of finished jobs costs the loop one
wake-up, and submitting costs one C call. Callbacks run in the hub, in
completion order, so they must not block (set an event, resolve a Future).

Work that releases the GIL (OpenSSL's verify, SQLite's step and fsync)
runs here truly in parallel with the loop.

    >>> import gevent
    >>> from engine import NativePool
    >>> pool = NativePool(1, name="demo")
    >>> pool.call(sum, [1, 2, 3])        # waits cooperatively
    6
    >>> got = []
    >>> pool.submit(pow, (2, 10), lambda value, exc: got.append(value))
    >>> gevent.sleep(0.05); got
    [1024]
    >>> pool.close()
"""
import ctypes
import ctypes.util
from collections import deque

from gevent import get_hub
from gevent.hub import Waiter
from gevent.monkey import get_original

__all__ = ["NativePool"]

_start_thread = get_original("_thread", "start_new_thread")
try:
    from _queue import SimpleQueue    # the C queue: gevent does not patch it
except ImportError:  # pragma: no cover - CPython always has it
    SimpleQueue = get_original("queue", "SimpleQueue")

_STOP = object()
_PR_SET_NAME = 15


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not glibc/Linux
        return None


_LIBC = _libc()


def _name_thread(name):
    """The OS thread's name (``/proc/PID/task/TID/comm``, top -H, py-spy):
    a benchmark can then tell the verify threads' CPU from the commit's."""
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class NativePool:
    """``size`` native threads taking jobs from one queue."""

    def __init__(self, size=1, name="native"):
        self.size = max(1, int(size))
        self.name = name
        self.jobs = 0                 # submitted, for stats
        self._queue = SimpleQueue()
        self._done = deque()          # (callback, value, exc): appended by the threads
        hub = get_hub()
        self._async = hub.loop.async_()
        try:
            # Results first in each loop turn, before the turn's sockets: a
            # storm's thousands of ready sockets must not delay a tap's
            # verified signature or a commit's acks.
            self._async.priority = hub.loop.MAXPRI
        except AttributeError:        # pragma: no cover - a loop without priorities
            pass
        self._async.start(self._deliver)
        # An idle pool must not keep the loop alive on its own; a pool with
        # work out must (else a lone waiter would see LoopExit).
        self._async.ref = False
        self._pending = 0
        self._send = self._async.send
        self._closed = False
        for i in range(self.size):
            _start_thread(self._work, (name if self.size == 1 else f"{name}-{i}",))

    # --- the loop's side ------------------------------------------------------------------

    def submit(self, fn, args, callback):
        """Run ``fn(*args)`` in a pool thread; ``callback(value, exc)`` is
        then called in the hub (``exc`` is None on success)."""
        if self._closed:
            raise RuntimeError(f"{self.name}: pool closed")
        self.jobs += 1
        if not self._pending:
            self._async.ref = True
        self._pending += 1
        self._queue.put((fn, args, callback))

    def submit_all(self, jobs):
        """``submit`` for a list of ``(fn, args, callback)``: one queue put,
        which wakes one thread; that thread hands the rest back to the queue
        before it starts on its own job, so an idle sibling is woken from
        there. A put that wakes a sleeping thread is a futex wake (on this
        VM often a context switch while the caller holds the GIL): the loop
        pays one per batch, not one per thread."""
        if self._closed:
            raise RuntimeError(f"{self.name}: pool closed")
        n = len(jobs)
        if not n:
            return
        self.jobs += n
        if not self._pending:
            self._async.ref = True
        self._pending += n
        self._queue.put(jobs[0] if n == 1 else list(jobs))

    def call(self, fn, *args):
        """Run ``fn(*args)`` in a pool thread and wait cooperatively for it;
        its exception is raised here."""
        waiter = Waiter()
        self.submit(fn, args, lambda value, exc: waiter.switch((value, exc)))
        value, exc = waiter.get()
        if exc is not None:
            raise exc
        return value

    def _deliver(self):
        done = self._done
        while done:
            callback, value, exc = done.popleft()
            self._pending -= 1
            if not self._pending:
                self._async.ref = False
                if self._closed:
                    self._stop_threads()
            try:
                callback(value, exc)
            except Exception:          # pragma: no cover - a callback's own bug
                import logging
                logging.getLogger("engine.native").exception("%s: callback failed", self.name)

    def close(self):
        """Let the threads finish what is queued, then end (does not wait)."""
        if self._closed:
            return
        self._closed = True
        # Not while jobs are out: a bundle's rest may still go back on the
        # queue (``submit_all``), behind stops that would end every thread.
        if not self._pending:
            self._stop_threads()

    def _stop_threads(self):
        for _ in range(self.size):
            self._queue.put(_STOP)

    # --- the threads' side ------------------------------------------------------------------

    def _work(self, thread_name):
        _name_thread(thread_name)
        get = self._queue.get
        put = self._queue.put
        done = self._done.append
        send = self._send
        while True:
            job = get()
            if type(job) is list:      # a bundle (submit_all): the rest to a sibling
                put(job[1] if len(job) == 2 else job[1:])
                job = job[0]
            if job is _STOP:
                return
            fn, args, callback = job
            try:
                value, exc = fn(*args), None
            except BaseException as e:   # noqa: B902 - handed to the loop, not lost
                value, exc = None, e
            done((callback, value, exc))
            # Wakes the loop once however many jobs finished meanwhile: libev
            # coalesces sends until the watcher has run.
            send()
