"""Operations against a real `tapgrid serve`: /healthz, the Prometheus
metrics of SPEC section 5, and the graceful shutdown on SIGTERM (every tap
in flight answered, sockets closed with 1001, exit 0, nothing acked lost)."""
import json
import sqlite3
import time
import urllib.request
from urllib.parse import urlsplit

import gevent
from gevent.event import Event
from prometheus_client.parser import text_string_to_metric_families

from actors import mult_bucket
from actors.feeds._wsclient import WSClient
from tests.support import wait_until
from web.client import TapgridClient


def get(url, path):
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def scrape(url):
    """{sample name: [(labels, value)]} from /metrics."""
    status, ctype, text = get(url, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples, name, **labels):
    for got, v in samples.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def test_healthz_is_ok(live_server):
    status, ctype, body = get(live_server.url, "/healthz")
    assert status == 200 and ctype.startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_metrics_after_a_tap(live_server, ws_client):
    c = ws_client()
    col, lo, mult = c.open_cell(0)
    assert c.tap(col, lo, 100, min_mult=101)["ok"] is True        # any odds: they reprice per tick
    assert c.tap(col, lo, 100, min_mult=10001)["reason"] == "odds_changed"
    m = scrape(live_server.url)
    assert value(m, "tapgrid_taps_total", outcome="ok") >= 1
    assert value(m, "tapgrid_taps_total", outcome="odds_changed") >= 1
    assert value(m, "tapgrid_tap_latency_seconds_count") >= 2
    assert value(m, "tapgrid_tap_latency_seconds_bucket", le="+Inf") >= 2
    assert value(m, "tapgrid_tap_latency_seconds_sum") > 0
    assert value(m, "tapgrid_writer_batch_size_count") >= 1
    assert value(m, "tapgrid_writer_batch_size_sum") >= 1
    assert value(m, "tapgrid_writer_commit_seconds_count") >= 1
    for actor in ("writer", "market", "resolver", "watchdog"):
        assert value(m, "tapgrid_mailbox_depth", actor=actor) is not None, actor
    assert value(m, "tapgrid_connections") >= 1
    assert 0 <= value(m, "tapgrid_price_age_seconds") < 30
    assert value(m, "tapgrid_disk_free_bytes") > 0


def test_the_connection_gauge_follows_connections(live_server, ws_client):
    before = value(scrape(live_server.url), "tapgrid_connections")
    c = ws_client()
    wait_until(lambda: value(scrape(live_server.url), "tapgrid_connections") == before + 1,
               timeout=10, what="the gauge to count the new connection")
    c.close()
    wait_until(lambda: value(scrape(live_server.url), "tapgrid_connections") == before,
               timeout=10, what="the gauge to drop the closed connection")


# --- graceful shutdown -------------------------------------------------------------------------

def test_sigterm_answers_every_tap_in_flight_then_closes_with_1001(server_factory):
    # A slow commit keeps taps in flight when the signal lands; a steady
    # stream of taps keeps arriving while the server drains.
    s = server_factory("--seed", "1", env={
        "TAPGRID_COMMIT_DELAY_MS": "100", "TAPGRID_TAP_RATE": "100000",
        "TAPGRID_TAP_BURST": "100000", "TAPGRID_MAX_OPEN_BETS": "100000"})
    c = TapgridClient(s.url)
    c.guest()
    g = wait_until(lambda: (lambda g: g if g["columns"] else None)(c.fetch_grid()),
                   timeout=10, what="a priced grid")
    now = int(time.time() * 1000)
    column = next(col for col in g["columns"] if col["t0"] - g["lock_ms"] - now > 5000)
    cells = sorted(column["cells"], key=lambda x: abs(x["lo"] - g["price"]))[:5]

    ws = WSClient.connect(f"ws://{urlsplit(s.url).netloc}/ws?token={c.token}", timeout=10)
    acks, sent = {}, []
    first_ack = Event()

    def read():
        while True:
            raw = ws.recv(timeout=30)
            if raw is None:
                return
            msg = json.loads(raw)
            if msg["type"] == "ack":
                acks.setdefault(msg["nonce"], []).append(msg)
                first_ack.set()

    def send():
        for i in range(5000):
            frame, nonce = c.signed_tap(column["t0"], cells[i % len(cells)]["lo"], 100, 101)
            try:
                ws.send_text(json.dumps(frame, separators=(",", ":")))
            except OSError:         # WSClosedError included: the server has gone
                return
            sent.append(nonce)
            gevent.sleep(0.002)     # pacing the taps (load shape), not synchronisation

    reader, sender = gevent.spawn(read), gevent.spawn(send)
    assert first_ack.wait(10), "no ack before the shutdown"
    before = list(sent)
    in_flight = [n for n in before if n not in acks]
    s.proc.terminate()                                      # SIGTERM
    wait_until(lambda: s.proc.poll() is not None, timeout=30, interval=0.02, what="the server to exit")
    reader.join(10)
    sender.join(10)

    assert s.proc.returncode == 0, s.log()[-2000:]
    assert ws.close_code == 1001
    assert in_flight, "every tap was answered before the signal: nothing was tested"
    unanswered = [n for n in before if n not in acks]
    assert not unanswered, f"{len(unanswered)} of {len(before)} taps sent before SIGTERM never answered"
    assert all(len(v) == 1 for v in acks.values())
    reasons = {a[0]["reason"] for a in acks.values() if not a[0]["ok"]}
    assert reasons <= {"overloaded", "insufficient_balance", "column_closed"}, reasons
    ok = {a[0]["bet"]: n for n, a in acks.items() if a[0]["ok"]}
    assert ok, "no tap was taken"
    db = sqlite3.connect(f"file:{s.db}?mode=ro", uri=True)
    try:
        rows = dict(db.execute(f"SELECT id, nonce FROM bets WHERE id IN ({','.join('?' * len(ok))})",
                               list(ok)).fetchall())
    finally:
        db.close()
    assert rows == ok, "an acknowledged bet is missing from the database"


def test_settled_stakes_and_payouts_by_multiplier_bucket(server_factory):
    # A server of its own, so no other test's bets settle into the counters.
    s = server_factory("--seed", "3")
    c = TapgridClient(s.url, backoff_base=0.2)
    c.guest()
    c.connect()
    try:
        assert c.wait_for(lambda: c.grid is not None, 10), "no grid frame"
        col, lo, _ = c.open_cell(0)
        ack = c.tap(col, lo, 100, min_mult=101)                   # any odds: they reprice per tick
        assert ack["ok"] is True
        mult = ack["mult"]       # the bucket is the accepted multiplier's, not the grid's shown one
        results = wait_until(lambda: list(c.results) or None, timeout=30, what="the bet to settle")
        payout = results[0]["payout"] if results[0]["outcome"] == "won" else 0
        m = scrape(s.url)
        bucket = mult_bucket(mult)
        assert value(m, "tapgrid_settled_bets_total", bucket=bucket) == 1
        assert value(m, "tapgrid_settled_stake_total", bucket=bucket) == 100
        assert value(m, "tapgrid_settled_payout_total", bucket=bucket) == payout
        others = [b for b in ("1.5-2", "2-3", "3-5", "100") if b != bucket]
        assert all(value(m, "tapgrid_settled_stake_total", bucket=b) == 0 for b in others)
    finally:
        c.close()
