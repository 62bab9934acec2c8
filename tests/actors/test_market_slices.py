"""The MarketMaker prices a grid on the loop in slices and lets the loop run between them."""
import math

import gevent

from actors import Config, open_columns, price_columns
from actors._market import SLICE_COLUMNS, price_grid

NOW = 1_750_000_001_234


def test_a_grid_is_priced_in_slices_with_the_loop_running_between_them():
    cfg = Config()
    pauses = []
    seen = []                     # pauses made when the other greenlet got to run

    def other():
        while True:
            seen.append(len(pauses))
            gevent.sleep(0)

    def pause():
        pauses.append(1)
        gevent.sleep(0)

    g = gevent.spawn(other)
    gevent.sleep(0)
    try:
        grid = price_grid(cfg, 9_500_000, NOW - 40, 1.07e-4, NOW, 1, 100.0, 0.05, 2.0,
                          pause=pause)
    finally:
        g.kill()
    t0s = list(open_columns(cfg, NOW))
    assert len(t0s) > SLICE_COLUMNS
    assert len(pauses) == math.ceil(len(t0s) / SLICE_COLUMNS) - 1
    # the other greenlet ran after every pause, before the next slice
    assert set(range(1, len(pauses) + 1)) <= set(seen)
    # slicing changes nothing priced: the grid is the one-call grid
    assert grid.columns == price_columns(9_500_000, NOW - 40, NOW, t0s, cfg.column_ms,
                                         cfg.band_cents, cfg.max_bands, 1.07e-4, cfg.edge_bp,
                                         100.0, 0.05, tick_sd_ms=2.0)
    assert all(grid.columns[t0] for t0 in t0s)
