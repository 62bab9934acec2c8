"""The market's encoders (web/gateway/_relay.py Encoders) send what the
embedded Fanout sends: the v1 grid body (``grid_bytes``, both use it) is
built without a dict per cell, and must still be exactly
``json.dumps(grid_json(...))``."""
import json
import time

import pytest

from actors import Config, Grid, MarketStatus
from actors._pricer import price_columns
from web.gateway import Encoders, grid_json
from web.gateway._gridframes import grid_bytes


def grids():
    cfg = Config()
    now = int(time.time() * 1000)
    t0s = [(now // 5000 + i) * 5000 for i in range(13)]
    priced = price_columns(9_500_000, now, now, t0s, 5000, 1000, cfg.max_bands, 0.6, 0, 100, 0.1)
    assert sum(len(c) for c in priced.values()) > 100
    yield Grid(7, 9_500_000, now, 0.6, priced)
    yield Grid(8, 9_500_000, now, 0.6, {**priced, t0s[-1] + 5000: {}})         # an empty column
    yield Grid()                                                               # nothing priced yet


@pytest.mark.parametrize("market_id", [None, "BTC-USD/5s", "ETH-USD/15s"])
def test_the_grid_body_is_byte_for_byte_the_json_of_grid_json(market_id):
    cfg = Config(markets=["BTC-USD/5s", "ETH-USD/15s"])
    open_, suspended = MarketStatus(), MarketStatus()
    open_.set("starting", False)
    suspended.set("stale_price", True)
    assert open_.is_open and not suspended.is_open
    for grid in grids():
        for status in (open_, suspended):
            want = json.dumps(grid_json(cfg, grid, status, market_id), separators=(",", ":")).encode()
            assert grid_bytes(cfg, grid, status, market_id) == want
            body, f1, f2 = Encoders(cfg).grid(grid, status, cfg, market_id)
            assert body == want and f1.endswith(want[1:]) and b'"type":"grid",' in f1
            assert b'"type":"grid2",' in f2
