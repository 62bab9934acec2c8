"""The Redis connection the bus uses, and the small rules around it.

redis-py with hiredis, on sockets gevent has patched: a blocking XREAD
waits in the hub, not the thread. ``socket_timeout`` must outlast the
longest ``BLOCK`` (``BLOCK_MS``), or a quiet stream reads as a dead one.
"""
import logging

import gevent
import redis

__all__ = ["connect", "Backoff", "BLOCK_MS", "RedisError", "is_nogroup"]

BLOCK_MS = 1000
RedisError = redis.RedisError
log = logging.getLogger("tapgrid.bus")


def connect(url):
    return redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 4,
                                socket_connect_timeout=2, health_check_interval=0)


def is_nogroup(exc):
    """Redis restarted empty (or the stream was deleted): the group is gone."""
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP")


class Backoff:
    """Wait between reconnects: 50 ms doubling to 1 s, reset on success."""

    def __init__(self, first=0.05, most=1.0):
        self.first, self.most = first, most
        self.delay = first

    def fail(self, what, exc):
        if self.delay == self.first:
            log.warning("%s: Redis unreachable (%r); retrying", what, exc)
        gevent.sleep(self.delay)
        self.delay = min(self.most, self.delay * 2)

    def ok(self):
        self.delay = self.first
