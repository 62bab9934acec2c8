"""How long the pricer takes per grid, and how long it makes the event loop wait.

The MarketMaker reprices the grid every 0.5 s in gevent's threadpool. A native
thread running pure Python holds the GIL until the interpreter's switch
interval (5 ms) forces it to let go, so the event loop can wait that long
behind it; numpy's loops release the GIL. Measured side by side in one run:

- ``scalar``: the closed form cell by cell in pure Python
  (``_odds.column_multipliers`` per column, the pricer before issue 16);
- ``numpy``: ``price_grid`` as the MarketMaker calls it (``_pricer``).

For each: the CPU time per grid (13 columns x 101 bands, sigma 1e-4, the
default config), and the event loop's lag while grids are priced back to
back in the threadpool: a greenlet sleeps 0.5 ms at a time and records how
late it wakes. Lag p99 and max are the loop's view of the longest GIL hold.

    python perf/bench_pricer.py [--seconds 5]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
from gevent import get_hub  # noqa: E402

from actors import Config, open_columns, price_grid  # noqa: E402
from actors._odds import column_multipliers  # noqa: E402

PRICE = 9_500_300
SIGMA = 1.0e-4


def scalar_grid(cfg, now):
    return {t0: column_multipliers(PRICE, now, t0, cfg.column_ms, cfg.band_cents,
                                   cfg.max_bands, SIGMA, cfg.edge_bp)
            for t0 in open_columns(cfg, now)}


def numpy_grid(cfg, now):
    return price_grid(cfg, PRICE, now - 100, SIGMA, now, 1, 250.0).columns


def per_grid_ms(fn, cfg, n):
    t = time.process_time()
    for i in range(n):
        fn(cfg, 1_750_000_000_000 + i * 500)
    return (time.process_time() - t) / n * 1000


def loop_lag(fn, cfg, seconds):
    """(p50, p99, max) ms by which a 0.5 ms sleep overran while ``fn`` ran
    back to back in the threadpool; and the grids priced."""
    pool = get_hub().threadpool
    stop = [False]
    count = [0]

    def pricer():
        i = 0
        while not stop[0]:
            pool.apply(fn, (cfg, 1_750_000_000_000 + i * 500))
            i += 1
            count[0] += 1

    lags = []
    g = gevent.spawn(pricer)
    gevent.sleep(0.05)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        gevent.sleep(0.0005)
        lags.append((time.perf_counter() - t - 0.0005) * 1000)
    stop[0] = True
    g.join()
    lags.sort()
    return (lags[len(lags) // 2], lags[int(len(lags) * 0.99)], lags[-1], count[0])


def idle_lag(seconds):
    lags = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        gevent.sleep(0.0005)
        lags.append((time.perf_counter() - t - 0.0005) * 1000)
    lags.sort()
    return lags[len(lags) // 2], lags[int(len(lags) * 0.99)], lags[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="lag measurement per pricer")
    ap.add_argument("--grids", type=int, default=100, help="grids timed per pricer")
    args = ap.parse_args(argv)
    cfg = Config()
    now = 1_750_000_000_000
    cells = sum(len(c) for c in numpy_grid(cfg, now).values())
    print(f"{len(list(open_columns(cfg, now)))} columns, {cells} offered cells; "
          f"switch interval {sys.getswitchinterval() * 1000:.1f} ms; load {os.getloadavg()[0]:.2f}")
    idle = idle_lag(args.seconds / 2)
    print(f"idle loop: lag p50 {idle[0]:.3f} ms, p99 {idle[1]:.3f}, max {idle[2]:.3f}")
    out = {"bench": "pricer", "idle_lag_p50_ms": round(idle[0], 3), "idle_lag_p99_ms": round(idle[1], 3),
           "idle_lag_max_ms": round(idle[2], 3)}
    print("| pricer | ms CPU per grid | loop lag p50 ms | p99 ms | max ms | grids in lag run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, fn in (("scalar", scalar_grid), ("numpy", numpy_grid)):
        ms = per_grid_ms(fn, cfg, args.grids)
        p50, p99, mx, n = loop_lag(fn, cfg, args.seconds)
        print(f"| {name} | {ms:.2f} | {p50:.3f} | {p99:.3f} | {mx:.3f} | {n} |")
        out.update({f"{name}_ms_per_grid": round(ms, 3), f"{name}_lag_p50_ms": round(p50, 3),
                    f"{name}_lag_p99_ms": round(p99, 3),
                    f"{name}_lag_max_ms": round(mx, 3)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
