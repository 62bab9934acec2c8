"""Replay protection end to end (SPEC sections 4 and 8): one captured signed
tap, sent 1,000 times over four concurrent connections of one session,
makes exactly one bet; after a restart the same frame is still refused
(`replay` from Redis, `expired` with the in-process store)."""
import json
import sqlite3
import time
from urllib.parse import urlsplit

import gevent
import pytest
import redis

from actors.feeds._wsclient import WSClient
from tests.support import wait_until
from actors.wire._tapsig import b64url_encode
from web.client import TapgridClient

SENDS = 1000
CONNECTIONS = 4
# The per-connection token bucket would answer `rate_limited` first.
NO_RATE_LIMIT = {"TAPGRID_TAP_RATE": "1000000", "TAPGRID_TAP_BURST": "1000000"}


def bets_with_nonce(db, nonce):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM bets WHERE nonce = ?", (nonce,)).fetchone()[0]
    finally:
        conn.close()


def open_ws(url, token):
    return WSClient.connect(f"ws://{urlsplit(url).netloc}/ws?token={token}", timeout=10)


def read_acks(ws, count, timeout=60):
    acks = []
    deadline = time.monotonic() + timeout
    while len(acks) < count:
        raw = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        assert raw is not None, f"closed with {ws.close_code} after {len(acks)} acks"
        msg = json.loads(raw)
        if msg["type"] == "ack":
            acks.append(msg)
    return acks


def captured_tap(server, client=None, margin_ms=8000):
    """A signed-in guest (new unless given) and one tap frame for a cell that
    stays open for `margin_ms` more."""
    if client is None:
        client = TapgridClient(server.url)
        client.guest()
    # /healthz turns ok with the first tick; the first priced grid follows.
    g = wait_until(lambda: (lambda g: g if g["columns"] else None)(
        TapgridClient(server.url).fetch_grid()), timeout=10, interval=0.05, what="a priced grid")
    now = int(time.time() * 1000)
    column = next(col for col in g["columns"]
                  if col["t0"] - g["lock_ms"] - now > margin_ms and col["cells"])
    cell = min(column["cells"], key=lambda x: abs(x["lo"] - g["price"]))
    frame, nonce = client.signed_tap(column["t0"], cell["lo"], 100, 101)
    return client, json.dumps(frame, separators=(",", ":")), nonce


def send_one(server, token, text, nonce):
    ws = open_ws(server.url, token)
    try:
        ws.send_text(text)
        acks = [a for a in read_acks(ws, 1) if a["nonce"] == nonce]
        return acks[0]
    finally:
        ws.close()


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_one_captured_tap_sent_1000_times_makes_one_bet(server_factory, request, store):
    args = ["--seed", "1"]
    if store == "redis":
        args += ["--redis", request.getfixturevalue("redis_url")]
    server = server_factory(*args, env=NO_RATE_LIMIT)
    client, text, nonce = captured_tap(server)

    sockets = [open_ws(server.url, client.token) for _ in range(CONNECTIONS)]
    per_socket = SENDS // CONNECTIONS

    def blast(ws):
        for _ in range(per_socket):
            ws.send_text(text)

    readers = [gevent.spawn(read_acks, ws, per_socket) for ws in sockets]
    senders = [gevent.spawn(blast, ws) for ws in sockets]
    gevent.joinall(senders + readers, timeout=120, raise_error=True)
    acks = [a for r in readers for a in r.value]
    for ws in sockets:
        ws.close()

    assert len(acks) == SENDS and all(a["nonce"] == nonce for a in acks)
    oks = [a for a in acks if a["ok"]]
    assert len(oks) == 1, [a for a in acks if a["ok"] or a["reason"] != "replay"][:5]
    assert sorted({a.get("reason") for a in acks if not a["ok"]}) == ["replay"]
    assert bets_with_nonce(server.db, nonce) == 1

    if store == "redis":
        r = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        key = f"tapgrid:n:{b64url_encode(client.signer.public_raw)}:{nonce}"
        assert r.exists(key) and 0 < r.ttl(key) <= 60          # SET ... NX EX 60
        r.close()

    # A restart on the same database (and the same Redis) must not reopen
    # the replay window.
    assert server.stop() == 0
    server.start()
    again = send_one(server, client.token, text, nonce)
    assert again["ok"] is False
    # Redis remembers the nonce; the in-process store refuses anything
    # signed before this process started.
    assert again["reason"] == ("replay" if store == "redis" else "expired")
    assert bets_with_nonce(server.db, nonce) == 1
    # ...while the same player's fresh taps are taken as usual
    _, fresh, fresh_nonce = captured_tap(server, client, margin_ms=3000)
    assert send_one(server, client.token, fresh, fresh_nonce)["ok"] is True
    assert bets_with_nonce(server.db, fresh_nonce) == 1

