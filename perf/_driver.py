"""Open-loop tap driver (a separate process from the server).

Taps are sent at a constant arrival rate whatever the server does, and each
ack's latency is measured from the tap's *scheduled* send time, so a slow
server cannot hide behind a slow client (no coordinated omission). Frames
are signed before the step starts, in a process pool, so the driver spends
its CPU on the wire, not on ECDSA.

    python perf/_driver.py --url http://127.0.0.1:8080 --rate 3000 --seconds 30 --conns 50
    python perf/_driver.py --url ... --rate 3000 --markets all    # v1.1 taps, every market

Without ``--markets`` the taps are v1 (no ``market_id``: the default
market). With it (``all``, or ids such as ``BTC-USD/5s,ETH-USD/5s``) they
are v1.1 taps naming their market first in the payload, round-robin over
the markets, each on its own grid's columns and bands.

Prints one JSON object: sent, acked ok (in all and per market), rejects by
reason, latency percentiles (ms), and the bet ids acknowledged (for the
durability check).
"""
import argparse
import json
import multiprocessing
import os
import resource
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from actors.feeds._wsclient import WSClient  # noqa: E402
from actors.wire._tapsig import SessionSigner, encode_tap_payload  # noqa: E402
from web.client import TapgridClient  # noqa: E402


def _sign_chunk(args):
    der, items = args
    key = serialization.load_der_private_key(der, None)
    signer = SessionSigner(key)
    out = []
    for col, lo, stake, ts, nonce, market_id in items:
        payload = encode_tap_payload(col, lo, stake, 101, ts, nonce, market_id)
        sig = signer.sign(payload)
        out.append(('{"type":"tap","payload":%s,"sig":"%s"}' % (json.dumps(payload), sig), nonce))
    return out


def market_grids(client, markets):
    """[(market_id or None, column_ms, band_cents, lock_ms, price)]: the
    default market's grid for v1 taps (market_id None), else one per market."""
    if not markets:
        g = client.fetch_grid()
        return [(None, g["column_ms"], g["band_cents"], g["lock_ms"], g["price"])]
    ids = ([m["market_id"] for m in client.fetch_markets()["markets"]] if markets == "all"
           else [m.strip() for m in markets.split(",") if m.strip()])
    out = []
    for mid in ids:
        g = client.fetch_grid(mid)
        out.append((g.get("market_id", mid), g["column_ms"], g["band_cents"], g["lock_ms"],
                    g["price"]))
    return out


def pct(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def idle(a):
    """The server at rest with ``a.conns`` players connected: what the
    loop spends on ticks, grids and its own timers when nobody taps."""
    clients = []
    for _ in range(a.conns):
        c = TapgridClient(a.url, timeout=30)
        c.guest()
        clients.append(c)
    sockets = [WSClient.connect(f"{c.ws_url}?token={c.token}", timeout=30) for c in clients]
    got = [0]

    def reader(ws):
        while ws.recv() is not None:
            got[0] += 1

    readers = [gevent.spawn(reader, ws) for ws in sockets]
    gevent.sleep(2)                  # past the welcome frames
    n0 = got[0]
    print("START", flush=True)
    t0 = time.time()
    gevent.sleep(a.idle)
    print("END", flush=True)
    elapsed = time.time() - t0
    frames = got[0] - n0
    for ws in sockets:
        ws.close()
    gevent.killall(readers, block=False)
    print(json.dumps({"idle_s": round(elapsed, 2), "conns": a.conns,
                      "frames_per_conn_per_s": round(frames / a.conns / elapsed, 1)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--stake", type=int, default=100)
    ap.add_argument("--lead", type=float, default=2.0, help="seconds between signing and sending")
    ap.add_argument("--markets", default=None,
                    help="v1.1 taps round-robin over these market ids, or 'all' (default: v1 taps)")
    ap.add_argument("--idle", type=float, default=0,
                    help="no taps: hold --conns connections open this many seconds (START/END"
                         " around them) and count the frames they receive")
    a = ap.parse_args()
    if a.idle:
        return idle(a)

    clients = []
    for _ in range(a.conns):
        c = TapgridClient(a.url, timeout=30)
        c.guest()
        clients.append(c)
    grids = market_grids(clients[0], a.markets)
    total = int(a.rate * a.seconds)
    start = time.time() + a.lead + total * 60e-6     # signing takes ~60 µs a tap on 2 workers
    # Work out every tap's cell and time, then sign them all up front.
    per_conn = [[] for _ in clients]
    schedule = []
    for i in range(total):
        t = start + i / a.rate
        ts = int(t * 1000)
        market_id, col_ms, band, lock, price = grids[i % len(grids)]
        col = ((ts + lock + 1500) // col_ms + 1 + (i % 3)) * col_ms
        lo = (price // band + 2 + (i % 9)) * band
        k = i % len(clients)
        per_conn[k].append((col, lo, a.stake, ts, secrets.token_urlsafe(12), market_id))
        schedule.append((t, k, len(per_conn[k]) - 1))
    ders = [c.signer._key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()) for c in clients]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        frames = pool.map(_sign_chunk, list(zip(ders, per_conn)))
    sockets = [WSClient.connect(f"{c.ws_url}?token={c.token}", timeout=30) for c in clients]

    market_of = {item[4]: item[5] for items in per_conn for item in items} if a.markets else {}
    by_market = {}
    sent_at = {}
    acks = {}
    rejects = {}
    latencies = []
    ok_bets = []

    def reader(ws):
        while True:
            raw = ws.recv()
            if raw is None:
                return
            if '"ack"' not in raw:
                continue
            now = time.time()
            msg = json.loads(raw)
            t = sent_at.pop(msg.get("nonce"), None)
            if t is None:
                continue
            latencies.append((now - t) * 1000)
            if msg["ok"]:
                ok_bets.append(msg["bet"])
                if market_of:
                    mid = market_of.get(msg["nonce"])
                    by_market[mid] = by_market.get(mid, 0) + 1
            else:
                rejects[msg["reason"]] = rejects.get(msg["reason"], 0) + 1
            acks[0] = acks.get(0, 0) + 1

    readers = [gevent.spawn(reader, ws) for ws in sockets]
    lag = 0.0
    i = 0
    while time.time() < start:
        gevent.sleep(0.001)
    print("START", flush=True)       # the benchmark samples server CPU here...
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    while i < total:
        now = time.time()
        while i < total and schedule[i][0] <= now:
            t, k, j = schedule[i]
            frame, nonce = frames[k][j]
            sent_at[nonce] = t
            try:
                sockets[k].send_text(frame)
            except Exception:
                rejects["send_failed"] = rejects.get("send_failed", 0) + 1
            lag = max(lag, now - t)
            i += 1
        gevent.sleep(0.0005)
    deadline = time.time() + 15
    while sent_at and time.time() < deadline:
        gevent.sleep(0.01)
    print("END", flush=True)         # ...and here
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    # The driver's own CPU while taps flowed (the signing pool has ended):
    # it shares the two cores with the server, so it is reported beside it.
    drv_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    elapsed = time.time() - start
    lost = len(sent_at)
    for ws in sockets:
        ws.close()
    gevent.killall(readers, block=False)
    latencies.sort()
    print(json.dumps({
        "offered": a.rate, "sent": total, "acked_ok": len(ok_bets), "no_answer": lost,
        "rejects": rejects, "elapsed_s": round(elapsed, 2),
        "ok_per_s": round(len(ok_bets) / a.seconds, 1),
        "markets": [g[0] for g in grids] if a.markets else None,
        "ok_by_market": {k: by_market[k] for k in sorted(by_market, key=str)},
        "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99), "p999_ms": pct(latencies, 99.9),
        "max_send_lag_ms": round(lag * 1000, 1), "driver_cpu_s": round(drv_cpu, 2),
        "driver_cpu_us_per_tap": round(drv_cpu * 1e6 / total, 1) if total else None,
        "bets": ok_bets}))


if __name__ == "__main__":
    main()
