"""How long the pricer takes per grid, and how long it makes the event loop wait.

The MarketMaker reprices the grid on every tick (100 ms). In a native
thread, pure Python holds the GIL until the interpreter's switch interval
(5 ms) forces it to let go, so the event loop can wait that long behind it;
numpy's loops release the GIL. Measured side by side in one run:

- ``scalar``: the closed form cell by cell in pure Python
  (``_odds.column_multipliers`` per column, the pricer before issue 16), in
  the threadpool;
- ``numpy``: ``price_grid`` in one call, in the threadpool (issue 16);
- ``sliced``: ``price_grid`` as the MarketMaker calls it now, on the loop,
  ``SLICE_COLUMNS`` columns at a time with ``gevent.idle()`` between
  slices; its longest hold is the longest slice, timed pause to pause, in
  wall time and in the thread's CPU time (a loaded box preempts the
  process mid-slice; CPU time is the slice's own length).

For each: the CPU time per grid (12 columns x 101 bands, sigma 1e-4, ticks
every 100 ms, the default config), and the event loop's lag while grids are
priced back to back: a greenlet sleeps 0.5 ms at a time and records how
late it wakes. Lag p99 and max are the loop's view of the longest hold.

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
from actors._market import SLICE_COLUMNS  # noqa: E402
from actors._odds import column_multipliers  # noqa: E402

PRICE = 9_500_300
SIGMA = 1.0e-4


def scalar_grid(cfg, now):
    return {t0: column_multipliers(PRICE, now, t0, cfg.column_ms, cfg.band_cents,
                                   cfg.max_bands, SIGMA, cfg.edge_bp)
            for t0 in open_columns(cfg, now)}


def numpy_grid(cfg, now, pause=None):
    # as the sim at 100 ms feeds it: a clock (2 ms of jitter), sigma's error priced
    return price_grid(cfg, PRICE, now - 40, SIGMA, now, 1, 100.0, 0.054, 2.0, pause=pause).columns


def sliced_grid(cfg, now):
    return numpy_grid(cfg, now, pause=gevent.idle)


def per_grid_ms(fn, cfg, n):
    t = time.process_time()
    for i in range(n):
        fn(cfg, 1_750_000_000_000 + i * 500)
    return (time.process_time() - t) / n * 1000


def loop_lag(fn, cfg, seconds, on_loop=False):
    """(p50, p99, max) ms by which a 0.5 ms sleep overran while ``fn`` ran
    back to back in the threadpool (or on the loop); and the grids priced."""
    pool = get_hub().threadpool
    stop = [False]
    count = [0]

    def pricer():
        i = 0
        while not stop[0]:
            if on_loop:
                fn(cfg, 1_750_000_000_000 + i * 500)
                gevent.idle()
            else:
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


def longest_slice_ms(cfg, n):
    """(wall p99, wall max, CPU p99, CPU max) ms of the stretches, over ``n``
    sliced grids, between two of the pricer's yields (or a grid's start or
    end): how long it holds the loop."""
    walls, cpus = [], []
    mark = [0.0, 0.0]

    def lap():
        walls.append(time.perf_counter() - mark[0])
        cpus.append(time.thread_time() - mark[1])

    def start():
        mark[0], mark[1] = time.perf_counter(), time.thread_time()

    def pause():
        lap()
        gevent.idle()
        start()

    for i in range(n):
        start()
        numpy_grid(cfg, 1_750_000_000_000 + i * 500, pause=pause)
        lap()
    walls.sort()
    cpus.sort()
    p99 = int(len(walls) * 0.99)
    return walls[p99] * 1000, walls[-1] * 1000, cpus[p99] * 1000, cpus[-1] * 1000


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
    for name, fn in (("scalar", scalar_grid), ("numpy", numpy_grid), ("sliced", sliced_grid)):
        ms = per_grid_ms(fn, cfg, args.grids)
        p50, p99, mx, n = loop_lag(fn, cfg, args.seconds, on_loop=name == "sliced")
        print(f"| {name} | {ms:.2f} | {p50:.3f} | {p99:.3f} | {mx:.3f} | {n} |")
        out.update({f"{name}_ms_per_grid": round(ms, 3), f"{name}_lag_p50_ms": round(p50, 3),
                    f"{name}_lag_p99_ms": round(p99, 3),
                    f"{name}_lag_max_ms": round(mx, 3)})
    w99, wmax, c99, cmax = longest_slice_ms(cfg, args.grids)
    print(f"sliced ({SLICE_COLUMNS} column(s) a slice, {args.grids} grids): hold of the loop "
          f"p99 {w99:.3f} ms, max {wmax:.3f} wall; p99 {c99:.3f} ms, max {cmax:.3f} CPU")
    out.update({"sliced_hold_p99_ms": round(w99, 3), "sliced_hold_max_ms": round(wmax, 3),
                "sliced_hold_cpu_p99_ms": round(c99, 3), "sliced_hold_cpu_max_ms": round(cmax, 3)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
