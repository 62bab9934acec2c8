"""A Column: one actor per time column, taking taps until it locks.

It drains its mailbox in one go, checks every tap against the rules of
SPEC section 3, reserves each accepted stake in the in-memory ledger, and
hands all accepted bets to the Writer as one message; the Writer answers
each tap after the commit. Rejects are answered at once, with a reason.
A Column keeps no state of its own (limits live in the shared ledger), so
a restart loses nothing.

A Column on a temp database, with a Writer behind it and a grid of one
cell (2.50x) in its column; the clock stands still at 1,000,000 ms:

    >>> import os, tempfile
    >>> from engine import ActorSystem
    >>> from actors import Column, Config, EnsureUser, Grid, MarketContext, Tap, Writer
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "column.db"))
    >>> ctx = MarketContext(cfg, clock=lambda: 1_000.0)
    >>> system = ActorSystem()
    >>> ctx.writer = system.spawn(Writer, ctx)
    >>> alice = ctx.writer.ask(EnsureUser("alice", 10_000), timeout=5)
    >>> t0 = 1_010_000                                   # locks at 1,007,000
    >>> ctx.grid = Grid(1, 9_500_000, 1_000_000, 0.5, {t0: {9_500_000: 250}})
    >>> column = system.spawn(Column, ctx, t0)
    >>> column.ask(Tap(alice, t0, 9_500_000, 500, 101, 1_000_000, "n1", bytes(64)), timeout=5)
    Ack(reason=None, bet=1, mult=250, balance=9500)
    >>> column.ask(Tap(alice, t0, 9_600_000, 500, 101, 1_000_000, "n2", bytes(64)), timeout=5)
    Ack(reason='bad_cell', bet=0, mult=0, balance=0)
    >>> column.ask(Tap(alice, t0, 9_500_000, 99_999, 101, 1_000_000, "n3", bytes(64)),
    ...            timeout=5).reason
    'insufficient_balance'
    >>> system.stop()
"""
from engine import Actor

from ._model import Ack, Bet, Tap, TapOrder, cell_key, payout_for
from ._reprice import vol_state
from ._writes import PlaceBets

__all__ = ["Column"]


class Column(Actor):
    max_batch = 2000

    def __init__(self, ctx, t0):
        self.ctx = ctx
        self.t0 = t0
        self._fresh = None             # the newest tick priced from here (price_ages.repriced)

    def _cells(self, now):
        """This column's multipliers and the time of the price behind them:
        the grid's, unless the asset has a newer tick than the grid was
        priced from (the MarketMaker reprices on every tick, a few columns
        a pass; a tap can arrive in between), then the column priced from
        that tick: by whichever of this Column and the MarketMaker asked
        the market's Repricer first (~0.3 ms of numpy, once per tick)."""
        ctx = self.ctx
        grid = ctx.grid
        latest = ctx.latest.tick
        if latest is None or latest.ts <= grid.price_ts:
            return grid.columns.get(self.t0) or {}, grid.price_ts
        if latest.price == grid.price:
            # the newer tick confirms the grid's price: its multipliers stand
            return grid.columns.get(self.t0) or {}, latest.ts
        # along the other open columns (the routing table): the grid needs them too
        cells, _ = ctx.repricing.column(ctx.cfg, latest.price, latest.ts, now, self.t0,
                                        *vol_state(ctx.vol), ctx.columns)
        if self._fresh is not latest:
            self._fresh = latest
            ctx.price_ages.repriced += 1
        return cells, latest.ts

    def receive_batch(self, batch):
        ctx = self.ctx
        cfg = ctx.cfg
        ledger = ctx.ledger
        status = ctx.status
        now = ctx.now()
        t0 = self.t0
        closed = now >= t0 - cfg.lock_ms or t0 > now + cfg.horizon_ms
        cells, price_ts = self._cells(now) if not closed else ({}, 0)
        # With a bound, no multiplier comes from a price older than it (SPEC 7):
        # the newest tick is then too old to say what the price is now.
        bound = cfg.max_price_age_ms
        too_old = bool(bound) and not closed and now - price_ts > bound
        number = ctx.number
        ages = ctx.price_ages
        backlog_room = cfg.writer_queue - ctx.writer_stats.pending_taps
        accepted = []
        taken = ctx.taken
        try:
            for tap, reply in batch:
                if type(tap) is TapOrder:
                    tap, reply = tap
                if type(tap) is not Tap or tap.col != t0:
                    reason, mult = "bad_request", None
                else:
                    try:
                        # The final replay check (SPEC 4), whatever the nonce
                        # store said; see actors/_taken.py for why it needs no lock.
                        reason = taken.check(tap.user, tap.nonce, tap.ts, now)
                        if reason is None:
                            reason, mult = self._check(tap, cells, closed, status, ledger, cfg,
                                                       number)
                            if reason is None and too_old:
                                reason = "market_suspended"
                                ages.too_old += 1
                        else:
                            mult = None
                    except (TypeError, ValueError):
                        reason, mult = "bad_request", None   # a malformed tap fails alone
                    if reason is None and len(accepted) >= backlog_room:
                        reason = "overloaded"
                if reason is not None:
                    ctx.count(reason)
                    if reply is not None:
                        reply.set(Ack(reason))
                    continue
                exposure = payout_for(tap.stake, mult)
                taken.take(tap.user, tap.nonce, now)
                ledger.reserve(tap.user, tap.stake, cell_key(t0, tap.lo, number), exposure)
                ages.add(now - price_ts)
                accepted.append((Bet(tap.user, t0, tap.lo, tap.stake, mult, tap.min_mult,
                                     tap.ts, tap.nonce, tap.sig, now,
                                     2 * number + (tap.market_id is not None)), reply))
        except BaseException as exc:
            # Leave the ledger as it was: the taps of this batch fail together.
            for bet, _ in accepted:
                taken.forget(bet.user, bet.nonce)
                ledger.release(bet.user, bet.stake, cell_key(t0, bet.lo, number),
                               payout_for(bet.stake, bet.mult))
            # The engine fails the asks' Futures; orders came as tells.
            for msg, _ in batch:
                if type(msg) is TapOrder:
                    msg.reply.fail(exc)
            raise
        if accepted:
            ctx.writer_stats.pending_taps += len(accepted)
            ctx.writer.tell(PlaceBets(accepted))

    @staticmethod
    def _check(tap, cells, closed, status, ledger, cfg, number=0):
        if not status.is_open:
            return status.reject_reason, None
        if closed:
            return "column_closed", None
        mult = cells.get(tap.lo)
        if mult is None:
            return "bad_cell", None
        if tap.stake < cfg.min_stake or tap.stake > cfg.max_stake:
            return "limit", None
        if ledger.open_bets(tap.user) >= cfg.max_open_bets:
            return "limit", None
        if ledger.balance(tap.user) < tap.stake:
            return "insufficient_balance", None
        if mult < tap.min_mult:
            return "odds_changed", None
        if ledger.liability(cell_key(tap.col, tap.lo, number)) + payout_for(tap.stake, mult) \
                > cfg.cell_liability_cap:
            return "limit", None
        return None, mult
