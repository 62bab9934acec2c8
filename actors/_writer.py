"""The Writer: the only SQLite writer, with group commit.

It takes everything queued (up to ``max_batch`` messages), writes one
transaction, commits in a native thread (the event loop never waits on
fsync), then answers every tap in the batch. Under light load a tap waits
one fsync; under heavy load batches grow. Messages:

- ``("bets", [(Bet, reply), ...])`` from Columns; each reply gets an ``Ack``;
- ``("settle", [Settlement, ...])`` (ask) from the Resolver; the answer is
  ``[(Settlement, balance), ...]`` for those that applied (idempotent);
- ``("credit", user, amount)`` (ask), ``("user", name, credit)`` (ask -> id),
  ``("ticks", [(ts, price), ...])``, ``("session", row)`` (ask),
  ``("sql", sql, params)`` (ask; maintenance deletes),
  ``("archive", [(sql, params), ...])`` (ask; the archiver's chunked deletes
  and ``incremental_vacuum`` steps). They ride in the batch's transaction
  (``deletes``): a chunk costs the taps beside it a millisecond or two of
  SQLite work, where a transaction of its own would cost them an fsync.

If a commit fails, the stakes reserved in memory are released and every
tap gets a clear reject (``disk_low`` for a full disk, else ``overloaded``).

A Writer on a temp database; three credits queued before it runs share
one transaction (one batch, one fsync), and every ask is answered after
that commit, with the balance as it then stands:

    >>> import os, tempfile
    >>> from engine import ActorSystem
    >>> from actors import Config, MarketContext, Writer, open_readonly
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "writer.db"))
    >>> ctx = MarketContext(cfg)
    >>> system = ActorSystem()
    >>> writer = system.spawn(Writer, ctx)
    >>> alice = writer.ask(("user", "alice", 1_000), timeout=5)
    >>> asks = [writer.ask_async(("credit", alice, 100)) for _ in range(3)]
    >>> [a.get(5) for a in asks], ctx.writer_stats.batches
    ([1300, 1300, 1300], 1)
    >>> open_readonly(cfg.db).execute("SELECT balance FROM users WHERE id = ?",
    ...                               (alice,)).fetchone()
    (1300,)
    >>> system.stop()
"""
import logging
import time

from engine import Actor, run_blocking

from ._model import Ack, payout_for
from .store import Store, UserExists, is_disk_full

__all__ = ["Writer"]

log = logging.getLogger("tapgrid.writer")


class Writer(Actor):
    def __init__(self, ctx, store=None):
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.max_batch = max(1, self.cfg.max_batch)
        self.store = store

    def on_start(self):
        if self.store is None:
            cfg = self.cfg
            self.store = run_blocking(Store, cfg.db, cfg.synchronous, cfg.commit_delay_ms,
                                       not cfg.replica)

    def on_stop(self):
        if self.store is not None:
            run_blocking(self.store.close)
            self.store = None

    def receive_batch(self, batch):
        bets, bet_replies = [], []
        settlements, settle_asks = [], []
        credits, credit_asks = [], []
        ticks, sessions, session_asks, singles = [], [], [], []
        deletes, delete_asks = [], []
        for msg, reply in batch:
            kind = msg[0]
            if kind == "bets":
                for bet, r in msg[1]:
                    bets.append(bet)
                    bet_replies.append(r)
            elif kind == "settle":
                settle_asks.append((len(settlements), len(msg[1]), reply))
                settlements.extend(msg[1])
            elif kind == "ticks":
                ticks.extend(msg[1])
            elif kind == "credit":
                credits.append((msg[1], msg[2]))
                credit_asks.append((msg[1], reply))
            elif kind == "session":
                sessions.append(msg[1])
                session_asks.append(reply)
            elif kind == "archive":
                deletes.extend(msg[1])
                delete_asks.append(reply)
            elif kind in ("user", "sql", "purge_guests"):
                singles.append((msg, reply))
            elif reply is not None:
                reply.fail(ValueError(f"writer: unknown message {kind!r}"))
        for msg, reply in singles:
            self._single(msg, reply)
        if not (bets or settlements or credits or ticks or sessions or deletes):
            return
        if self.cfg.commit == "per-tap" and len(bets) > 1:
            self._per_tap(bets, bet_replies)
            bets, bet_replies = [], []
            if not (settlements or credits or ticks or sessions or deletes):
                return
        stats = self.ctx.writer_stats
        t = time.perf_counter()
        try:
            ids, applied = run_blocking(self.store.write_batch, bets, settlements, credits,
                                        ticks, sessions, deletes, self.ctx.now())
        except Exception as exc:
            self._failed(exc, bets, bet_replies, settle_asks, credit_asks,
                         session_asks + delete_asks)
            return
        stats.record(len(bets), time.perf_counter() - t)
        if self.ctx.status.holds("disk_full"):
            log.info("writes succeed again: lifting the disk_full suspension")
            self.ctx.status.set("disk_full", False)
        self._answer(bets, bet_replies, ids)
        ledger = self.ctx.ledger
        for user, amount in credits:
            ledger.credit(user, amount)
        for user, reply in credit_asks:
            if reply is not None:
                reply.set(ledger.balance(user))
        for reply in session_asks + delete_asks:
            if reply is not None:
                reply.set(True)
        if settlements:
            self._settled(settlements, applied, settle_asks)

    def _answer(self, bets, replies, ids):
        ledger = self.ctx.ledger
        self.ctx.writer_stats.pending_taps -= len(bets)
        for bet, reply, bet_id in zip(bets, replies, ids):
            if reply is not None:
                reply.set(Ack(None, bet_id, bet.mult, ledger.balance(bet.user)))

    def _settled(self, settlements, applied, settle_asks):
        ledger = self.ctx.ledger
        done = []
        for s, ok in zip(settlements, applied):
            if ok:
                ledger.settle(s.user, s.payout, (s.col, s.lo), payout_for(s.stake, s.mult))
            done.append((s, ledger.balance(s.user)) if ok else None)
        self.ctx.writer_stats.settlements += sum(1 for ok in applied if ok)
        for start, n, reply in settle_asks:
            if reply is not None:
                reply.set([d for d in done[start:start + n] if d is not None])

    def _per_tap(self, bets, replies):
        # The naive baseline: one transaction (one fsync) per bet.
        for bet, reply in zip(bets, replies):
            t = time.perf_counter()
            try:
                ids, _ = run_blocking(self.store.write_batch, [bet], (), (), (), (), (),
                                      self.ctx.now())
            except Exception as exc:
                self._failed(exc, [bet], [reply], [], [], [])
                continue
            self.ctx.writer_stats.record(1, time.perf_counter() - t)
            self._answer([bet], [reply], ids)

    def _failed(self, exc, bets, bet_replies, settle_asks, credit_asks, session_asks):
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
            ledger.release(bet.user, bet.stake, (bet.col, bet.lo), payout_for(bet.stake, bet.mult))
            if reply is not None:
                reply.set(Ack(reason))
        for _, _, reply in settle_asks:
            if reply is not None:
                reply.fail(exc)
        for _, reply in credit_asks:
            if reply is not None:
                reply.fail(exc)
        for reply in session_asks:
            if reply is not None:
                reply.fail(exc)

    def _single(self, msg, reply):
        try:
            if msg[0] == "user":
                name, credit, new = msg[1], msg[2], msg[3] if len(msg) > 3 else False
                uid = run_blocking(self.store.ensure_user, name, credit, self.ctx.now(), new)
                if not self.ctx.ledger.known(uid):
                    self.ctx.ledger.add_user(uid, run_blocking(self.store.user_balance, uid))
                result = uid
            elif msg[0] == "purge_guests":
                result = run_blocking(self.store.purge_idle_guests, msg[1])
                self.ctx.ledger.forget(result)
            else:
                _, sql, params = msg
                run_blocking(self.store.write_batch, deletes=[(sql, params)], now=self.ctx.now())
                result = True
        except Exception as exc:
            if not isinstance(exc, UserExists):       # an answer, not a failure
                log.error("writer %s failed: %r", msg[0], exc)
            if reply is not None:
                reply.fail(exc)
            return
        if reply is not None:
            reply.set(result)
