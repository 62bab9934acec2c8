"""One pricing of each column per tick, shared by the MarketMaker and the Columns.

The MarketMaker reprices the whole grid on every tick, a column per slice
(``price_grid``); until it has published the grid, a Column with taps
prices its own column from the newer tick (``Column._cells``). Both used
to run ``price_columns`` for the same column from the same tick, so on a
busy market every column was priced twice or more per tick (~0.3-0.45 ms
of numpy each). A market's ``Repricer`` holds the multipliers of the
columns priced from a (tick, volatility) state, and whoever asks first
prices; the others read them.

The state is the whole of what ``price_columns`` reads besides ``now``:
the tick (price, ts), the volatility (estimate, tick interval and its
spread, the estimate's error, the floor, the window's variance ratio) and
the market's grid config. For
a column that has not started (``t0 >= now``, which every open column is:
they lock ``lock_ms`` before) ``now`` does not enter the price: the window
starts at ``t0`` and the landing variance runs from the tick to ``t0``. So
an entry stays right for as long as its state is the newest. A column that
has started is priced afresh, never kept.

No lock is needed: the market runs on one gevent loop, and the look-up,
the pricing and the store below have no blocking call between them, so two
asks for the same column cannot both price it; one pass prices a few
columns (``PASS_COST``), well under the ~1 ms a loop may be held. The two newest states are kept:
the MarketMaker may still be slicing through the grid of a tick while the
Columns already price from the next one, and neither must evict the other.

    >>> from actors import Config
    >>> r = Repricer()
    >>> cfg = Config()
    >>> a, priced = r.column(cfg, 9_500_000, 999_900, 1_000_000, 1_010_000, 1e-4, 100.0, 0.05)
    >>> b, again = r.column(cfg, 9_500_000, 999_900, 1_000_050, 1_010_000, 1e-4, 100.0, 0.05)
    >>> priced, again, a is b
    (True, False, True)
    >>> r.statistics()
    RepricingStatistics(columns_priced=1, hits=1, states=1)
"""
from dataclasses import dataclass

from ._pricer import price_columns

__all__ = ["Repricer", "RepricingStatistics", "RepriceCounts", "vol_state", "PASS_COST",
           "column_cost"]

# How many columns one pass prices. A pass's fixed cost (~150 array calls,
# ~0.2 ms of CPU on this box) is most of a near column's; a near column adds
# ~0.04 ms, one more than ~6 windows after the tick ~0.07 ms (the bivariate
# terms' |r| >= 0.925 branch; stop 27 made both cheaper, perf/README.md).
# So a pass holds up to PASS_COST units, a near column 1 and a far one 2:
# five far columns (~0.5 ms) or five near and two far (~0.5 ms), no longer
# than a far column alone held the loop before (~0.55 ms), and a grid of
# 12 columns is two passes instead of seven or eight.
PASS_COST = 10
FAR_WINDOWS = 6


def column_cost(t0, price_ts, column_ms):
    """A column's share of a pass (see PASS_COST)."""
    return 2 if t0 - price_ts > FAR_WINDOWS * column_ms else 1


@dataclass(frozen=True)
class RepricingStatistics:
    """A snapshot of the counts (trio's ``statistics()`` style)."""
    columns_priced: int        # price_columns passes, one column each
    hits: int                  # asks answered with a column already priced
    states: int                # distinct (tick, volatility) states priced from


class RepriceCounts:
    """The counters, shared by every market's Repricer of one server."""
    __slots__ = ("columns_priced", "hits", "states")

    def __init__(self):
        self.columns_priced = 0
        self.hits = 0
        self.states = 0


def vol_state(vol):
    """(sigma estimate, tick_ms, sigma_sd, tick_sd_ms, sigma floor, window
    variance ratio) of a ``Volatility``, in ``Repricer.column``'s order:
    read in one pass."""
    return vol.estimate, vol.tick_ms, vol.log_sd, vol.tick_sd_ms, vol.floor, vol.horizon_ratio


class Repricer:
    KEEP = 2                   # states kept: the grid's tick and the newest

    def __init__(self, counts=None):
        self.counts = counts if counts is not None else RepriceCounts()
        self._states = {}      # state -> {t0: cells}, oldest first

    def column(self, cfg, price, price_ts, now, t0, sigma, tick_ms, sigma_sd=0.0,
               tick_sd_ms=None, sigma_floor=0.0, window_vr=1.0, along=()):
        """(cells, priced): the column's {lo: mult} from this state, and
        whether this call priced it. On a miss the pass also prices what
        fits (``PASS_COST``) of the columns ``along`` it (the other open
        ones) not priced yet, the next ones first: a pass's fixed cost is
        most of a column's. The cells are shared: never mutate them."""
        counts = self.counts
        if t0 < now:           # started: its price moves with now
            counts.columns_priced += 1
            return self._price(cfg, price, price_ts, now, [t0], sigma, tick_ms, sigma_sd,
                               tick_sd_ms, sigma_floor, window_vr)[t0], True
        state = (price, price_ts, sigma, tick_ms, sigma_sd, tick_sd_ms, sigma_floor, window_vr,
                 cfg.column_ms, cfg.band_cents, cfg.max_bands, cfg.edge_bp)
        states = self._states
        cols = states.get(state)
        if cols is None:
            cols = states[state] = {}
            counts.states += 1
            while len(states) > self.KEEP:
                del states[next(iter(states))]
        cells = cols.get(t0)
        if cells is not None:
            counts.hits += 1
            return cells, False
        t0s = [t0]
        room = PASS_COST - column_cost(t0, price_ts, cfg.column_ms)
        if room > 0 and along:
            rest = [c for c in along if c >= now and c != t0 and c not in cols]
            rest.sort(key=lambda c: (c < t0, abs(c - t0)))      # the next ones first
            for c in rest:
                cost = column_cost(c, price_ts, cfg.column_ms)
                if cost <= room:
                    t0s.append(c)
                    room -= cost
        priced = self._price(cfg, price, price_ts, now, t0s, sigma, tick_ms, sigma_sd,
                             tick_sd_ms, sigma_floor, window_vr)
        cols.update(priced)
        counts.columns_priced += len(t0s)
        return priced[t0], True

    @staticmethod
    def _price(cfg, price, price_ts, now, t0s, sigma, tick_ms, sigma_sd, tick_sd_ms, sigma_floor,
               window_vr):
        out = price_columns(price, price_ts, now, t0s, cfg.column_ms, cfg.band_cents,
                            cfg.max_bands, sigma, cfg.edge_bp, tick_ms, sigma_sd,
                            tick_sd_ms=tick_sd_ms, sigma_floor=sigma_floor, window_vr=window_vr)
        return {t0: out.get(t0) or {} for t0 in t0s}

    def statistics(self):
        c = self.counts
        return RepricingStatistics(c.columns_priced, c.hits, c.states)
