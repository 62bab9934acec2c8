"""Run blocking calls in gevent's native threadpool without stalling the loop.

SQLite commits (fsync), file work and CPU-heavy calls go through here, so
other greenlets keep running while the call waits::

    >>> import time
    >>> from engine import run_blocking
    >>> run_blocking(time.sleep, 0.01)      # other greenlets run meanwhile
    >>> run_blocking(sum, [1, 2, 3])
    6
"""
from gevent import get_hub

__all__ = ["run_blocking"]


def run_blocking(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` in a native thread and wait for it
    cooperatively. Exceptions propagate to the caller."""
    return get_hub().threadpool.apply(fn, args, kwargs)

