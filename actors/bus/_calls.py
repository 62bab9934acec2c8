"""Request and reply over the bus: what a gateway asks the market.

A call is one entry on the calls stream (``{g, i, x, m, a}``: gateway,
call id, deadline in ms, method, JSON arguments); the answer goes to the
gateway's inbox (``{k: r, i, v}`` or ``{k: r, i, e}``). Calls are applied
at most once: the market reads calls with ``NOACK`` (never pending) and skips one whose
deadline passed (its caller has already answered 503), so a credit is
never applied twice and never applied after the player was told it failed.

Bytes travel as ``{"$b": base64url}`` (session keys), both ways.

    >>> encode_value({"key": b"\\x01\\x02", "n": [1]})
    b'{"key":{"$b":"AQI="},"n":[1]}'
    >>> decode_value(b'{"key":{"$b":"AQI="},"n":[1]}')
    {'key': b'\\x01\\x02', 'n': [1]}
"""
import base64
import json
import logging
import time

import gevent
from gevent.event import Event
from gevent.pool import Pool

from engine import AskTimeout

from ..store import UserExists
from ._redis import BLOCK_MS, Backoff, Link, RedisError, entries, is_nogroup

__all__ = ["CallServer", "METHODS", "encode_value", "decode_value"]

log = logging.getLogger("tapgrid.bus")


def _default(obj):
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$b": base64.urlsafe_b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot send {type(obj).__name__} over the bus")


def _hook(d):
    if len(d) == 1 and "$b" in d:
        return base64.urlsafe_b64decode(d["$b"])
    return d


def encode_value(obj):
    return json.dumps(obj, separators=(",", ":"), default=_default).encode()


def decode_value(data):
    return json.loads(data, object_hook=_hook)


def _history(h, uid, cursor, limit):
    return h.read_history(uid, cursor, limit)


#: what a gateway may ask; each takes the MarketHandle then the call's arguments
METHODS = {
    "create_user": lambda h, name, credit, new: h.create_user(name, credit, new=new),
    "credit": lambda h, uid, amount: h.credit(uid, amount),
    "top_up": lambda h, uid, to_balance, below, every_ms: h.top_up(uid, to_balance, below, every_ms),
    "balance": lambda h, uid: h.balance(uid),
    "save_session": lambda h, row: h.save_session(tuple(row)),
    "revoke_session": lambda h, digest: h.revoke_session(digest),
    "purge_sessions": lambda h, now_ms: h.purge_sessions(now_ms),
    "save_key": lambda h, uid, key, expires_ms: h.save_key(uid, key, expires_ms),
    "history": _history,
    "ticks": lambda h, start, end, limit, asset=None: h.read_ticks(start, end, limit, asset),
}


#: answered in the reading greenlet itself: an in-memory read, no ask (a
#: reconnect storm is thousands of these a second; a greenlet each cost more
#: than the call)
INLINE = frozenset({"balance"})


class CallServer:
    """Reads calls with ``NOACK`` (taken off the pending list as they are
    read: at most once, in the same round trip as the read), serves each,
    and writes the replies of everything answered since the last flush in
    one pipeline (``flush_loop``), each on a ``Link`` of its own."""

    def __init__(self, bus, handle, consumer="market", size=64):
        self.bus = bus
        self.handle = handle
        self.keys = bus.keys
        self.r = bus.r
        self.link = Link(bus.r)
        self.out_link = Link(bus.r)
        self.consumer = consumer
        self.pool = Pool(size)
        self.reading = True
        self.served = 0
        self.skipped = 0
        self.replies = []              # (gateway, fields), in the order answered
        self.wake = Event()
        self._expiry = {}              # gateway -> when its inbox's TTL was renewed

    def run(self):
        backoff = Backoff()
        keys = self.keys
        read = ("XREADGROUP", "GROUP", keys.group, self.consumer, "COUNT", 100,
                "BLOCK", BLOCK_MS, "NOACK", "STREAMS", keys.calls, ">")
        while self.reading:
            try:
                self.bus.ensure_group(keys.calls)
                backoff.ok()
                while self.reading:
                    for _, fields in entries(self.link.call(*read)):
                        if _method(fields) in INLINE:
                            self._serve(fields)
                        else:
                            self.pool.wait_available()
                            self.pool.spawn(self._serve, fields)
            except RedisError as exc:
                if is_nogroup(exc):
                    continue
                backoff.fail("call server", exc)

    def _serve(self, fields):
        try:
            gw = fields[b"g"].decode()
            cid = fields[b"i"]
            deadline = int(fields[b"x"])
            method = fields[b"m"].decode()
            args = decode_value(fields[b"a"])
        except (KeyError, ValueError, UnicodeDecodeError):
            log.warning("dropping a malformed call")
            return
        if self.handle.ctx.now() > deadline:
            self.skipped += 1          # its caller already answered 503
            return
        fn = METHODS.get(method)
        reply = {b"k": b"r", b"i": cid}
        try:
            if fn is None:
                raise LookupError(f"no such call {method!r}")
            reply[b"v"] = encode_value(fn(self.handle, *args))
        except UserExists as exc:
            reply[b"e"] = encode_value(["UserExists", str(exc)])
        except (AskTimeout, gevent.Timeout):
            reply[b"e"] = encode_value(["AskTimeout", "the market is busy"])
        except Exception as exc:        # the caller gets a reason, the log the details
            log.exception("call %s failed", method)
            reply[b"e"] = encode_value(["error", f"{type(exc).__name__}"])
        self.served += 1
        self.replies.append((gw, reply))
        self.wake.set()

    def flush_loop(self):
        """Every reply answered since the last trip, to its gateway's inbox, in
        one pipeline (best effort: a caller whose reply is lost times out into
        a 503)."""
        keys, cfg = self.keys, self.handle.cfg
        backoff = Backoff()
        while True:
            self.wake.wait()
            gevent.sleep(0)             # the rest of this loop turn's answers
            self.wake.clear()
            replies, self.replies = self.replies, []
            if not replies:
                continue
            now = time.monotonic()
            cmds = []
            for gw, fields in replies:
                inbox = keys.inbox(gw)
                flat = [x for kv in fields.items() for x in kv]
                cmds.append(("XADD", inbox, "MAXLEN", "~", cfg.bus_stream_max, "*", *flat))
                if now - self._expiry.get(gw, -1e9) >= 1.0:
                    self._expiry[gw] = now
                    cmds.append(("PEXPIRE", inbox, cfg.bus_inbox_ttl_ms))
            try:
                self.out_link.pipeline(cmds)
                backoff.ok()
            except RedisError as exc:
                self._expiry.clear()
                log.warning("%d call replies were lost: %r", len(replies), exc)
                backoff.fail("call replies", exc)

    def close(self):
        self.link.close()
        self.out_link.close()


def _method(fields):
    m = fields.get(b"m")
    return m.decode() if isinstance(m, bytes) else None
