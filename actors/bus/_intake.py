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

from .._model import Ack
from ..store import nonce_text, open_readonly
from ._codec import decode_taps, encode_acks
from ._redis import BLOCK_MS, Backoff, Link, RedisError, entries, is_nogroup

__all__ = ["TapIntake"]

log = logging.getLogger("tapgrid.bus")
STARTING_WAIT_S = 15
READ_WAIT_S = 0.005     # while taps are in flight, the longest a new one waits unread


class _Entry:
    __slots__ = ("eid", "left")

    def __init__(self, eid, left):
        self.eid = eid
        self.left = left


class _Reply:
    """Where one tap's Ack goes: into its gateway's next ack batch. The
    Writer answers a commit's replies that share a ``sink`` in one call
    (``TapIntake.committed``): no Ack object or method call per tap."""
    __slots__ = ("intake", "gw", "rid", "entry", "tap", "again", "sink")

    def __init__(self, intake, gw, rid, entry, tap, again):
        self.intake, self.gw, self.rid, self.entry, self.tap, self.again = (
            intake, gw, rid, entry, tap, again)
        self.sink = intake.committed

    def set(self, ack):
        self.intake.answer(self, ack)

    def fail(self, exc):
        log.error("tap failed inside the market: %r", exc)
        self.intake.answer(self, Ack("overloaded"))


class TapIntake:
    """Started by ``MarketBus``; ``run`` is its one greenlet, on a ``Link`` of
    its own: each round trip writes the acks answered since the last one
    (an XADD per gateway), the XACKs of the entries they finish, and the
    next read of the tap stream, and reads all their replies. So a
    Writer's commit costs one round trip, acks and the next taps together,
    where a read and a flush each took one (and each through redis-py's
    pool). While taps are in flight the read does not block: after a read
    that found fewer than ``batch`` entries the loop waits for the next
    answers (the Writer's commit) or ``READ_WAIT_S``, whichever is first;
    with nothing in flight it blocks in Redis (``BLOCK_MS``)."""

    def __init__(self, bus, handle, consumer="market", batch=64):
        self.bus = bus
        self.handle = handle
        self.ctx = handle.ctx
        self.keys = bus.keys
        self.r = bus.r
        self.link = Link(bus.r)
        self.consumer = consumer
        self.batch = batch
        self.limit = max(100, handle.cfg.writer_queue // 2)    # taps judged, not yet answered
        self.inflight = 0
        self.open = {}                 # entry id -> _Entry, being answered here
        self.out = {}                  # gateway -> [ack rows]
        self.to_xack = []
        self.wake = Event()
        self.reading = True
        self._expiry = {}              # gateway -> when its inbox's TTL was renewed
        self.stats = {"entries": 0, "taps": 0, "late": 0, "expired": 0, "redelivered": 0,
                      "committed_before": 0, "bad": 0, "trips": 0}

    # --- the loop ---------------------------------------------------------------------

    def run(self):
        # A market that just started prices its first grid before it takes
        # taps: the ones waiting in the stream (sent while it was away) are
        # read then, within their deadline, rather than refused as suspended.
        with gevent.Timeout(STARTING_WAIT_S, False):
            while self.ctx.status.holds("starting") or not self.ctx.grid.columns:
                gevent.sleep(0.02)
        backoff = Backoff()
        while True:
            try:
                if self.reading:
                    self.bus.ensure_group(self.keys.taps)
                    self._pending()      # what a previous run read and did not finish
                backoff.ok()
                self._pump()
            except RedisError as exc:
                if is_nogroup(exc):
                    continue             # Redis came back empty: make the group again
                backoff.fail("tap intake", exc)

    def _pump(self):
        keys = self.keys
        head = ("XREADGROUP", "GROUP", keys.group, self.consumer, "COUNT", self.batch)
        tail = ("STREAMS", keys.taps, ">")
        read_now, read_wait = head + tail, head + ("BLOCK", BLOCK_MS) + tail
        wake = self.wake
        while True:
            wake.clear()
            out, self.out = self.out, {}
            xack, self.to_xack = self.to_xack, []
            cmds = self._ack_commands(out, xack)
            reading = self.reading and self.inflight < self.limit
            if reading:
                cmds.append(read_now if cmds or self.inflight else read_wait)
            if not cmds:
                # Stopped reading (draining) or the Writer is behind: wait for answers.
                wake.wait(READ_WAIT_S)
                continue
            try:
                replies = self.link.pipeline(cmds)
            except RedisError:
                self._unsent(out, xack)
                raise
            self.stats["trips"] += 1
            n = 0
            if reading:
                got = replies[-1]
                if isinstance(got, RedisError):
                    raise got            # NOGROUP: Redis came back empty
                if not self.reading:
                    # Stopped while the read waited: what it got stays pending
                    # for the next market (as a killed read's would).
                    continue
                for eid, fields in entries(got):
                    n += 1
                    self._entry(eid, fields, again=False)
            if n < self.batch and (self.inflight or not reading):
                # Nothing more waiting: the next trip goes with the next answers.
                wake.wait(READ_WAIT_S)

    def _ack_commands(self, out, xack):
        """The acks out, then the XACKs of the entries they finish."""
        cmds = []
        if out:
            keys, cfg = self.keys, self.handle.cfg
            now = time.monotonic()
            expiry = self._expiry
            for gw, rows in out.items():
                inbox = keys.inbox(gw)
                cmds.append(("XADD", inbox, "MAXLEN", "~", cfg.bus_stream_max, "*",
                             b"k", b"a", b"d", encode_acks(rows)))
                # An inbox expires when nobody writes it (its gateway died):
                # renewed once a second, not once a commit (the TTL is many seconds).
                if now - expiry.get(gw, -1e9) >= 1.0:
                    expiry[gw] = now
                    cmds.append(("PEXPIRE", inbox, cfg.bus_inbox_ttl_ms))
        if xack:
            cmds.append(("XACK", self.keys.taps, self.keys.group, *xack))
        return cmds

    def _unsent(self, out, xack):
        """Keep them for the next try; a gateway that gave up meanwhile
        ignores acks it no longer waits for."""
        keep = self.handle.cfg.bus_stream_max
        for gw, rows in out.items():
            self.out.setdefault(gw, [])[:0] = rows[-keep:]
        self.to_xack[:0] = xack
        self._expiry.clear()

    # --- reading ----------------------------------------------------------------------

    def _pending(self):
        start = "0"
        keys = self.keys
        while True:
            got = entries(self.link.call("XREADGROUP", "GROUP", keys.group, self.consumer,
                                         "COUNT", self.batch, "STREAMS", keys.taps, start))
            if not got:
                return
            for eid, fields in got:
                if eid not in self.open:         # still being answered by this process
                    self._entry(eid, fields, again=True)
            start = got[-1][0]

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
        # (decode_taps has put each tap's market_id in its Tap already)
        replies = [_Reply(self, gw, rid, entry, tap, again) for rid, tap, _ in taps]
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
                                 [(r.tap.user, r.tap.nonce) for r in replies])
        except Exception as exc:
            log.error("looking up redelivered taps failed: %r", exc)
            found = {}
        rest = []
        for reply in replies:
            hit = found.get((reply.tap.user, reply.tap.nonce))
            if hit is None:
                rest.append(reply)
            else:
                self.stats["committed_before"] += 1
                self.answer(reply, Ack(None, hit[0], hit[1], self.ctx.ledger.balance(reply.tap.user)))
        self._judge(rest, deadline)

    def _judge(self, replies, deadline):
        now = self.ctx.now()
        if now > deadline:
            # Their gateway has answered them overloaded: placing them now
            # would make bets their player was told failed.
            for reply in replies:
                self.stats["late"] += 1
                self.ctx.count("overloaded")
                self.answer(reply, Ack("overloaded"))
            return
        skew = self.ctx.taken.max_skew_ms
        place = self.handle.place_order
        for reply in replies:
            tap = reply.tap
            if abs(now - tap.ts) > skew:
                self.stats["expired"] += 1
                self.ctx.count("expired")
                self.answer(reply, Ack("expired"))
            else:
                place(tap, reply)

    # --- answering --------------------------------------------------------------------

    def answer(self, reply, ack):
        self.inflight -= 1
        self.out.setdefault(reply.gw, []).append(
            [reply.rid, ack.reason, ack.bet, ack.mult, ack.balance])
        self._done(reply.entry)
        self.wake.set()

    def committed(self, acks):
        """A commit's bets, from the Writer: [(reply, bet id, mult, balance)]."""
        out = self.out
        for reply, bet, mult, balance in acks:
            rows = out.get(reply.gw)
            if rows is None:
                rows = out[reply.gw] = []
            rows.append([reply.rid, None, bet, mult, balance])
            self._done(reply.entry)
        self.inflight -= len(acks)
        self.wake.set()

    def _done(self, entry):
        entry.left -= 1
        if entry.left == 0:
            self.open.pop(entry.eid, None)
            self.to_xack.append(entry.eid)

    def _finished(self, eid):
        self.to_xack.append(eid)
        self.wake.set()

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
