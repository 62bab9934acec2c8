"""Worker processes for perf/bench_storm.py, driven by lines on stdin and
answering one JSON line on stdout per command.

``crowd``: N idle players (web.client.TapgridClient, its own reconnect
with full jitter) that share a few guest tokens. Only ``hello`` and
``market`` frames reach the client's JSON dispatch; ``tick`` frames are
timed and counted without a JSON parse, ``grid`` frames are counted and
dropped, so thousands of clients fit in one process.

``steady``: one player tapping at a constant rate, recording every tap's
send time and ack latency.

    python perf/_storm_clients.py crowd --url http://127.0.0.1:8080 --n 100 <<< status
"""
import argparse
import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from actors.feeds._wsclient import WSClient, WSHandshakeError  # noqa: E402
from tests.serverproc import raise_nofile  # noqa: E402
from web.client import TapgridClient  # noqa: E402

_TICK = '{"type":"tick"'
_GRID = '{"type":"grid"'
_GRID2 = '{"type":"grid2"'


def _now_ms():
    return time.time() * 1000


class _LightWS:
    """A WSClient whose recv() keeps tick and grid frames away from the
    client's JSON dispatch (they are timed and counted instead)."""

    __slots__ = ("ws", "owner")

    def __init__(self, ws, owner):
        self.ws, self.owner = ws, owner

    def recv(self, timeout=None):
        ws, owner = self.ws, self.owner
        while True:
            raw = ws.recv(timeout)
            if raw is None:
                return None
            if raw.startswith(_TICK):
                owner.crowd.on_tick(raw)
                continue
            if raw.startswith(_GRID) or raw.startswith(_GRID2):
                owner.crowd.grids += 1
                if owner.ready.is_set():
                    continue
                # the first grid of a connection goes through: connect()
                # returns only once the client has one (it can tap)
            if raw.startswith('{"type":"hello"'):
                owner.back_at = time.time()
            return raw

    def __getattr__(self, name):
        return getattr(self.ws, name)


class CrowdClient(TapgridClient):
    """TapgridClient with a light frame path and handshake accounting."""

    def __init__(self, crowd, *a, **kw):
        super().__init__(*a, **kw)
        self.crowd = crowd
        self.back_at = None

    def _open(self):
        try:
            extra = "&grid=2" if self.crowd.grid == 2 else ""
            ws = WSClient.connect(f"{self.ws_url}?token={self.token}{extra}", timeout=self.timeout)
        except WSHandshakeError as e:
            self.crowd.refused[str(e.status)] = self.crowd.refused.get(str(e.status), 0) + 1
            raise
        except (OSError, TimeoutError) as e:
            kind = type(e).__name__
            self.crowd.refused[kind] = self.crowd.refused.get(kind, 0) + 1
            raise
        self.ws = _LightWS(ws, self)


class Crowd:
    def __init__(self, url, n, users, backoff_base, grid=1):
        self.url, self.n = url, n
        self.grid = grid         # 2: the crowd asks for compact grid2 frames
        self.refused = {}
        self.grids = 0
        self.ticks = {}          # tick ts -> receipt wall-clock ms list
        self.recording = False
        self.backoff_base = backoff_base
        self.clients = []
        self.users = users

    def on_tick(self, raw):
        if self.recording:
            t = int(raw[raw.rindex(":") + 1:-1])
            lst = self.ticks.get(t)
            if lst is None:
                lst = self.ticks[t] = []
            lst.append(_now_ms())

    def setup(self, concurrency=100):
        protos = []
        for _ in range(self.users):
            c = TapgridClient(self.url, timeout=30)
            c.guest()
            protos.append(c)
        for i in range(self.n):
            p = protos[i % len(protos)]
            c = CrowdClient(self, self.url, signer=p.signer, timeout=30,
                            backoff_base=self.backoff_base)
            c.token, c.user = p.token, p.user
            self.clients.append(c)
        pool = gevent.pool.Pool(concurrency)
        t0 = time.time()
        for c in self.clients:
            pool.spawn(self._connect, c)
        pool.join()
        return {"connected": self.connected(), "setup_s": round(time.time() - t0, 2),
                "refused_during_setup": dict(self.refused)}

    @staticmethod
    def _connect(c):
        for _ in range(50):
            try:
                c.connect()
                return
            except (OSError, WSHandshakeError, TimeoutError) as e:
                retry = getattr(e, "retry_after", None)
                gevent.sleep((retry or 1) * random.random() + 0.05)

    def connected(self):
        return sum(1 for c in self.clients if c.connected.is_set())

    def command(self, words):
        cmd = words[0]
        if cmd == "status":
            since = float(words[1]) if len(words) > 1 else 0.0
            back = sum(1 for c in self.clients if c.connected.is_set()
                       and c.back_at is not None and c.back_at > since)
            return {"connected": self.connected(), "back": back, "n": self.n, "refused": self.refused,
                    "reconnects": sum(c.reconnects for c in self.clients)}
        if cmd == "drop":
            # Every connection shut from this side at once (as a network or a
            # balancer failure would): each client reconnects with its backoff.
            n = 0
            for c in self.clients:
                ws = getattr(c.ws, "ws", None)
                if ws is not None and c.connected.is_set():
                    try:
                        ws._sock.shutdown(socket.SHUT_RDWR)
                        n += 1
                    except OSError:
                        pass
            return {"dropped": n}
        if cmd == "reset":
            self.refused = {}
            return {"ok": True}
        if cmd == "record":
            self.ticks, self.grids, self.recording = {}, 0, True
            return {"ok": True}
        if cmd == "stop_record":
            self.recording = False
            # Per tick ts: first receipt (ms) and a 1 ms histogram of receipt - ts.
            out = {}
            for t, lst in self.ticks.items():
                hist = {}
                for r in lst:
                    k = int(r - t)
                    hist[k] = hist.get(k, 0) + 1
                out[t] = {"first": min(lst), "hist": hist, "n": len(lst)}
            return {"ticks": out, "grids": self.grids}
        if cmd == "backs":
            since = float(words[1])
            backs = sorted(c.back_at - since for c in self.clients
                           if c.back_at is not None and c.back_at > since)
            return {"back": len(backs), "n": self.n, "backs": [round(b, 3) for b in backs],
                    "refused": self.refused}
        return {"error": f"unknown command {cmd}"}


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
            return {"taps": len(rows), "ok": len(lat), "fails": fails, "lat": [round(x, 2) for x in lat],
                    "reconnects": self.client.reconnects}
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
    worker = Crowd(a.url, a.n, a.users, a.backoff_base, a.grid) if a.role == "crowd" else Steady(a.url, a.rate)
    out = sys.stdout

    def say(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say(worker.setup())
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
    while True:
        line = stdin.readline()
        if not line or line.strip() == b"quit":
            break
        words = line.decode().split()
        if words:
            say(worker.command(words))
    os._exit(0)     # thousands of sockets: no orderly teardown needed


if __name__ == "__main__":
    main()
