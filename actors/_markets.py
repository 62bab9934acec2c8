"""Markets (SPEC section 3, v1.1): a market is an asset and a column
duration, named by its id (``BTC-USD/5s``), with its own grid settings.

``Config.markets`` lists them: each entry is an id, optionally followed by
``:field=value`` overrides (the form environment variables and flags can
carry), or, in TOML, a table ``{market_id = ..., lock_ms = ...}``. An
unset field comes from the top-level config (``lock_ms``, ``horizon_ms``,
``max_bands``, ``cell_liability_cap``; ``band_cents`` for BTC-USD, a band
scaled to the asset's price otherwise). No entry at all means one market,
``BTC-USD/<column_ms>``: today's grid, which v1 clients see unchanged. The
first market is the default (a tap without ``market_id`` goes there).

    >>> from actors import Config
    >>> specs = market_specs(Config(markets=["BTC-USD/5s", "ETH-USD/15s:lock_ms=4000"]))
    >>> [(s.market_id, s.asset, s.column_ms, s.lock_ms, s.band_cents) for s in specs]
    [('BTC-USD/5s', 'BTC-USD', 5000, 3000, 1000), ('ETH-USD/15s', 'ETH-USD', 15000, 4000, 100)]
    >>> market_specs(Config())[0].market_id
    'BTC-USD/5s'
    >>> parse_market_id("ETH-USD/500ms"), parse_market_id("btc-usd/1m")
    (('ETH-USD', 500), ('BTC-USD', 60000))
"""
import re
from typing import NamedTuple

__all__ = ["MarketSpec", "market_specs", "market_cfg", "parse_market_id", "format_market_id",
           "MARKET_FIELDS", "DEFAULT_BANDS", "asset_slug", "markets_body"]

#: the per-market settings (all integers), overridable per entry
MARKET_FIELDS = ("lock_ms", "horizon_ms", "band_cents", "max_bands", "cell_liability_cap")
#: a band of about $10 on BTC's scale for the assets the sim knows
DEFAULT_BANDS = {"ETH-USD": 100, "SOL-USD": 10}

_ID = re.compile(r"([A-Z0-9]{2,10})-([A-Z]{3,4})/([0-9]{1,7})(ms|s|m)")
_UNIT = {"ms": 1, "s": 1000, "m": 60_000}


class MarketSpec(NamedTuple):
    market_id: str
    asset: str
    column_ms: int
    lock_ms: int
    horizon_ms: int
    band_cents: int
    max_bands: int
    cell_liability_cap: int


def format_market_id(asset, column_ms):
    """The canonical id: whole seconds as ``5s``, anything else in ``ms``."""
    if column_ms % 1000 == 0:
        return f"{asset}/{column_ms // 1000}s"
    return f"{asset}/{column_ms}ms"


def parse_market_id(text):
    """``(asset, column_ms)`` of an id such as ``BTC-USD/5s``; ValueError otherwise."""
    m = None
    if isinstance(text, str):
        asset_part, _, dur = text.strip().partition("/")
        m = _ID.fullmatch(f"{asset_part.upper()}/{dur.lower()}")
    if m is None:
        raise ValueError(f"bad market id {text!r}: expected ASSET-QUOTE/<n>s, e.g. BTC-USD/5s")
    column_ms = int(m[3]) * _UNIT[m[4]]
    if column_ms <= 0:
        raise ValueError(f"bad market id {text!r}: the column duration must be positive")
    return f"{m[1]}-{m[2]}", column_ms


def asset_slug(asset):
    """``ETH-USD`` -> ``eth_usd`` (table names of an asset's price record)."""
    return asset.lower().replace("-", "_")


def _entry(item):
    """(id text, {field: value}) of one ``markets`` entry."""
    if isinstance(item, dict):
        item = dict(item)
        mid = item.pop("market_id", None) or item.pop("id", None)
        if mid is None:
            raise ValueError("a [[markets]] table needs market_id")
        return mid, item
    head, *parts = str(item).split(":")
    over = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"market {head!r}: override {part!r} is not field=value")
        try:
            over[key.strip()] = int(value)
        except ValueError:
            raise ValueError(f"market {head!r}: {key.strip()} must be an integer") from None
    return head, over


def market_specs(cfg):
    """The configured markets, the default first."""
    entries = list(cfg.markets) or [format_market_id("BTC-USD", cfg.column_ms)]
    specs = []
    for item in entries:
        text, over = _entry(item)
        asset, column_ms = parse_market_id(text)
        unknown = set(over) - set(MARKET_FIELDS)
        if unknown:
            raise ValueError(f"market {text}: unknown settings {', '.join(sorted(unknown))}"
                             f" (per market: {', '.join(MARKET_FIELDS)})")
        for key, value in over.items():
            if type(value) is not int:
                raise ValueError(f"market {text}: {key} must be an integer")
        band = cfg.band_cents if asset == "BTC-USD" else DEFAULT_BANDS.get(asset, cfg.band_cents)
        spec = MarketSpec(format_market_id(asset, column_ms), asset, column_ms,
                          over.get("lock_ms", cfg.lock_ms), over.get("horizon_ms", cfg.horizon_ms),
                          over.get("band_cents", band), over.get("max_bands", cfg.max_bands),
                          over.get("cell_liability_cap", cfg.cell_liability_cap))
        for name in ("band_cents", "horizon_ms", "max_bands", "cell_liability_cap"):
            if getattr(spec, name) <= 0:
                raise ValueError(f"market {spec.market_id}: {name} must be positive")
        if spec.lock_ms < 0 or spec.lock_ms + spec.column_ms > spec.horizon_ms:
            raise ValueError(f"market {spec.market_id}: needs 0 <= lock_ms and lock_ms +"
                             f" column_ms <= horizon_ms, or no column is ever open")
        if any(s.market_id == spec.market_id for s in specs):
            raise ValueError(f"market {spec.market_id} is listed twice")
        specs.append(spec)
    return specs


def market_cfg(cfg, spec):
    """The config one market's actors see: the top-level config with this
    market's grid (so the Column, pricer and Resolver code stays one)."""
    return cfg.replace(column_ms=spec.column_ms, lock_ms=spec.lock_ms,
                       horizon_ms=spec.horizon_ms, band_cents=spec.band_cents,
                       max_bands=spec.max_bands, cell_liability_cap=spec.cell_liability_cap)


def markets_body(default_id, units):
    """The ``/api/markets`` body (SPEC 9, v1.1) of ``units`` (each with
    ``spec`` and ``ctx.status``: a market's or what a gateway heard of it)."""
    return {"default": default_id, "markets": [
        {"market_id": s.market_id, "asset": s.asset, "column_ms": s.column_ms,
         "band_cents": s.band_cents, "lock_ms": s.lock_ms, "horizon_ms": s.horizon_ms,
         "market": "open" if u.ctx.status.is_open else "suspended"}
        for u in units for s in (u.spec,)]}
