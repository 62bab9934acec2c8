"""``RemoteMarket``: the market as a gateway sees it, over Redis, with the
interface the web layer uses from ``MarketHandle`` (``place_order``,
``create_user``, ``credit``, ``balance``, ``read_history``, ``grid``,
``status``, ``health``...), so ``web/http`` and ``web/gateway`` run
unchanged on top of either.

Taps: ``place_order`` queues the tap; everything queued in one loop turn
goes up as one stream entry (its deadline: the first tap's time plus
``bus_tap_wait_ms``). The reply is kept until the market's ack arrives on
this gateway's inbox, or until the deadline plus a grace: then it is
answered ``overloaded`` (the market refuses a tap past its deadline, so it
never commits one its player was told failed). Nothing here says ``ok``:
only an ack from the market, sent after its commit, does.

Calls: one stream entry each, the answer on the inbox; a call unanswered
in ``bus_call_timeout_ms`` raises ``AskTimeout`` (a 503 for HTTP).
"""
import itertools
import logging
import os
import secrets
import socket
import time
from collections import deque

import gevent
from gevent.event import AsyncResult

from engine import AskTimeout

from .._model import Ack
from .._writes import TopUpResult
from .._status import Grid
from ..store import UserExists
from ._calls import decode_value, encode_value
from ._catalog import Catalog, PublishedMarkets
from ._codec import Keys, decode_acks, encode_taps
from ._redis import Backoff, Link, RedisError, connect, entries
from ._timeline import Timeline
from ._wake import Wake
from ._watch import RemoteStatus, Watcher

__all__ = ["RemoteMarket", "RemoteError"]

log = logging.getLogger("tapgrid.bus")
GRACE_MS = 1000       # after the deadline: room for a commit the market started in time
INBOX_BLOCK_MS = 200  # how often an idle gateway looks for taps to give up
HOLD_MARGIN_S = 0.3   # a market beating this long after a tap had time to answer it


class RemoteError(RuntimeError):
    """A call the market could not serve (its log says why)."""


class RemoteMarket(PublishedMarkets):
    def __init__(self, cfg, client=None, keys=None, gateway_id=None):
        self.cfg = cfg
        self.keys = keys or Keys()
        self.r = client or connect(cfg.redis)
        self.gateway_id = (gateway_id or cfg.gateway_id
                           or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")
        self.inbox = self.keys.inbox(self.gateway_id)
        self.sinks = None                  # the RelayFanout: relay() and on_market_result()
        self.away_listeners = []           # called when the market goes away or comes back
        self.grid = Grid()
        self.status = RemoteStatus()       # the default market's (and /healthz's)
        self.catalog = Catalog(cfg, self.status)
        self.last_tick = None
        self.seen = 0.0                    # when the market's heartbeat was last there
        self.last_beat = 0.0               # when the market last beat (monotonic)
        self.beat_every = cfg.bus_heartbeat_ms / 1000
        self.counters = {}
        self._rids = itertools.count(secrets.randbits(40))
        self._pending = {}                 # rid -> reply
        self._users = {}                   # rid -> uid (for the balance it leaves)
        self.balances = {}                 # uid -> last balance the market told us
        self._expiry = deque()             # (give up at, rid, placed at), in order
        self._held = deque()               # the same, held while the market restarts
        self.redis_ok = True
        self._out = []
        self._calls_out = []               # call entries' fields, sent with the next taps
        self._out_wake = Wake()           # the sender, woken ahead of a storm's callbacks
        self._calls = {}
        self.send_link = Link(self.r)
        self.inbox_link = Link(self.r)
        path = os.environ.get("TAPGRID_BUS_TIMELINE")
        self._timeline = Timeline(path) if path else None
        self._greenlets = []
        self.watcher = Watcher(self)
        self.sent = self.acked = self.gave_up = self.late = 0

    def start(self):
        spawn = gevent.spawn
        self._greenlets = [spawn(self._send_loop), spawn(self._inbox_loop)] + self.watcher.start()
        return self

    def stop(self):
        for g in self._greenlets:
            g.kill(block=False)

    def close(self):
        self.stop()
        self.send_link.close()
        self.inbox_link.close()
        self.r.close()

    def count(self, key, n=1):
        self.counters[key] = self.counters.get(key, 0) + n

    # --- taps ---------------------------------------------------------------------------

    def place_order(self, tap, reply):
        market_id = getattr(tap, "market_id", None)
        if market_id is not None and self.catalog.units and market_id not in self.catalog.by_id:
            # Not a market the market process runs: refused here, as it would refuse it.
            self.count("bad_request")
            reply.set(Ack("bad_request"))
            return
        rid = next(self._rids)
        self._pending[rid] = reply
        self._users[rid] = tap.user
        now = time.monotonic()
        self._expiry.append((now + (self.cfg.bus_tap_wait_ms + GRACE_MS) / 1000, rid, now))
        self._out.append((rid, tap, market_id, now))
        if self._timeline is not None:
            self._timeline.placed(rid)
        self._out_wake.set()

    def _send_loop(self):
        """What this loop turn queued, in one pipeline on a ``Link`` of its
        own: the taps as one entry, each call as one entry. (A reconnect
        storm is thousands of balance calls a second: each through the
        client's pool was a round trip and ~100 µs of this loop's CPU.)"""
        backoff = Backoff()
        keys, cfg = self.keys, self.cfg
        wait_ms = cfg.bus_tap_wait_ms
        most = cfg.bus_stream_max
        link = self.send_link
        gid = self.gateway_id.encode()
        while True:
            self._out_wake.wait()
            self._out_wake.clear()
            batch, self._out = self._out, []
            calls, self._calls_out = self._calls_out, []
            while batch or calls:
                # Taps given up on meanwhile do not go (the market would refuse
                # them), nor calls whose caller stopped waiting.
                batch = [b for b in batch if b[0] in self._pending]
                calls = [c for c in calls if c[b"i"] in self._calls]
                cmds = []
                if batch:
                    deadline = int(time.time() * 1000 + wait_ms
                                   - (time.monotonic() - batch[0][3]) * 1000)
                    cmds.append(("XADD", keys.taps, "MAXLEN", "~", most, "*", b"g", gid,
                                 b"x", deadline, b"d", encode_taps([b[:3] for b in batch])))
                for fields in calls:
                    cmds.append(("XADD", keys.calls, "MAXLEN", "~", most, "*",
                                 *[x for kv in fields.items() for x in kv]))
                if not cmds:
                    break
                try:
                    replies = link.pipeline(cmds)
                    if self._timeline is not None and batch:
                        self._timeline.sent(batch, replies[0])
                except RedisError as exc:
                    # Calls are never sent twice (a credit must not apply twice):
                    # their callers hear at once. Taps are retried until given up.
                    self._unsent_calls(calls, exc)
                    calls = []
                    backoff.fail("tap sender", exc)
                    continue
                for fields, got in zip(calls, replies[1:] if batch else replies):
                    if isinstance(got, RedisError):
                        self._unsent_calls([fields], got)
                calls = []
                if batch and isinstance(replies[0], RedisError):
                    backoff.fail("tap sender", replies[0])
                    continue
                self.sent += len(batch)
                backoff.ok()
                break

    def _unsent_calls(self, calls, exc):
        for fields in calls:
            waiter = self._calls.pop(fields[b"i"], None)
            if waiter is not None:
                waiter.set({b"e": encode_value(["AskTimeout", f"Redis refused the call: {exc!r}"])})

    def _inbox_loop(self):
        """Acks and replies in; then the taps past their time given up, but
        only once the inbox is drained: a gateway that stalled (a pause, a
        starved CPU) reads the acks waiting for it before it calls any tap
        overloaded, so it never says overloaded of a tap the market took."""
        backoff = Backoff()
        last = None
        link = self.inbox_link
        while True:
            try:
                if last is None:
                    top = link.call("XREVRANGE", self.inbox, "+", "-", "COUNT", 1)
                    last = top[0][0] if top else b"0-0"
                full = True
                while full:
                    got = entries(link.call("XREAD", "COUNT", 500, "BLOCK", INBOX_BLOCK_MS,
                                            "STREAMS", self.inbox, last))
                    full = len(got) == 500
                    for eid, fields in got:
                        last = eid
                        self._inbox(fields, eid)
                backoff.ok()
            except RedisError as exc:
                backoff.fail("inbox", exc)
            finally:
                self._give_up()

    def _inbox(self, fields, eid=None):
        kind = fields.get(b"k")
        if kind == b"a":
            if self._timeline is not None:
                self._timeline.acked(fields[b"d"], eid)
            pending = self._pending
            users = self._users
            sinks = None
            for rid, reason, bet, mult, balance in decode_acks(fields[b"d"]):
                reply = pending.pop(rid, None)
                user = users.pop(rid, None)
                if reason is None and user is not None:
                    self.remember(user, balance)
                if reply is None:
                    if reason is None:
                        # Committed after we gave up (a commit slower than
                        # the grace): the bet stands and is in the history.
                        self.late += 1
                        log.warning("an ok ack arrived after its tap was answered overloaded")
                    continue
                self.acked += 1
                sink = getattr(reply, "sink", None) if reason is None else None
                if sink is None:
                    reply.set(Ack(reason, bet, mult, balance))
                    continue
                # The tap pipeline's sink writes the ack frames now, in this
                # greenlet's turn, straight to each socket: ``set`` corks
                # them for a callback at the end of the turn, a further hop
                # that a reconnect storm's long callback queue makes slow.
                if sinks is None:
                    sinks = {}
                got = sinks.get(sink)
                if got is None:
                    sinks[sink] = [(reply, bet, mult, balance)]
                else:
                    got.append((reply, bet, mult, balance))
            if sinks:
                for sink, acks in sinks.items():
                    try:
                        sink(acks)
                    except Exception:
                        # Never let the inbox die; a reply the sink did
                        # answer ignores a second answer.
                        log.exception("writing acks failed")
                        for reply, bet, mult, balance in acks:
                            reply.set(Ack(None, bet, mult, balance))
        elif kind == b"r":
            waiter = self._calls.pop(fields.get(b"i"), None)
            if waiter is not None:
                waiter.set(fields)

    def _give_up(self):
        """Answer ``overloaded`` the taps past their time. One kind waits
        longer: a tap sent while the market was still beating, when the
        market has not beaten since (and Redis answers). The market may
        have committed it just before it died; the restarted market answers
        it with its bet (or refuses it, past its deadline), so it waits for
        that, up to ``bus_restart_wait_ms``, rather than be called
        overloaded while its bet stands. A tap sent after the market's last
        beat plus one interval found it dead already and is not held."""
        q, held, pending = self._expiry, self._held, self._pending
        now = time.monotonic()
        last, every = self.last_beat, self.beat_every
        hold = self.redis_ok and last > 0
        restart = self.cfg.bus_restart_wait_ms / 1000
        while q and q[0][0] <= now:
            entry = q.popleft()
            placed = entry[2]
            if hold and placed - every - 0.3 <= last < placed + HOLD_MARGIN_S \
                    and entry[1] in pending:
                held.append((entry[0] + restart, entry[1], placed))
                continue
            self._answer_overloaded(entry[1])
        # Released at their bound only: once the market is back it answers them itself.
        while held and held[0][0] <= now:
            self._answer_overloaded(held.popleft()[1])

    def _answer_overloaded(self, rid):
        reply = self._pending.pop(rid, None)
        self._users.pop(rid, None)
        if reply is not None:
            self.gave_up += 1
            self.count("overloaded")
            reply.set(Ack("overloaded"))

    def pending_taps(self):
        return len(self._pending)

    # --- calls --------------------------------------------------------------------------

    def call(self, method, *args, timeout=None):
        timeout_ms = timeout * 1000 if timeout else self.cfg.bus_call_timeout_ms
        cid = secrets.token_hex(8).encode()
        waiter = self._calls[cid] = AsyncResult()
        fields = {b"g": self.gateway_id.encode(), b"i": cid,
                  b"x": b"%d" % int(time.time() * 1000 + timeout_ms), b"m": method.encode(),
                  b"a": encode_value(list(args))}
        if not self.redis_ok:
            self._calls.pop(cid, None)
            raise AskTimeout(f"the market did not answer {method}: Redis is unreachable")
        # Sent by the send loop with this turn's taps and calls (one pipeline).
        self._calls_out.append(fields)
        self._out_wake.set()
        try:
            reply = waiter.get(timeout=timeout_ms / 1000)
        except gevent.Timeout as exc:
            raise AskTimeout(f"the market did not answer {method}: {exc!r}") from None
        finally:
            self._calls.pop(cid, None)
        if b"e" in reply:
            kind, detail = decode_value(reply[b"e"])
            if kind == "UserExists":
                raise UserExists(detail)
            if kind == "AskTimeout":
                raise AskTimeout(detail)
            raise RemoteError(f"{method}: {detail}")
        return decode_value(reply[b"v"])

    def create_user(self, name, credit=0, timeout=10, new=False):
        return self.call("create_user", name, credit, new)

    def credit(self, user, amount, timeout=10):
        return self.call("credit", user, amount)

    def top_up(self, user, to_balance, below, every_ms, timeout=10):
        """The market checks the limit and credits in one transaction."""
        return TopUpResult(*self.call("top_up", user, to_balance, below, every_ms))

    def balance(self, user):
        """The market's word; while it is away, the last balance it told us
        (a reconnecting player still gets its hello), else ``AskTimeout``."""
        try:
            value = self.call("balance", user,
                              timeout=0.5 if self.status.away and user in self.balances else None)
        except AskTimeout:
            if user in self.balances:
                return self.balances[user]
            raise
        self.remember(user, value)
        return value

    def remember(self, user, balance):
        if len(self.balances) > 200_000:
            self.balances.clear()
        self.balances[user] = balance

    def save_session(self, row, timeout=10):
        return self.call("save_session", list(row))

    def revoke_session(self, token_hash, timeout=10):
        return self.call("revoke_session", token_hash)

    def purge_sessions(self, now_ms, timeout=60):
        return self.call("purge_sessions", now_ms)

    def purge_guests(self, created_before, timeout=60):
        """The market purges its own idle guests; a gateway has none."""
        return []

    def save_key(self, user, key, expires_ms, timeout=10):
        return self.call("save_key", user, key, expires_ms)

    def read_history(self, user, cursor=None, limit=50):
        return self.call("history", user, cursor, limit)

    def history(self, user, limit=20, before_bet=None):
        return self.read_history(user, before_bet, limit)

    def read_ticks(self, start, end, limit, asset=None):
        return self.call("ticks", start, end, limit, asset)

    def stats(self):
        return {"gateway": self.gateway_id, "sent": self.sent, "acked": self.acked,
                "gave_up": self.gave_up, "late_acks": self.late, "pending": len(self._pending),
                "relayed": self.watcher.relayed, "results": self.watcher.results,
                "resubscribes": self.watcher.resubscribes,
                "market": self.status.as_dict(), "rejects": dict(self.counters)}
