"""Engine benchmark: our actors against Pykka 2.0.3's GeventActor and a raw
gevent queue, side by side in one run.

    .venv/bin/python perf/bench_engine.py [--messages 200000] [--asks 20000] [--runs 5]

Measures tell throughput (N tells, then one ask so every tell is processed),
ask round trips per second, and ask latency p50/p99 in microseconds. Each
figure is the median of ``--runs`` runs. The last line printed is JSON.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import gevent
import gevent.queue
from gevent.event import AsyncResult

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

from engine import Actor, ActorSystem  # noqa: E402


# --- our engine ---------------------------------------------------------------------

class Sink(Actor):
    def on_start(self):
        self.n = 0

    def receive(self, msg):
        if msg == "count":
            return self.n
        self.n += 1


def ours_tell(n):
    system = ActorSystem()
    ref = system.spawn(Sink)
    tell = ref.tell
    t = time.perf_counter()
    for i in range(n):
        tell(i)
    ref.ask("count", timeout=60)
    dt = time.perf_counter() - t
    system.stop()
    return n / dt


def ours_ask(n):
    system = ActorSystem()
    ref = system.spawn(Sink)
    ask = ref.ask
    lat = []
    t = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        ask("count", 5)
        lat.append(time.perf_counter() - t0)
    dt = time.perf_counter() - t
    system.stop()
    return n / dt, lat


# --- pykka 2.0.3 GeventActor ------------------------------------------------------------

def pykka_classes():
    from pykka.gevent import GeventActor

    class PSink(GeventActor):
        def __init__(self):
            super().__init__()
            self.n = 0

        def on_receive(self, msg):
            if msg == "count":
                return self.n
            self.n += 1
    return PSink


def pykka_tell(n, PSink):
    ref = PSink.start()
    tell = ref.tell
    t = time.perf_counter()
    for i in range(n):
        tell(i)
    ref.ask("count", timeout=60)
    dt = time.perf_counter() - t
    ref.stop()
    return n / dt


def pykka_ask(n, PSink):
    ref = PSink.start()
    ask = ref.ask
    lat = []
    t = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        ask("count", timeout=5)
        lat.append(time.perf_counter() - t0)
    dt = time.perf_counter() - t
    ref.stop()
    return n / dt, lat


# --- a raw gevent queue and a consumer greenlet (the floor) ----------------------------------

def raw_tell(n):
    q = gevent.queue.Queue()
    done = AsyncResult()

    def consumer():
        c = 0
        while True:
            m = q.get()
            if m is None:
                done.set(c)
                return
            c += 1
    g = gevent.spawn(consumer)
    put = q.put
    t = time.perf_counter()
    for i in range(n):
        put(i)
    put(None)
    done.get()
    dt = time.perf_counter() - t
    g.join()
    return n / dt


def raw_ask(n):
    q = gevent.queue.Queue()

    def server():
        while True:
            m = q.get()
            if m is None:
                return
            m.set(1)
    g = gevent.spawn(server)
    lat = []
    t = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        r = AsyncResult()
        q.put(r)
        r.get(timeout=5)
        lat.append(time.perf_counter() - t0)
    dt = time.perf_counter() - t
    q.put(None)
    g.join()
    return n / dt, lat


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--asks", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    PSink = pykka_classes()
    res = {k: [] for k in ("ours_tell", "pykka_tell", "raw_tell", "ours_ask", "pykka_ask",
                           "raw_ask", "ours_p50", "ours_p99", "pykka_p50", "pykka_p99",
                           "raw_p50", "raw_p99")}
    for run in range(a.runs):
        # Interleave the contenders in each run so machine noise hits all alike.
        res["ours_tell"].append(ours_tell(a.messages))
        res["pykka_tell"].append(pykka_tell(a.messages, PSink))
        res["raw_tell"].append(raw_tell(a.messages))
        for key, fn in (("ours", ours_ask), ("pykka", lambda n: pykka_ask(n, PSink)),
                        ("raw", raw_ask)):
            rate, lat = fn(a.asks)
            res[key + "_ask"].append(rate)
            res[key + "_p50"].append(pct(lat, 50))
            res[key + "_p99"].append(pct(lat, 99))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"gevent {gevent.__version__}, runs={a.runs} (medians)")
    print(f"{'':12}{'tell/s':>12}{'ask/s':>12}{'ask p50 µs':>12}{'ask p99 µs':>12}")
    for k, label in (("ours", "engine"), ("pykka", "pykka 2.0.3"), ("raw", "raw queue")):
        print(f"{label:12}{med[k + '_tell']:>12,.0f}{med[k + '_ask']:>12,.0f}"
              f"{med[k + '_p50']:>12.1f}{med[k + '_p99']:>12.1f}")
    summary = {
        "bench": "engine",
        "tell_per_s": round(med["ours_tell"]),
        "ask_per_s": round(med["ours_ask"]),
        "ask_p50_us": round(med["ours_p50"], 1),
        "ask_p99_us": round(med["ours_p99"], 1),
        "tell_vs_pykka": round(med["ours_tell"] / med["pykka_tell"], 2),
        "ask_vs_pykka": round(med["ours_ask"] / med["pykka_ask"], 2),
        "tell_vs_raw_queue": round(med["ours_tell"] / med["raw_tell"], 2),
        "ask_vs_raw_queue": round(med["ours_ask"] / med["raw_ask"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
