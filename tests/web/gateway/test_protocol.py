"""The wire protocol of SPEC section 9 over a real WebSocket to a real
`tapgrid serve`: every ack reject reason, ping/pong, the hello frame,
malformed frames, the frame size cap, and JSON-only HTTP errors.

Frames are read synchronously from a raw `WSClient` (no reader greenlet), so
a test sees exactly what the server sent, in order."""
import http.client
import json
import secrets
import time
from urllib.parse import urlsplit

import pytest

from actors.feeds._wsclient import WSClient
from tests.support import ServerProcess, wait_until
from actors.wire._tapsig import SessionSigner, encode_tap_payload
from web.client import TapgridClient

FAR = 10001          # above any multiplier the server offers (capped at 100x)


def now_ms():
    return int(time.time() * 1000)


class Wire:
    """One signed-in player on a raw WebSocket."""

    def __init__(self, base_url, token=None, signer=None):
        if token is None:
            c = TapgridClient(base_url)
            c.guest()
            token, signer = c.token, c.signer
        self.token, self.signer = token, signer
        self.ws = WSClient.connect(f"ws://{urlsplit(base_url).netloc}/ws?token={token}", timeout=10)
        self.grid = None
        self.market = None
        self.received = []
        self.acks = {}          # nonce -> acks not yet taken by ack()

    def send(self, obj):
        self.ws.send_text(obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":")))

    def recv(self, pred=lambda m: True, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            raw = self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if raw is None:
                raise ConnectionError(f"closed with {self.ws.close_code}")
            msg = json.loads(raw)
            if msg.get("type") != "tick":
                self.received.append(msg)
            if msg.get("type") == "ack":
                self.acks.setdefault(msg["nonce"], []).append(msg)
            elif msg.get("type") == "grid":
                self.grid = msg
            elif msg.get("type") == "market":
                self.market = msg
            if pred(msg):
                return msg

    def ack(self, nonce=None, timeout=10.0):
        """The next ack for `nonce` (acks of pipelined taps come in any order)."""
        deadline = time.monotonic() + timeout
        while not self.acks.get(nonce):
            self.recv(lambda m: m["type"] == "ack", max(0.01, deadline - time.monotonic()))
        return self.acks[nonce].pop(0)

    def cell(self, margin_ms=3000):
        """(col, lo, mult): the cell nearest the price, in a column that stays
        open for at least `margin_ms` more."""
        if self.grid is None:
            self.recv(lambda m: m["type"] == "grid")
        g = self.grid
        for column in g["columns"]:
            if column["t0"] - g["lock_ms"] - now_ms() >= margin_ms and column["cells"]:
                best = min(column["cells"], key=lambda c: abs(c["lo"] - g["price"]))
                return column["t0"], best["lo"], best["mult"]
        raise AssertionError(f"no open column in the grid: {g}")

    def frame(self, col, lo, stake=100, min_mult=101, ts=None, nonce=None, signer=None):
        nonce = nonce or secrets.token_urlsafe(12)
        payload = encode_tap_payload(col, lo, stake, min_mult, now_ms() if ts is None else ts, nonce)
        return {"type": "tap", "payload": payload, "sig": (signer or self.signer).sign(payload)}, nonce

    def tap(self, *args, **kw):
        f, nonce = self.frame(*args, **kw)
        self.send(f)
        return self.ack(nonce)

    def close(self):
        self.ws.close(timeout=1)


def start_server(tmp_path_factory, name, *args, env=None, wait_open=True):
    db = str(tmp_path_factory.mktemp(name) / "tapgrid.db")
    seed = () if "--feed" in args else ("--seed", "1")     # --seed is for the sim feed only
    return ServerProcess(db, *seed, *args, env=env).start(wait_open=wait_open)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # max_stake above the guest credit, so a stake can exceed the balance
    # without first breaking the stake limit.
    s = start_server(tmp_path_factory, "proto", env={"TAPGRID_MAX_STAKE": "1000000"})
    yield s
    s.kill()


@pytest.fixture
def wire(server):
    opened = []

    def make(**kw):
        w = Wire(server.url, **kw)
        opened.append(w)
        return w

    yield make
    for w in opened:
        w.close()


def reason(ack):
    assert ack["type"] == "ack" and ack["ok"] is False, ack
    return ack["reason"]


# --- the first frames, ping ----------------------------------------------------------------


def test_hello_is_the_first_frame(wire):
    w = wire()
    first = json.loads(w.ws.recv(timeout=10))
    assert first["type"] == "hello"
    assert first["user"].startswith("guest-") and first["balance"] == 100_000
    assert abs(first["server_ts"] - now_ms()) < 60_000


def test_ping_gets_a_pong_with_the_server_time(wire):
    w = wire()
    before = now_ms()
    w.send({"type": "ping"})
    pong = w.recv(lambda m: m["type"] == "pong")
    assert type(pong["ts"]) is int and before - 5_000 <= pong["ts"] <= now_ms() + 5_000


def test_a_good_tap_is_acked_with_bet_mult_and_balance(wire):
    w = wire()
    col, lo, mult = w.cell()
    ack = w.tap(col, lo, 300)
    assert ack["ok"] is True and type(ack["bet"]) is int and ack["mult"] >= 101
    assert ack["balance"] == 100_000 - 300


# --- bad_request -----------------------------------------------------------------------------


def test_non_canonical_payloads_are_bad_request(wire):
    w = wire()
    col, lo, _ = w.cell()
    ts, nonce = now_ms(), "canon-" + secrets.token_hex(4)
    canonical = encode_tap_payload(col, lo, 100, 101, ts, nonce)
    variants = {
        "reordered": json.dumps({"lo": lo, "col": col, "stake": 100, "min_mult": 101, "ts": ts,
                                 "nonce": nonce}, separators=(",", ":")),
        "whitespace": canonical.replace(",", ", "),
        "float": canonical.replace('"stake":100', '"stake":100.0'),
        "extra key": canonical[:-1] + ',"x":1}',
        "string number": canonical.replace('"stake":100', '"stake":"100"'),
        "short nonce": encode_tap_payload(col, lo, 100, 101, ts, "abc"),
    }
    for what, payload in variants.items():
        w.send({"type": "tap", "payload": payload, "sig": w.signer.sign(payload)})
        assert reason(w.ack(None)) == "bad_request", what
    # a payload object instead of its text, and no signature at all
    w.send({"type": "tap", "payload": json.loads(canonical), "sig": w.signer.sign(canonical)})
    assert reason(w.ack(None)) == "bad_request"
    w.send({"type": "tap", "payload": canonical})
    assert reason(w.ack(None)) == "bad_request"
    # the canonical text itself was fine all along
    w.send({"type": "tap", "payload": canonical, "sig": w.signer.sign(canonical)})
    assert w.ack(nonce)["ok"] is True


# --- signature, time, replay ---------------------------------------------------------------


def test_signed_by_another_key_is_bad_signature(wire):
    w = wire()
    col, lo, _ = w.cell()
    assert reason(w.tap(col, lo, 100, signer=SessionSigner.generate())) == "bad_signature"


def test_tampered_payload_is_bad_signature(wire):
    w = wire()
    col, lo, _ = w.cell()
    f, nonce = w.frame(col, lo, 100)
    f["payload"] = f["payload"].replace('"stake":100', '"stake":900')
    w.send(f)
    assert reason(w.ack(nonce)) == "bad_signature"
    f, nonce = w.frame(col, lo, 100)
    f["sig"] = f["sig"][:-4] + ("AAAA" if not f["sig"].endswith("AAAA") else "BBBB")
    w.send(f)
    assert reason(w.ack(nonce)) == "bad_signature"


def test_a_sig_that_is_not_canonical_base64url_is_bad_signature(wire):
    # Decoded on the verify thread since stop 26: the same answer as before,
    # and the connection's next tap still goes through.
    w = wire()
    col, lo, _ = w.cell()
    f, nonce = w.frame(col, lo, 100)
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(f["sig"][-1])
    assert len(f["sig"]) % 4 == 2 and last & 0xF == 0
    for sig in (f["sig"][:-1] + "B", f["sig"][:-2] + "*" + f["sig"][-1], f["sig"][:-1]):
        f["sig"] = sig                  # unused bits set; not the alphabet; 85 chars (1 mod 4)
        w.send(f)
        assert reason(w.ack(nonce)) == "bad_signature"
    assert w.tap(col, lo, 100)["ok"] is True


@pytest.mark.parametrize("skew_ms", [-31_000, 31_000])
def test_ts_31_seconds_off_is_expired(wire, skew_ms):
    w = wire()
    col, lo, _ = w.cell()
    assert reason(w.tap(col, lo, 100, ts=now_ms() + skew_ms)) == "expired"


def test_the_same_signed_frame_twice_is_a_replay(wire):
    w = wire()
    col, lo, _ = w.cell()
    f, nonce = w.frame(col, lo, 100)
    w.send(f)
    w.send(f)
    # The replay is refused before the market sees it, so it may be acked
    # before the first tap's commit.
    acks = sorted([w.ack(nonce), w.ack(nonce)], key=lambda a: a["ok"])
    assert reason(acks[0]) == "replay" and acks[1]["ok"] is True


# --- the market's rules ----------------------------------------------------------------------


def test_a_locked_column_and_one_beyond_the_horizon_are_closed(wire):
    w = wire()
    _, lo, _ = w.cell()
    g = w.grid
    col_ms, lock_ms = g["column_ms"], g["lock_ms"]
    locked = (now_ms() + lock_ms) // col_ms * col_ms           # starts within lock_ms (or began)
    assert reason(w.tap(locked, lo, 100)) == "column_closed"
    beyond = (now_ms() + g["horizon_ms"]) // col_ms * col_ms + 2 * col_ms
    assert reason(w.tap(beyond, lo, 100)) == "column_closed"


def test_misaligned_and_far_bands_are_bad_cells(wire):
    w = wire()
    col, lo, _ = w.cell()
    band = w.grid["band_cents"]
    assert reason(w.tap(col, lo + 1, 100)) == "bad_cell"
    assert reason(w.tap(col, lo + 60 * band, 100)) == "bad_cell"
    assert reason(w.tap(col, lo - 60 * band, 100)) == "bad_cell"


def test_min_mult_above_the_cells_multiplier_is_odds_changed(wire):
    w = wire()
    col, lo, mult = w.cell()
    assert reason(w.tap(col, lo, 100, min_mult=FAR)) == "odds_changed"
    # and what the player saw is honoured when the server's is at least that
    ack = w.tap(col, lo, 100, min_mult=101)
    assert ack["ok"] is True and ack["mult"] >= 101


def test_stake_above_balance_is_insufficient_balance(wire):
    w = wire()
    col, lo, _ = w.cell()
    assert reason(w.tap(col, lo, 200_000)) == "insufficient_balance"


@pytest.mark.parametrize("stake", [99, 1_000_001])
def test_stake_outside_limits_is_limit(wire, stake):
    w = wire()
    col, lo, _ = w.cell()
    assert reason(w.tap(col, lo, stake)) == "limit"


# --- malformed frames, size cap -------------------------------------------------------------


def test_malformed_frames_get_an_error_and_the_connection_stays(wire):
    w = wire()
    for bad in ["not json", "[1,2,3]", '"a string"', '{"type":"nope"}', '{"no":"type"}']:
        w.send(bad)
        err = w.recv(lambda m: m["type"] in ("error", "ack"))
        assert err["type"] == "error" and err["reason"] == "bad_request", bad
    w.ws.send_bytes(b"\x00\x01binary")
    err = w.recv(lambda m: m["type"] in ("error", "ack"))
    assert err["type"] == "error" and err["reason"] == "bad_request"
    w.send({"type": "ping"})
    assert w.recv(lambda m: m["type"] in ("pong", "error"))["type"] == "pong"
    col, lo, _ = w.cell()
    assert w.tap(col, lo, 100)["ok"] is True


def test_a_client_that_keeps_sending_garbage_is_closed_with_1008(wire):
    w = wire()
    errors = 0
    with pytest.raises(ConnectionError):
        for _ in range(25):
            w.send("garbage")
            w.recv(lambda m: m["type"] == "error")
            errors += 1
        w.recv(timeout=10)      # the close must come by now
    assert w.ws.close_code == 1008
    assert 10 <= errors <= 25


def test_a_frame_over_4_kib_closes_with_1009(wire):
    w = wire()
    w.recv(lambda m: m["type"] == "hello")
    w.send(json.dumps({"type": "ping", "pad": "x" * 4200}))
    with pytest.raises(ConnectionError):
        while True:
            w.recv()
    assert w.ws.close_code == 1009


def test_a_frame_just_under_the_limit_is_read(wire):
    w = wire()
    w.send(json.dumps({"type": "ping", "pad": "x" * 3900}))
    assert w.recv(lambda m: m["type"] == "pong")


# --- rate limit, overload, suspension, disk --------------------------------------------------


def test_taps_beyond_the_bucket_are_rate_limited(tmp_path_factory):
    s = start_server(tmp_path_factory, "rate", env={"TAPGRID_TAP_RATE": "2", "TAPGRID_TAP_BURST": "2"})
    try:
        w = Wire(s.url)
        col, lo, _ = w.cell()
        frames = [w.frame(col, lo, 100) for _ in range(10)]
        started = time.monotonic()
        for f, _ in frames:
            w.send(f)
        acks = [w.ack(nonce) for _, nonce in frames]
        elapsed = time.monotonic() - started
        taken = [a for a in acks if a["ok"] or a["reason"] != "rate_limited"]
        limited = [a for a in acks if not a["ok"] and a["reason"] == "rate_limited"]
        assert all(a["ok"] for a in acks[:2]), acks[:2]       # the burst
        assert limited, acks
        assert len(taken) <= 2 + 2 * elapsed + 1               # burst + refill at 2/s
        # the bucket refills: a later tap goes through again
        assert wait_until(lambda: w.tap(col, lo, 100)["ok"], timeout=10, interval=0.2)
        w.close()
    finally:
        s.kill()


def test_a_full_writer_backlog_is_overloaded(tmp_path_factory):
    # One tap of backlog and a slow commit: a burst overflows the Writer.
    s = start_server(tmp_path_factory, "overload",
                     env={"TAPGRID_WRITER_QUEUE": "1", "TAPGRID_COMMIT_DELAY_MS": "300"})
    try:
        w = Wire(s.url)
        col, lo, _ = w.cell(margin_ms=4000)
        frames = [w.frame(col, lo, 100) for _ in range(20)]
        for f, _ in frames:
            w.send(f)
        acks = [w.ack(nonce) for _, nonce in frames]
        reasons = [a.get("reason") for a in acks if not a["ok"]]
        assert set(reasons) == {"overloaded"}, reasons
        assert any(a["ok"] for a in acks)
        w.close()
    finally:
        s.kill()


def test_a_feed_that_stops_suspends_the_market(tmp_path_factory):
    # A recording with an outage: ticks every 100 ms for 6 s, then ten
    # minutes of silence. The watchdog must call it stale (SPEC section 7).
    # (ReplayFeed always loops; a feed that ends would need a loop option.)
    tmp = tmp_path_factory.mktemp("feed")
    ticks = tmp / "ticks.csv"
    lines = ["ts_ms,price_cents"] + [f"{1_700_000_000_000 + i * 100},6500000" for i in range(60)]
    lines.append(f"{1_700_000_000_000 + 600_000},6500000")
    ticks.write_text("\n".join(lines) + "\n")
    s = start_server(tmp_path_factory, "stale", "--feed", "replay", "--feed-file", str(ticks),
                     env={"TAPGRID_TICK_INTERVAL_MS": "100"})
    try:
        w = Wire(s.url)
        w.recv(lambda m: m["type"] == "market" and m["status"] == "open", timeout=10)
        w.recv(lambda m: m["type"] == "grid", timeout=10)
        # A loop lagging past two ticks on a loaded box suspends the market
        # for a moment while the recording still plays, and the next tick
        # reopens it; the outage is the suspension that no tick ends.
        while True:
            suspended = w.recv(lambda m: m["type"] == "market" and m["status"] == "suspended",
                               timeout=20)
            assert suspended["reason"] == "stale_price"
            try:
                w.recv(lambda m: m["type"] == "market" and m["status"] == "open", timeout=1.5)
            except TimeoutError:
                break
        col, lo, _ = w.cell(margin_ms=0)      # from the last grid, a column open now
        assert reason(w.tap(col, lo, 100)) == "market_suspended"
        status, body = http_get(s.url, "/healthz")
        assert status == 503 and json.loads(body) == {"status": "unavailable", "reason": "stale_price"}
        w.close()
    finally:
        s.kill()


def test_low_disk_suspends_betting(tmp_path_factory):
    s = start_server(tmp_path_factory, "disk", env={"TAPGRID_MIN_FREE_DISK": "100%"}, wait_open=False)
    try:
        wait_until(lambda: json.loads(http_get(s.url, "/healthz")[1]).get("reason") == "disk_low",
                   timeout=10, what="healthz disk_low")
        status, body = http_get(s.url, "/healthz")
        assert status == 503 and json.loads(body) == {"status": "unavailable", "reason": "disk_low"}
        w = Wire(s.url)
        market = w.recv(lambda m: m["type"] == "market")
        assert market == {"type": "market", "status": "suspended", "reason": "disk_low",
                          "market_id": "BTC-USD/5s"}                # v1.1: named
        col, lo, _ = w.cell(margin_ms=0)
        assert reason(w.tap(col, lo, 100)) == "disk_low"
        w.close()
    finally:
        s.kill()


# --- HTTP errors -----------------------------------------------------------------------------


def http_call(url, method, path, body=None, headers=None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
    finally:
        conn.close()


def http_get(url, path):
    status, _, body = http_call(url, "GET", path)
    return status, body


@pytest.mark.parametrize("method,path,body,headers,status", [
    ("GET", "/no/such/page", None, {}, 404),
    ("GET", "/api/nope", None, {}, 404),
    ("POST", "/api/grid", "{}", {"Content-Type": "application/json"}, 405),
    ("DELETE", "/api/me", None, {}, 405),
    ("POST", "/api/auth/guest", "{not json", {"Content-Type": "application/json"}, 400),
    ("POST", "/api/auth/guest", "[1,2]", {"Content-Type": "application/json"}, 400),
    ("POST", "/api/auth/guest", '{"session_key":"AAAA"}', {"Content-Type": "application/json"}, 400),
    ("POST", "/api/auth/login", '{"message":1}', {"Content-Type": "application/json"}, 400),
    ("POST", "/api/auth/guest", '{"session_key":"AAAA"}', {}, 415),
    ("POST", "/api/auth/login", '{"message":1}', {"Content-Type": "text/plain"}, 415),
    ("GET", "/api/me", None, {}, 401),
    ("GET", "/api/me", None, {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ("GET", "/api/me", None, {"Authorization": "Bearer not-a-token"}, 401),
    ("GET", "/api/me", None, {"Authorization": "Bearer " + "x" * 5000}, 401),
    ("GET", "/api/history?limit=abc", None, {}, 401),
    ("GET", "/ws", None, {}, 400),
])
def test_http_errors_are_json_without_a_traceback(server, method, path, body, headers, status):
    got, ctype, text = http_call(server.url, method, path, body, headers)
    assert got == status, text
    assert ctype.startswith("application/json")
    data = json.loads(text)
    assert isinstance(data, dict) and data.get("error")
    assert "Traceback" not in text and 'File "' not in text


def test_history_with_a_bad_cursor_is_a_json_400(server):
    c = TapgridClient(server.url)
    c.guest()
    got, ctype, text = http_call(server.url, "GET", "/api/history?cursor=zz",
                            headers={"Authorization": "Bearer " + c.token})
    assert got == 400 and json.loads(text)["error"] == "bad_request"
    assert "Traceback" not in text
