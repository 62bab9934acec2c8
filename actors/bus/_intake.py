"""The market's side of the tap stream: read verified taps in batches,
judge each exactly once, place it, and answer the gateway that sent it.

Delivery is at least once (a consumer group: an entry stays pending until
it is XACKed, and an entry is XACKed only after every tap in it has been
answered and its acks are in the gateway's inbox, in the same pipeline).
Applying is exactly once: a Column judges each tap by (player, nonce)
against the market's durable record (``actors/_taken.py``), so an entry
read twice (the market died between the commit and the XACK) never makes
a second bet. A tap redelivered that way was committed, so its answer is
the bet it made, looked up in the database, never ``replay``.

Two refusals happen here, before a Column: a tap whose gateway has given
up on it (its batch's deadline passed: the gateway answered ``overloaded``,
so placing it now would make a bet its player was told failed) and a tap
that reaches the market after its 30 s window (``expired``).
"""
import logging
import time

import gevent
from gevent.event import Event

from engine import run_blocking

from .._model import Ack, Tap
from ..store import nonce_text, open_readonly
from ._codec import decode_taps, encode_acks
from ._redis import BLOCK_MS, Backoff, RedisError, is_nogroup

__all__ = ["TapIntake"]

log = logging.getLogger("tapgrid.bus")
_HAS_MARKET_ID = "market_id" in Tap._fields
STARTING_WAIT_S = 15
READ_GATHER_S = 0.002


class _Entry:
    __slots__ = ("eid", "left")

    def __init__(self, eid, left):
        self.eid = eid
        self.left = left


class _Reply:
    """Where one tap's Ack goes: into its gateway's next ack batch."""
    __slots__ = ("intake", "gw", "rid", "entry", "tap", "again")

    def __init__(self, intake, gw, rid, entry, tap, again):
        self.intake, self.gw, self.rid, self.entry, self.tap, self.again = (
            intake, gw, rid, entry, tap, again)

    def set(self, ack):
        self.intake.answer(self, ack)

    def fail(self, exc):
        log.error("tap failed inside the market: %r", exc)
        self.intake.answer(self, Ack("overloaded"))


class TapIntake:
    """Started by ``MarketBus``; ``run`` and ``flush_loop`` are its greenlets."""

    def __init__(self, bus, handle, consumer="market", batch=64):
        self.bus = bus
        self.handle = handle
        self.ctx = handle.ctx
        self.keys = bus.keys
        self.r = bus.r
        self.consumer = consumer
        self.batch = batch
        self.limit = max(100, handle.cfg.writer_queue // 2)    # taps judged, not yet answered
        self.inflight = 0
        self.open = {}                 # entry id -> _Entry, being answered here
        self.out = {}                  # gateway -> [ack rows]
        self.to_xack = []
        self.wake = Event()
        self.reading = True
        self.stats = {"entries": 0, "taps": 0, "late": 0, "expired": 0, "redelivered": 0,
                      "committed_before": 0, "bad": 0}

    # --- reading ----------------------------------------------------------------------

    def run(self):
        # A market that just started prices its first grid before it takes
        # taps: the ones waiting in the stream (sent while it was away) are
        # read then, within their deadline, rather than refused as suspended.
        with gevent.Timeout(STARTING_WAIT_S, False):
            while self.ctx.status.holds("starting") or not self.ctx.grid.columns:
                gevent.sleep(0.02)
        backoff = Backoff()
        while self.reading:
            try:
                self.bus.ensure_group(self.keys.taps)
                self._pending()          # what a previous run read and did not finish
                backoff.ok()
                while self.reading:
                    if self.inflight >= self.limit:
                        gevent.sleep(0.002)         # the Writer is behind: let it catch up
                        continue
                    got = self.r.xreadgroup(self.keys.group, self.consumer, {self.keys.taps: ">"},
                                            count=self.batch, block=BLOCK_MS)
                    n = 0
                    for _, entries in got or ():
                        n += len(entries)
                        for eid, fields in entries:
                            self._entry(eid, fields, again=False)
                    if 0 < n < self.batch:
                        # Taps are coming: let a few more gateway batches arrive
                        # and read them in one call (a read costs the market more
                        # than the taps in it; 2 ms of a tap's 100 ms budget).
                        gevent.sleep(READ_GATHER_S)
            except RedisError as exc:
                if is_nogroup(exc):
                    continue             # Redis came back empty: make the group again
                backoff.fail("tap intake", exc)

    def _pending(self):
        start = "0"
        while True:
            got = self.r.xreadgroup(self.keys.group, self.consumer, {self.keys.taps: start},
                                    count=self.batch)
            entries = got[0][1] if got else []
            if not entries:
                return
            for eid, fields in entries:
                if eid not in self.open:         # still being answered by this process
                    self._entry(eid, fields, again=True)
            start = entries[-1][0]

    def _entry(self, eid, fields, again):
        st = self.stats
        st["entries"] += 1
        if not fields:                           # trimmed away while pending: nothing to do
            self._finished(eid)
            return
        try:
            gw = fields[b"g"].decode()
            deadline = int(fields[b"x"])
            taps = decode_taps(fields[b"d"])
        except (KeyError, ValueError, TypeError, UnicodeDecodeError):
            st["bad"] += 1
            log.warning("dropping a malformed tap entry %r", eid)
            self._finished(eid)
            return
        if not taps:
            self._finished(eid)
            return
        entry = _Entry(eid, len(taps))
        self.open[eid] = entry
        st["taps"] += len(taps)
        if again:
            st["redelivered"] += len(taps)
        replies = [(_Reply(self, gw, rid, entry, tap, again), market_id)
                   for rid, tap, market_id in taps]
        self.inflight += len(replies)
        if again:
            # Read before the market stopped: committed or not? The record
            # says (before any status check: a starting market is suspended).
            gevent.spawn(self._judge_again, replies, deadline)
        else:
            self._judge(replies, deadline)

    def _judge_again(self, replies, deadline):
        try:
            found = run_blocking(_find_bets, self.handle.cfg.db,
                                 [(r.tap.user, r.tap.nonce) for r, _ in replies])
        except Exception as exc:
            log.error("looking up redelivered taps failed: %r", exc)
            found = {}
        rest = []
        for reply, market_id in replies:
            hit = found.get((reply.tap.user, reply.tap.nonce))
            if hit is None:
                rest.append((reply, market_id))
            else:
                self.stats["committed_before"] += 1
                self.answer(reply, Ack(None, hit[0], hit[1], self.ctx.ledger.balance(reply.tap.user)))
        self._judge(rest, deadline)

    def _judge(self, replies, deadline):
        st = self.stats
        now = self.ctx.now()
        skew = self.ctx.taken.max_skew_ms
        place = self.handle.place_order
        for reply, market_id in replies:
            tap = reply.tap
            if now > deadline:
                # Its gateway has answered overloaded: placing it now would
                # make a bet its player was told failed.
                st["late"] += 1
                self.ctx.count("overloaded")
                self.answer(reply, Ack("overloaded"))
            elif abs(now - tap.ts) > skew:
                st["expired"] += 1
                self.ctx.count("expired")
                self.answer(reply, Ack("expired"))
            else:
                if market_id is not None and _HAS_MARKET_ID:
                    tap = reply.tap = tap._replace(market_id=market_id)
                place(tap, reply)

    # --- answering --------------------------------------------------------------------

    def answer(self, reply, ack):
        self.inflight -= 1
        self.out.setdefault(reply.gw, []).append(
            [reply.rid, ack.reason, ack.bet, ack.mult, ack.balance])
        entry = reply.entry
        entry.left -= 1
        if entry.left == 0:
            self.open.pop(entry.eid, None)
            self.to_xack.append(entry.eid)
        self.wake.set()

    def _finished(self, eid):
        self.to_xack.append(eid)
        self.wake.set()

    def flush_loop(self):
        """Acks out, then the XACKs of the entries they finish: one pipeline."""
        backoff = Backoff()
        keys, cfg = self.keys, self.handle.cfg
        expiry = {}                             # gateway -> when its inbox's TTL was renewed
        while True:
            self.wake.wait()
            gevent.sleep(0)                     # gather the rest of this loop turn
            self.wake.clear()
            out, self.out = self.out, {}
            xack, self.to_xack = self.to_xack, []
            if not (out or xack):
                continue
            try:
                pipe = self.r.pipeline(transaction=False)
                now = time.monotonic()
                for gw, rows in out.items():
                    inbox = keys.inbox(gw)
                    pipe.xadd(inbox, {b"k": b"a", b"d": encode_acks(rows)},
                              maxlen=cfg.bus_stream_max, approximate=True)
                    # An inbox expires when nobody writes it (its gateway died):
                    # renewed once a second, not once a commit (a command fewer
                    # per flush; the TTL is many seconds).
                    if now - expiry.get(gw, -1e9) >= 1.0:
                        expiry[gw] = now
                        pipe.pexpire(inbox, cfg.bus_inbox_ttl_ms)
                if xack:
                    pipe.xack(keys.taps, keys.group, *xack)
                pipe.execute(raise_on_error=False)
                backoff.ok()
            except RedisError as exc:
                # Keep them for the next try; a gateway that gave up meanwhile
                # ignores acks it no longer waits for.
                for gw, rows in out.items():
                    self.out.setdefault(gw, [])[:0] = rows[-cfg.bus_stream_max:]
                self.to_xack[:0] = xack
                self.wake.set()
                backoff.fail("ack flush", exc)

    def idle(self):
        return self.inflight == 0 and not self.out and not self.to_xack


def _find_bets(db, keys):
    """{(user, nonce): (bet id, mult)} of those among ``keys`` (user, nonce)
    that are recent bets (a user's last 2,000: redeliveries are seconds old)."""
    want = {}
    for user, nonce in keys:
        want.setdefault(user, set()).add(nonce)
    found = {}
    conn = open_readonly(db)
    try:
        for user, nonces in want.items():
            for bet, mult, stored in conn.execute(
                    "SELECT id, mult, nonce FROM bets WHERE user=? ORDER BY id DESC LIMIT 2000",
                    (user,)):
                n = nonce_text(stored)
                if n in nonces:
                    found[(user, n)] = (bet, mult)
        return found
    finally:
        conn.close()
