"""The Redis connection the bus uses, and the small rules around it.

redis-py with hiredis, on sockets gevent has patched: a blocking XREAD
waits in the hub, not the thread. ``socket_timeout`` must outlast the
longest ``BLOCK`` (``BLOCK_MS``), or a quiet stream reads as a dead one.
"""
import logging

import gevent
import redis

__all__ = ["connect", "Backoff", "BLOCK_MS", "RedisError", "is_nogroup", "Link", "entries"]

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


class Link:
    """One Redis connection owned by one greenlet: commands written and
    their replies read straight on a redis-py ``Connection``, without the
    client's pool, retry and observability layers around every command.

    Those layers cost more than the command: ~85 µs of CPU per ``PING``
    through ``Redis.ping()`` against ~38 µs here, and ~120 against ~37 for
    an XADD+XACK pipeline (measured under gevent on a Unix socket). The
    market's tap loop makes a few hundred round trips a second, so that
    difference is a real share of its CPU per tap.

    Replies are Redis's own (as hiredis parses them: bytes, ints, lists,
    maps, None), with no response callbacks: ``entries`` turns an
    XREAD/XREADGROUP reply into ``[(id, {field: value})]``. A connection
    error disconnects and raises ``RedisError``; the next call reconnects.
    Not for two greenlets at once: their replies would interleave.

        link = Link(client)
        link.call("XACK", stream, group, eid)
        replies = link.pipeline([("XADD", ...), ("XACK", ...)])  # errors as values
    """

    def __init__(self, client):
        self.conn = client.connection_pool.make_connection()

    def call(self, *args):
        conn = self.conn
        conn.send_packed_command(conn.pack_command(*args), check_health=False)
        return conn.read_response()

    def pipeline(self, commands):
        """Every command's reply, in order, after one write: a ``ResponseError``
        reply is returned in its place (the rest still run), as redis-py's
        ``execute(raise_on_error=False)``; a connection error raises."""
        conn = self.conn
        conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        out = []
        for _ in commands:
            try:
                out.append(conn.read_response())
            except redis.ResponseError as exc:
                out.append(exc)
        return out

    def close(self):
        self.conn.disconnect()


def entries(reply):
    """``[(id, {field: value})]`` of a raw XREAD/XREADGROUP reply (one stream
    or several, in order); a pending entry trimmed away meanwhile has ``{}``."""
    out = []
    if not reply:
        return out
    # RESP3 (redis-py's default since 6) answers a map {stream: entries}, RESP2 pairs.
    for _stream, items in (reply.items() if isinstance(reply, dict) else reply):
        for eid, flat in items:
            out.append((eid, dict(zip(flat[::2], flat[1::2])) if flat else {}))
    return out
