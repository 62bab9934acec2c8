"""A one-shot reply future, cheaper than gevent's AsyncResult.

The answer is handed to the waiting greenlet through a hub callback, so
``set`` may be called from any greenlet (or a hub callback) without
suspending the caller::

    >>> import gevent
    >>> from engine import Future
    >>> f = Future()
    >>> _ = gevent.spawn(f.set, 42)
    >>> f.get(timeout=1)
    42
"""
from gevent import get_hub
from gevent.hub import Waiter

from ._errors import AskTimeout
from ._priority import wake_soon

__all__ = ["Future"]

_PENDING = object()


class Future:
    __slots__ = ("_value", "_exc", "_waiter", "_callbacks")

    def __init__(self):
        self._value = _PENDING
        self._exc = None
        self._waiter = None
        self._callbacks = None

    def done(self):
        return self._value is not _PENDING or self._exc is not None

    def set(self, value=None):
        """Resolve with a value; later calls are ignored (first answer wins)."""
        if self._value is not _PENDING or self._exc is not None:
            return
        self._value = value
        self._notify()

    def fail(self, exc):
        """Resolve with an exception that ``get`` raises in the waiter."""
        if self._value is not _PENDING or self._exc is not None:
            return
        self._exc = exc
        self._notify()

    set_exception = fail

    def _notify(self):
        w = self._waiter
        if w is not None:
            self._waiter = None
            # Never switch directly: the caller may be an actor greenlet that
            # must keep running; the hub resumes the waiter.
            wake_soon(get_hub().loop, w.switch, None)
        cbs = self._callbacks
        if cbs:
            self._callbacks = None
            for cb in cbs:
                cb(self)

    def add_done_callback(self, fn):
        """Call ``fn(future)`` once resolved (immediately if it already is)."""
        if self.done():
            fn(self)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def result(self):
        if self._exc is not None:
            raise self._exc
        if self._value is _PENDING:
            raise RuntimeError("future not resolved yet")
        return self._value

    def get(self, timeout=None):
        """Wait cooperatively for the answer; raise AskTimeout after ``timeout``."""
        if self._value is _PENDING and self._exc is None:
            waiter = Waiter()
            self._waiter = waiter
            timer = None
            if timeout is not None:
                timer = get_hub().loop.timer(timeout)
                timer.start(waiter.switch, _PENDING)
            try:
                waiter.get()
            finally:
                if timer is not None:
                    timer.close()
                self._waiter = None
            if self._value is _PENDING and self._exc is None:
                raise AskTimeout(f"no reply within {timeout}s")
        if self._exc is not None:
            raise self._exc
        return self._value

    def __repr__(self):
        state = "pending" if not self.done() else ("failed" if self._exc else "done")
        return f"<Future {state}>"
