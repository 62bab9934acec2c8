"""The Writer: the only SQLite writer, with group commit.

It takes everything queued (up to ``max_batch`` messages), writes one
transaction, commits on its own native commit thread (the event loop never
waits on fsync), then answers every tap in the batch. Under light load a
tap waits one fsync; under heavy load batches grow. Its messages are the
types of ``actors/_writes.py``.

A commit has a fixed cost (BEGIN, the WAL append, fsync, the thread
hand-off and its GIL round trips: ~170 µs of CPU here) whatever it
carries, so a commit starts at most every ``commit_every_ms``: a tap that
finds the Writer idle commits at once, but at a steady few thousand taps/s
the taps of the last few ms share one commit instead of paying one
each.

The commit thread is a ``NativePool`` of one: handing a batch over is one
C queue put, and its completion one loop wake-up, where gevent's general
threadpool paid a result object, a watcher and a condition per call. The
WAL is checkpointed by a second thread on a connection of its own
(PASSIVE: it never takes the write lock), so no commit carries a
checkpoint inside its fsync.

Acks are made here, after the fsync: each tap's reply gets ``set(Ack)``,
or, if it has a ``sink`` (a callable), the sink gets the whole commit's
``[(reply, bet_id, mult, balance), ...]`` of its replies at once: the
gateway then writes every ack of the commit in one pass (no future, no
Ack, no callback per tap).
If a commit fails, the stakes reserved in memory are released and every
tap gets a clear reject (``disk_low`` for a full disk, else ``overloaded``).

A Writer on a temp database; three credits queued before it runs share
one transaction (one batch, one fsync), and every ask is answered after
that commit, with the balance as it then stands:

    >>> import os, tempfile
    >>> from engine import ActorSystem
    >>> from actors import Config, Credit, EnsureUser, MarketContext, Writer, open_readonly
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "writer.db"))
    >>> ctx = MarketContext(cfg)
    >>> system = ActorSystem()
    >>> writer = system.spawn(Writer, ctx)
    >>> alice = writer.ask(EnsureUser("alice", 1_000), timeout=5)
    >>> asks = [writer.ask_async(Credit(alice, 100)) for _ in range(3)]
    >>> [a.get(5) for a in asks], ctx.writer_stats.batches
    ([1300, 1300, 1300], 1)
    >>> open_readonly(cfg.db).execute("SELECT balance FROM users WHERE id = ?",
    ...                               (alice,)).fetchone()
    (1300,)
    >>> system.stop()
"""
import logging
import time

import gevent

from engine import Actor, NativePool

from ._model import Ack, cell_key, payout_for
from .store import (DROP_SPAN, FAVOUR_NICE, FAVOUR_RT_PRIORITY, Store, UserExists,
                    favour_thread, is_disk_full)
from ._writes import (ArchiveStep, Credit, EnsureUser, Maintenance, PlaceBets, SaveSession,
                      SaveTicks, Settle, PurgeGuests, TopUp, TopUpResult)

__all__ = ["Writer"]

log = logging.getLogger("tapgrid.writer")

#: at most this often, a PASSIVE checkpoint on the checkpoint thread
CHECKPOINT_EVERY_S = 0.25


class _Batch:
    """One transaction's worth of messages, sorted by kind."""
    __slots__ = ("bets", "bet_replies", "settlements", "settle_asks", "credits", "credit_asks",
                 "ticks", "sessions", "done_asks", "deletes", "singles")

    def __init__(self):
        self.bets, self.bet_replies = [], []
        self.settlements, self.settle_asks = [], []
        self.credits, self.credit_asks = [], []
        self.ticks, self.sessions, self.deletes = [], [], []
        self.done_asks = []             # answered True after the commit
        self.singles = []

    def add(self, msg, reply):
        kind = type(msg)
        if kind is PlaceBets:
            for bet, r in msg.bets:
                self.bets.append(bet)
                self.bet_replies.append(r)
        elif kind is Settle:
            self.settle_asks.append((len(self.settlements), len(msg.settlements), reply))
            self.settlements.extend(msg.settlements)
        elif kind is SaveTicks:
            self.ticks.extend(msg.ticks)
        elif kind is Credit:
            self.credits.append((msg.user, msg.amount))
            self.credit_asks.append((msg.user, reply))
        elif kind is SaveSession:
            self.sessions.append(msg.row)
            self.done_asks.append(reply)
        elif kind is ArchiveStep and any(st[0] == DROP_SPAN for st in msg.statements):
            # checked inside its transaction and refused when the span changed:
            # alone, so a refusal never fails the taps beside it
            self.singles.append((msg, reply))
        elif kind is ArchiveStep:
            self.deletes.extend(msg.statements)
            self.done_asks.append(reply)
        elif kind is EnsureUser or kind is Maintenance or kind is PurgeGuests or kind is TopUp:
            self.singles.append((msg, reply))
        elif reply is not None:
            reply.fail(ValueError(f"writer: unknown message {msg!r}"))

    def writes(self):
        return bool(self.bets or self.settlements or self.credits or self.ticks or self.sessions
                    or self.deletes)


class Writer(Actor):
    def __init__(self, ctx, store=None):
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.max_batch = max(1, self.cfg.max_batch)
        self.store = store
        self._every = max(0.0, float(getattr(self.cfg, "commit_every_ms", 0.0))) / 1000.0

    def on_start(self):
        self.lane = NativePool(1, name="commit")
        self.checkpoints = NativePool(1, name="checkpoint")
        self._ckpt_busy = False
        self._ckpt_at = time.monotonic()
        self._ckpt_conn = None
        if self.store is None:
            cfg = self.cfg
            self.store = self.lane.call(Store, cfg.db, cfg.synchronous, cfg.commit_delay_ms,
                                        not cfg.replica, cfg.db_cache_mb, cfg.span_max_bets)
        if self.store.autocheckpoint:
            self.store.defer_checkpoints()
        # taps wait on its wake-ups: first to a CPU (once the Store is open:
        # a migration is no commit)
        how = getattr(self.cfg, "commit_priority", "fifo")
        if how != "normal":
            self.lane.call(favour_thread, FAVOUR_RT_PRIORITY, FAVOUR_NICE, how == "fifo")

    def on_stop(self):
        if self.store is not None:
            self.lane.call(self.store.close)
            self.store = None
        if self._ckpt_conn is not None and not self._ckpt_busy:
            self.checkpoints.call(self._ckpt_conn.close)
            self._ckpt_conn = None
        self.lane.close()
        self.checkpoints.close()

    def receive_batch(self, batch):
        b = _Batch()
        for msg, reply in batch:
            b.add(msg, reply)
        for msg, reply in b.singles:
            self._single(msg, reply)
        if not b.writes():
            return
        if self.cfg.commit == "per-tap" and len(b.bets) > 1:
            self._per_tap(b.bets, b.bet_replies)
            b.bets, b.bet_replies = [], []
            if not b.writes():
                return
        stats = self.ctx.writer_stats
        t = time.perf_counter()
        try:
            ids, applied = self._commit(b)
        except Exception as exc:
            self._failed(exc, b.bets, b.bet_replies, b.settle_asks, b.credit_asks, b.done_asks)
            return
        stats.record(len(b.bets), time.perf_counter() - t)
        self._committed(b, ids, applied)
        self._pace(t)

    def _commit(self, b):
        return self.lane.call(self.store.write_batch, b.bets, b.settlements, b.credits,
                              b.ticks, b.sessions, b.deletes, self.ctx.now())

    def _pace(self, started):
        # Answered already: what arrives while we wait here joins the next
        # commit (the mailbox is drained whole when this returns).
        wait = self._every - (time.perf_counter() - started)
        if wait > 0:
            gevent.sleep(wait)

    def _committed(self, b, ids, applied):
        if self.ctx.status.holds("disk_full"):
            log.info("writes succeed again: lifting the disk_full suspension")
            self.ctx.status.set("disk_full", False)
        self._answer(b.bets, b.bet_replies, ids)
        ledger = self.ctx.ledger
        for user, amount in b.credits:
            ledger.credit(user, amount)
        for user, reply in b.credit_asks:
            if reply is not None:
                reply.set(ledger.balance(user))
        for reply in b.done_asks:
            if reply is not None:
                reply.set(True)
        if b.settlements:
            self._settled(b.settlements, applied, b.settle_asks)
        self._maybe_checkpoint()

    def _answer(self, bets, replies, ids):
        balance = self.ctx.ledger.balance
        self.ctx.writer_stats.pending_taps -= len(bets)
        sinks = None
        for bet, reply, bet_id in zip(bets, replies, ids):
            if reply is None:
                continue
            sink = getattr(reply, "sink", None)
            if sink is None:
                reply.set(Ack(None, bet_id, bet.mult, balance(bet.user)))
                continue
            # A reply with a sink (the gateway's tap pipeline) is answered
            # with the rest of its sink's in one call: one pass writes the
            # whole commit's acks, with no Ack object or call per tap.
            if sinks is None:
                sinks = {}
            got = sinks.get(sink)
            if got is None:
                got = sinks[sink] = []
            got.append((reply, bet_id, bet.mult, balance(bet.user)))
        if sinks:
            for sink, acks in sinks.items():
                sink(acks)

    def _settled(self, settlements, applied, settle_asks):
        ledger = self.ctx.ledger
        done = []
        for s, ok in zip(settlements, applied):
            if ok:
                ledger.settle(s.user, s.payout, cell_key(s.col, s.lo, s.market),
                              payout_for(s.stake, s.mult))
            done.append((s, ledger.balance(s.user)) if ok else None)
        self.ctx.writer_stats.settlements += sum(1 for ok in applied if ok)
        for start, n, reply in settle_asks:
            if reply is not None:
                reply.set([d for d in done[start:start + n] if d is not None])

    # --- checkpoints, off the commit path -------------------------------------------------

    def _maybe_checkpoint(self):
        # Under Litestream (no autocheckpoint) the replicator owns checkpoints.
        if not self.store.autocheckpoint or self._ckpt_busy or time.monotonic() - self._ckpt_at < CHECKPOINT_EVERY_S:
            return
        self._ckpt_busy = True
        self.checkpoints.submit(self._checkpoint, (), self._checkpointed)

    def _checkpoint(self):
        # On the checkpoint thread: its own connection, so it runs beside a
        # commit instead of inside one.
        if self._ckpt_conn is None:
            self._ckpt_conn = self.store.checkpoint_connection()
        return self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _checkpointed(self, value, exc):
        self._ckpt_busy = False
        self._ckpt_at = time.monotonic()
        if exc is not None:
            log.warning("WAL checkpoint failed: %r", exc)
        if self.store is None and self._ckpt_conn is not None:
            conn, self._ckpt_conn = self._ckpt_conn, None
            self.checkpoints.submit(conn.close, (), lambda v, e: None)

    # --- the rest --------------------------------------------------------------------------

    def _per_tap(self, bets, replies):
        # The naive baseline: one transaction (one fsync) per bet.
        for bet, reply in zip(bets, replies):
            t = time.perf_counter()
            try:
                ids, _ = self.lane.call(self.store.write_batch, [bet], (), (), (), (), (),
                                        self.ctx.now())
            except Exception as exc:
                self._failed(exc, [bet], [reply], [], [], [])
                continue
            self.ctx.writer_stats.record(1, time.perf_counter() - t)
            self._answer([bet], [reply], ids)

    def _failed(self, exc, bets, bet_replies, settle_asks, credit_asks, done_asks):
        stats = self.ctx.writer_stats
        stats.failures += 1
        reason = "disk_low" if is_disk_full(exc) else "overloaded"
        log.error("commit failed (%s): %r; %d taps rejected", reason, exc, len(bets))
        if reason == "disk_low":
            # Its own cause: the free-space check must not reopen betting
            # while writes still fail (a quota, RLIMIT_FSIZE, a bad device).
            self.ctx.status.set("disk_full", True)
        ledger = self.ctx.ledger
        stats.pending_taps -= len(bets)
        for bet, reply in zip(bets, bet_replies):
            ledger.release(bet.user, bet.stake, cell_key(bet.col, bet.lo, bet.mkt >> 1),
                           payout_for(bet.stake, bet.mult))
            if reply is not None:
                reply.set(Ack(reason))
        for _, _, reply in settle_asks:
            if reply is not None:
                reply.fail(exc)
        for _, reply in credit_asks:
            if reply is not None:
                reply.fail(exc)
        for reply in done_asks:
            if reply is not None:
                reply.fail(exc)

    def _single(self, msg, reply):
        try:
            if type(msg) is EnsureUser:
                uid = self.lane.call(self.store.ensure_user, msg.name, msg.credit, self.ctx.now(),
                                     msg.new)
                if not self.ctx.ledger.known(uid):
                    self.ctx.ledger.add_user(uid, self.lane.call(self.store.user_balance, uid))
                result = uid
            elif type(msg) is PurgeGuests:
                result = self.lane.call(self.store.purge_idle_guests, msg.created_before)
                self.ctx.ledger.forget(result)
            elif type(msg) is TopUp:
                result = self._top_up(msg)
            elif type(msg) is ArchiveStep:
                self.lane.call(self.store.write_batch, (), (), (), (), (), list(msg.statements),
                               self.ctx.now())
                result = True
            else:
                self.lane.call(self.store.write_batch, (), (), (), (), (),
                               [(msg.sql, tuple(msg.params))], self.ctx.now())
                result = True
        except Exception as exc:
            if not isinstance(exc, UserExists):       # an answer, not a failure
                log.error("writer %s failed: %r", type(msg).__name__, exc)
            if reply is not None:
                reply.fail(exc)
            return
        if reply is not None:
            reply.set(result)

    def _top_up(self, msg):
        # The balance is the ledger's (stakes reserved but not yet written
        # count); the limit is the database's, checked in the credit's own
        # transaction. Singles run one at a time, so two top-ups of one
        # user can never both pass the check.
        ledger = self.ctx.ledger
        balance = ledger.balance(msg.user)
        if balance >= msg.below:
            return TopUpResult("balance_not_low", 0, balance)
        amount = msg.to_balance - balance
        ok, wait = self.lane.call(self.store.top_up, msg.user, amount, msg.every_ms, self.ctx.now())
        if not ok:
            return TopUpResult("rate_limited", 0, balance, wait)
        ledger.credit(msg.user, amount)
        return TopUpResult(None, amount, ledger.balance(msg.user))
