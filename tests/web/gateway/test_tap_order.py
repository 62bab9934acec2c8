"""A connection's taps reach the market in the order they were sent, even
though their signatures are checked in parallel on native threads, where a
later half of a batch can finish first (SPEC section 9; web/_taps.py).

A real server, one raw WebSocket: each round writes a burst of signed taps
for one cell in a single TCP write (so the server reads them in one loop
turn and verifies them as one batch split over two threads), and the bet
ids the acks carry must rise in send order. The rounds go on until the
server's ``tapgrid_verify_held_back`` counter shows that some tap really
was verified before an earlier one, so the order was kept on purpose and
not by luck.
"""
import json
import secrets
import time
import urllib.request
from urllib.parse import urlsplit

from actors.feeds import WSClient
from actors.wire import encode_tap_payload
from web.client import TapgridClient

LIFTED = {"TAPGRID_MAX_OPEN_BETS": "100000", "TAPGRID_TAP_RATE": "100000",
          "TAPGRID_TAP_BURST": "100000", "TAPGRID_CELL_LIABILITY_CAP": "1000000000000",
          "TAPGRID_GUEST_CREDIT": "1000000000", "TAPGRID_VERIFY_THREADS": "2"}


def metric(url, name):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def test_taps_keep_their_order_under_parallel_verification(server_factory):
    server = server_factory("--seed", "1", env=LIFTED)
    c = TapgridClient(server.url)
    c.guest()
    ws = WSClient.connect(f"ws://{urlsplit(server.url).netloc}/ws?token={c.token}", timeout=10)
    grid = None
    while grid is None:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] == "grid":
            grid = msg
    burst, rounds, held = 40, 0, 0
    while rounds < 60:
        rounds += 1
        now = int(time.time() * 1000)
        column = next(col for col in grid["columns"]
                      if col["t0"] - grid["lock_ms"] - now > 4000 and col["cells"])
        lo = min(column["cells"], key=lambda cell: abs(cell["lo"] - grid["price"]))["lo"]
        nonces, frames = [], []
        for _ in range(burst):
            nonce = secrets.token_urlsafe(12)
            payload = encode_tap_payload(column["t0"], lo, 100, 101, now, nonce)
            frames.append(json.dumps(
                {"type": "tap", "payload": payload, "sig": c.signer.sign(payload)}))
            nonces.append(nonce)
        for f in frames:                            # queued in the client's protocol...
            ws._proto.send_text(f.encode())
        ws._flush()                                 # ...one write: one loop turn, one batch
        acks = {}
        deadline = time.monotonic() + 15
        while len(acks) < burst:
            msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if msg["type"] == "ack":
                acks[msg["nonce"]] = msg
            elif msg["type"] == "grid":
                grid = msg
        assert all(acks[n]["ok"] for n in nonces), [acks[n] for n in nonces if not acks[n]["ok"]]
        bets = [acks[n]["bet"] for n in nonces]
        assert bets == sorted(bets) and len(set(bets)) == burst, bets
        held = metric(server.url, "tapgrid_verify_held_back_total")
        if held and rounds >= 3:
            break
    ws.close()
    assert held and held > 0, f"no tap was ever verified out of order in {rounds} rounds"


def test_taps_of_separate_reads_share_a_held_verify_batch(server_factory):
    # verify_hold_ms keeps a batch open after its first tap: taps that come
    # in separate TCP writes (separate reads, separate loop turns) are
    # verified together, and their acks still come back in send order.
    server = server_factory("--seed", "1", env={**LIFTED, "TAPGRID_VERIFY_HOLD_MS": "40"})
    c = TapgridClient(server.url)
    c.guest()
    ws = WSClient.connect(f"ws://{urlsplit(server.url).netloc}/ws?token={c.token}", timeout=10)
    grid = None
    while grid is None:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] == "grid":
            grid = msg
    taps, shared, rounds = 12, False, 0
    while not shared and rounds < 20:
        rounds += 1
        now = int(time.time() * 1000)
        column = next(col for col in grid["columns"]
                      if col["t0"] - grid["lock_ms"] - now > 4000 and col["cells"])
        lo = min(column["cells"], key=lambda cell: abs(cell["lo"] - grid["price"]))["lo"]
        before = metric(server.url, "tapgrid_verify_batches_total") or 0
        nonces = []
        for _ in range(taps):
            nonce = secrets.token_urlsafe(12)
            payload = encode_tap_payload(column["t0"], lo, 100, 101, now, nonce)
            ws.send_text(json.dumps({"type": "tap", "payload": payload, "sig": c.signer.sign(payload)}))
            nonces.append(nonce)
            time.sleep(0.002)       # pacing, not synchronisation: a read per tap
        acks = {}
        deadline = time.monotonic() + 15
        while len(acks) < taps:
            msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if msg["type"] == "ack":
                acks[msg["nonce"]] = msg
            elif msg["type"] == "grid":
                grid = msg
        assert all(acks[n]["ok"] for n in nonces), [acks[n] for n in nonces if not acks[n]["ok"]]
        bets = [acks[n]["bet"] for n in nonces]
        assert bets == sorted(bets) and len(set(bets)) == taps, bets
        batches = metric(server.url, "tapgrid_verify_batches_total") - before
        shared = batches <= taps // 3
    ws.close()
    assert shared, f"taps paced 2 ms apart never shared a 40 ms verify batch in {rounds} rounds"
