"""Worker processes for perf/bench_storm.py, driven by lines on stdin and
answering one JSON line on stdout per command.

``crowd``: N idle players that share a few guest tokens, each a raw
non-blocking socket in one epoll loop (perf/_crowd.py: no client library,
no greenlet per connection), so 10,000 fit in two processes on a 2-core
box next to the server.

``steady``: one player (web.client) tapping at a constant rate, recording
every tap's send time and ack latency.

    python perf/_storm_clients.py crowd --url http://127.0.0.1:8080 --n 100 <<< status
"""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from perf._crowd import Crowd  # noqa: E402
from tests.serverproc import raise_nofile  # noqa: E402
from web.client import TapgridClient  # noqa: E402


class Steady:
    def __init__(self, url, rate):
        self.client = TapgridClient(url, timeout=30, backoff_base=0.5)
        self.rate = rate
        self.records = []       # (send wall s, latency ms or None, reason or None)
        self.loop = None

    def setup(self):
        c = self.client
        c.guest()
        c.connect()
        c.wait_for(lambda: c.grid is not None, 10)
        self.loop = gevent.spawn(self._run)
        return {"user": c.user}

    def _run(self):
        period = 1.0 / self.rate
        due = time.perf_counter()
        rng = random.Random(1)
        while True:
            due += period
            self._tap(rng)
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            elif delay < -1:
                due = time.perf_counter()

    def _tap(self, rng):
        c = self.client
        sent = time.time()
        t0 = time.perf_counter()
        cell = c.open_cell(offset_bands=rng.randint(1, 3)) if c.connected.is_set() else None
        if cell is None:
            self.records.append((sent, None, "disconnected" if not c.connected.is_set() else "no_cell"))
            return
        try:
            fut = c.tap_async(cell[0], cell[1], 100, 101)
        except Exception:
            self.records.append((sent, None, "disconnected"))
            return

        def done(f):
            ms = (time.perf_counter() - t0) * 1000
            try:
                msg = f.result()
            except Exception:
                self.records.append((sent, None, "disconnected"))
                return
            self.records.append((sent, ms, None if msg.get("ok") else msg.get("reason")))

        fut.add_done_callback(done)

    def command(self, words):
        if words[0] == "report":
            t0, t1 = float(words[1]), float(words[2])
            rows = [r for r in self.records if t0 <= r[0] < t1]
            lat = sorted(r[1] for r in rows if r[1] is not None and r[2] is None)
            fails = {}
            for r in rows:
                if r[2] is not None:
                    fails[r[2]] = fails.get(r[2], 0) + 1
            # The slowest acks with their send time after t0: when the tail happens.
            slow = sorted(((r[1], r[0] - t0) for r in rows if r[1] is not None and r[2] is None),
                          reverse=True)[:max(3, len(lat) // 100)]
            return {"taps": len(rows), "ok": len(lat), "fails": fails, "lat": [round(x, 2) for x in lat],
                    "reconnects": self.client.reconnects,
                    "slowest_at": [[round(at, 2), round(ms, 1)] for ms, at in slow]}
        return {"error": f"unknown command {words[0]}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["crowd", "steady"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--backoff-base", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--grid", type=int, default=1, choices=[1, 2])
    a = ap.parse_args()
    raise_nofile(65536)
    out = sys.stdout

    def say(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    if a.role == "crowd":
        crowd = Crowd(a.url, a.n, a.users, a.backoff_base, a.grid)
        say(crowd.setup())
        crowd.serve(say)
    else:
        steady = Steady(a.url, a.rate)
        say(steady.setup())
        stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
        while True:
            line = stdin.readline()
            if not line or line.strip() == b"quit":
                break
            words = line.decode().split()
            if words:
                say(steady.command(words))
    os._exit(0)     # thousands of sockets: no orderly teardown needed


if __name__ == "__main__":
    main()
