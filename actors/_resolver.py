"""The Resolver: settles bets from the price path.

The path of a column's window ``[t0, t0 + column_ms)`` is the price
prevailing at ``t0`` (the last tick before it) plus every tick with an
exchange time inside the window, joined as a continuous line; a cell is
touched when the path's ``[low, high]`` overlaps its band. A touched bet
wins at once; when the window is over, every untouched bet loses, or is
void (refunded) if the feed was stale at any moment inside the window.

Nobody tells it about new bets: the Writer -> Resolver path is a poll of
the database. On every tick it queries the open-bets index (the partial
covering index ``bets_open(col, lo, ...)`` of the column's day table
(``store._spans``; and of ``bet_rows``, bets from before), through its own read-only
connection, on a native thread of its own: a column's open bets can be
tens of thousands of rows, never read on the event loop) for the bets of that tick's column inside the window's range
so far (instant wins), and every 0.25 s (the ``sweep`` timer) it queries
the index for columns whose window is over. A bet is therefore seen once
the Writer's commit is visible, at the next tick or sweep. Its settlements
go back through the Writer (an ask), which applies each only if the bet is
still open, so a restart (which re-settles everything pending from the
stored ticks) pays nothing twice; results then go to ``ctx.sinks``.

A bet on the band [95,000.00, 95,010.00) of column 1,010,000; a price
before the window and one inside it that touches the band win it at once
(the clock stands still, so no sweep settles anything meanwhile):

    >>> import os, tempfile
    >>> from gevent.queue import Queue
    >>> from engine import ActorSystem, Future
    >>> from actors import (Bet, Config, EnsureUser, MarketContext, PlaceBets, Resolver, Sinks,
    ...                     Tick, Writer)
    >>> class Results(Sinks):
    ...     def __init__(self): self.got = Queue()
    ...     def on_result(self, user, s, balance): self.got.put((s.outcome, s.payout, balance))
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "resolver.db"))
    >>> ctx = MarketContext(cfg, clock=lambda: 1_000.0, sinks=Results())
    >>> system = ActorSystem()
    >>> ctx.writer = system.spawn(Writer, ctx)
    >>> alice = ctx.writer.ask(EnsureUser("alice", 10_000), timeout=5)
    >>> t0, lo = 1_010_000, 9_500_000
    >>> ctx.ledger.reserve(alice, 500, (t0, lo), 1250)       # as a Column does
    >>> ack = Future()
    >>> ctx.writer.tell(PlaceBets([(Bet(alice, t0, lo, 500, 250, 101, 1_000_000, "n1",
    ...                                 bytes(64), 1_000_000), ack)]))
    >>> ack.get(5).reason is None
    True
    >>> resolver = system.spawn(Resolver, ctx)
    >>> resolver.tell(Tick(9_480_000, t0 - 400))
    >>> resolver.tell(Tick(9_503_000, t0 + 300))             # inside the band: WON
    >>> ctx.sinks.got.get(timeout=5)
    (1, 1250, 10750)
    >>> system.stop()
"""
import bisect
import logging
from collections import deque

import gevent

from engine import Actor, NativePool

from .feeds import Tick
from ._model import LOST, VOID, WON, Settlement, payout_for
from .store import bet_tables, open_index, open_readonly, tables_of
from ._watchdog import Health
from ._writes import Settle

__all__ = ["Resolver", "path_of", "window_path", "outcome_for", "touches"]

log = logging.getLogger("tapgrid.resolver")


def touches(lo, band, low, high):
    """Whether a path with range ``[low, high]`` (None: no price) meets the
    band ``[lo, lo + band)``: the one touch rule, for settling and for pricing."""
    return low is not None and lo <= high and lo + band > low


def path_of(ticks, t0, t1, stale_after):
    """(low, high, stale) of the window [t0, t1) from sorted (ts, price)
    pairs; low/high None when no price prevailed. ``stale`` is True when at
    some moment of the window no tick had arrived for ``stale_after`` ms."""
    times = [t for t, _ in ticks]
    i = bisect.bisect_left(times, t0)
    if i == 0:
        return None, None, True
    prev_ts, prev_price = ticks[i - 1]
    low = high = prev_price
    stale = t0 - prev_ts > stale_after
    last = prev_ts
    j = i
    while j < len(ticks) and ticks[j][0] < t1:
        ts, price = ticks[j]
        if ts - last > stale_after:
            stale = True
        if price < low:
            low = price
        elif price > high:
            high = price
        last = ts
        j += 1
    if t1 - last > stale_after:
        # No tick for too long before the window ended (the server may have
        # been down): the market was stale then.
        stale = True
    return low, high, stale


def _overlaps(spans, t0, t1):
    return any(start < t1 and (end is None or end > t0) for start, end in spans)


def window_path(ticks, spans, t0, t1, stale_after):
    """Everything settlement needs about the window ``[t0, t1)``:
    ``(low, high, stale, clean)``. ``low, high, stale`` are ``path_of``'s,
    with ``stale`` also True when a stale span (``(start, end|None)``, from
    the Watchdog) or a gap of more than ``stale_after`` between ticks (up
    to and including the tick that ends it) overlaps the window. ``clean`` is ``(low, high)`` of the path up to the
    last tick at which the window was not stale yet (None if there was
    none): a band touched there won at that tick, as the live Resolver pays
    instant wins, whatever happened later in the window."""
    low, high, stale = path_of(ticks, t0, t1, stale_after)
    if low is None:
        return None, None, True, None
    times = [t for t, _ in ticks]
    i = bisect.bisect_left(times, t0)
    spans = list(spans) + [(a + stale_after, b + 1) for (a, _), (b, _) in
                           zip(ticks[max(0, i - 1):], ticks[i:]) if b - a > stale_after]
    stale = stale or _overlaps(spans, t0, t1)
    c_low = c_high = ticks[i - 1][1]
    clean = None
    for ts, price in ticks[i:]:
        if ts >= t1 or _overlaps(spans, t0, ts + 1):
            break
        c_low, c_high = min(c_low, price), max(c_high, price)
        clean = (c_low, c_high)
    return low, high, stale, clean


def outcome_for(lo, band, path):
    """The outcome of a bet on band ``lo`` from ``window_path``'s answer
    (SPEC section 3): won if touched while the window was clean, else void
    if it went stale, else won if touched, else lost."""
    low, high, stale, clean = path
    if clean is not None and touches(lo, band, *clean):
        return WON
    if stale:
        return VOID
    return WON if touches(lo, band, low, high) else LOST


class Resolver(Actor):
    def __init__(self, ctx, keep_ms=None, grace_ms=300):
        self.ctx = ctx
        cfg = ctx.cfg
        self.keep_ms = keep_ms or (cfg.horizon_ms + 4 * cfg.column_ms)
        self.grace_ms = grace_ms
        self.stale_after = 2 * cfg.tick_interval_ms
        # this market's bets only (bet_rows.mkt = 2 * number + keyed), from
        # its asset's price record
        n = getattr(ctx, "number", 0)
        self.mkts = (2 * n, 2 * n + 1)
        self.number = n
        self.ticks_table, self.spans_table = getattr(ctx, "record", ("ticks", "stale_spans"))

    def on_start(self):
        self.ticks = deque()                 # (ts, price), sorted by ts
        self.stale_spans = []                # [start, end|None] from the Watchdog
        self.inflight = set()                # bet ids sent to the Writer, not answered
        self.ranges = {}                     # t0 -> [low, high] of the live window
        self.stats = {"won": 0, "lost": 0, "void": 0, "recovered_columns": 0}
        self.reader = NativePool(1, name="resolver")
        self.ro = self.reader.call(open_readonly, self.ctx.cfg.db)
        since = self.ctx.now() - self.keep_ms
        rows = self._query(f"SELECT ts, price FROM {self.ticks_table} WHERE ts >= ? ORDER BY ts",
                           (since,))
        self.ticks.extend(rows)
        # Stale periods are part of the record: a restart settles as the
        # live Resolver would have (and as ``tapgrid verify`` checks).
        self.stale_spans = [list(r) for r in self._query(
            f"SELECT start, end FROM {self.spans_table} WHERE end IS NULL OR end >= ?"
            " ORDER BY start", (since,))]
        self.schedule_every(0.25, "sweep")
        self.ref.tell("sweep")

    def on_stop(self):
        if getattr(self, "ro", None) is not None:
            self.reader.call(self.ro.close)
            self.ro = None
        if getattr(self, "reader", None) is not None:
            self.reader.close()

    def _query(self, sql, params=()):
        return self.reader.call(self._fetch, sql, params)

    def _fetch(self, sql, params):
        return self.ro.execute(sql, params).fetchall()

    def _open_bets(self, select, where, params, col=None):
        """``SELECT {select} ... WHERE outcome = 0 AND {where}`` over the open-bets
        index of every bet table, or of those that can hold column ``col``."""
        return self.reader.call(self._fetch_open, select, where, params, col)

    def _fetch_open(self, select, where, params, col):
        tables = bet_tables(self.ro)
        if col is not None:
            tables = sorted({"bet_rows", *tables_of(self.ro, col)})
        sql = " UNION ALL ".join(f"SELECT {select} FROM {t} INDEXED BY {open_index(t)}"
                                 f" WHERE outcome = 0 AND {where}" for t in tables)
        return self.ro.execute(sql, tuple(params) * len(tables)).fetchall()

    # --- messages ---------------------------------------------------------------------

    def receive(self, msg):
        if type(msg) is Tick:
            return self._tick(msg)
        if type(msg) is Health:
            return self._health(msg)
        if msg == "sweep":
            return self._sweep()
        if isinstance(msg, tuple) and msg[0] == "settled":
            return self._settled(msg[1], msg[2])
        if msg == "stats":
            return dict(self.stats, inflight=len(self.inflight))
        raise ValueError(f"resolver: unknown message {msg!r}")

    def _health(self, health):
        if health.state == "stale":
            self.stale_spans.append([health.since, None])
        elif self.stale_spans and self.stale_spans[-1][1] is None:
            self.stale_spans[-1][1] = health.since

    def _was_stale(self, t0, t1):
        for start, end in self.stale_spans:
            if start < t1 and (end is None or end > t0):
                return True
        return False

    def _tick(self, tick):
        ticks = self.ticks
        if ticks and tick.ts < ticks[-1][0]:
            return                            # the Watchdog orders ticks; be safe
        if ticks and tick.ts - ticks[-1][0] > self.stale_after:
            # A gap in the record (e.g. the server was down): stale meanwhile,
            # so nothing settles on the price from before it.
            # The span covers the tick that ends it: a price after a gap has
            # no prevailing fresh price to start a window's path from.
            self.stale_spans.append([ticks[-1][0] + self.stale_after, tick.ts + 1])
        ticks.append((tick.ts, tick.price))
        cutoff = tick.ts - self.keep_ms
        while ticks and ticks[0][0] < cutoff:
            ticks.popleft()
        col_ms = self.ctx.cfg.column_ms
        t0 = tick.ts // col_ms * col_ms
        rng = self.ranges.get(t0)
        if rng is None:
            low, high, _ = path_of(list(ticks), t0, t0 + col_ms, self.stale_after)
            if low is None:
                return
            rng = self.ranges[t0] = [low, high]
        else:
            if tick.price < rng[0]:
                rng[0] = tick.price
            elif tick.price > rng[1]:
                rng[1] = tick.price
        if self._was_stale(t0, tick.ts + 1):
            return   # no instant wins from a window that already went stale: it is void
        self._instant_wins(t0, rng[0], rng[1])

    def _instant_wins(self, t0, low, high):
        band = self.ctx.cfg.band_cents
        rows = self._open_bets("id, user, lo, stake, mult",
                               "col = ? AND lo > ? AND lo <= ? AND mkt IN (?, ?)",
                               (t0, low - band, high) + self.mkts, col=t0)
        n = self.number
        wins = [Settlement(bid, user, t0, lo, stake, mult, WON, payout_for(stake, mult), n)
                for bid, user, lo, stake, mult in rows if bid not in self.inflight]
        if wins:
            self._send(wins)

    def _sweep(self):
        """Settle every column whose window is over (and the grace for late ticks)."""
        now = self.ctx.now()
        col_ms = self.ctx.cfg.column_ms
        horizon = now - col_ms - self.grace_ms
        cols = sorted({c for (c,) in self._open_bets("DISTINCT col", "col <= ? AND mkt IN (?, ?)",
                                                     (horizon,) + self.mkts)})
        for t0 in cols:
            self._finish(t0)
        for t0 in [t for t in self.ranges if t + col_ms < horizon]:
            del self.ranges[t0]
        if self.stale_spans:
            keep_after = now - self.keep_ms
            self.stale_spans = [s for s in self.stale_spans if s[1] is None or s[1] > keep_after]

    def _finish(self, t0):
        cfg = self.ctx.cfg
        t1 = t0 + cfg.column_ms
        if self.ticks and self.ticks[0][0] < t0 - self.stale_after:
            ticks = list(self.ticks)
        else:
            # Older than what we keep in memory (e.g. after a restart): the
            # stored ticks are the record.
            self.stats["recovered_columns"] += 1
            ticks = self._query(f"SELECT ts, price FROM {self.ticks_table} WHERE ts >= ?"
                                " AND ts < ? ORDER BY ts",
                                (t0 - 10 * self.stale_after - cfg.column_ms, t1))
        path = window_path(ticks, self.stale_spans, t0, t1, self.stale_after)
        rows = self._open_bets("id, user, lo, stake, mult", "col = ? AND mkt IN (?, ?)",
                               (t0,) + self.mkts, col=t0)
        band = cfg.band_cents
        out = []
        for bid, user, lo, stake, mult in rows:
            if bid in self.inflight:
                continue
            outcome = outcome_for(lo, band, path)
            payout = (payout_for(stake, mult) if outcome == WON else
                      stake if outcome == VOID else 0)
            out.append(Settlement(bid, user, t0, lo, stake, mult, outcome, payout, self.number))
        if out:
            self._send(out)

    def _send(self, settlements):
        ids = [s.bet for s in settlements]
        self.inflight.update(ids)
        fut = self.ctx.writer.ask_async(Settle(settlements))
        tell = self.ref.tell
        fut.add_done_callback(lambda f: tell(("settled", ids, f)))

    def _settled(self, ids, fut):
        self.inflight.difference_update(ids)
        try:
            done = fut.result()
        except Exception as exc:
            log.error("settlement commit failed (%r); retrying on the next sweep", exc)
            return
        sinks = self.ctx.sinks
        names = {WON: "won", LOST: "lost", VOID: "void"}
        for i, (s, balance) in enumerate(done):
            self.stats[names[s.outcome]] += 1
            sinks.on_result(s.user, s, balance)
            if i % 500 == 499:
                gevent.sleep(0)       # a whole column's results: let taps in between
