"""Every refusal a client can reach from outside, against a real `tapgrid
serve`: HTTP, the WebSocket upgrade (before the socket is one) and frames
on an open socket. Each answer must carry a reason from SPEC section 9's
list, read from ../shared/SPEC.md now (not copied), with a 4xx status when
the client is at fault, a JSON body and no traceback. README's "Refusals and
their reasons" is the table these tests walk through; its two documented
exceptions (`/metrics` `unauthorized`, `internal` for the server's own
fault) are asserted as exactly that."""
import base64
import json
import re
import socket
import time
from urllib.parse import urlsplit

import pytest

from actors import REASONS
from actors.feeds import WSClient
from actors.wire import SessionSigner
from tests.support import VECTORS, parse_answer, wait_until
from web.auth import build_message
from web.client import HttpError, TapgridClient, Wallet

SPEC = VECTORS.parent / "SPEC.md"
KEY = base64.b64encode(b"0123456789abcdef").decode()       # a well-formed Sec-WebSocket-Key


def spec_section(number):
    text = SPEC.read_text()
    start = text.index(f"\n## {number}.")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.fixture(scope="module")
def spec():
    """SPEC section 9's reasons: the ack's list, "Reasons: `a`, `b`, ...".
    A SPEC whose list cannot be read fails here, it is never skipped."""
    listed = re.search(r"Reasons:(.*?)\.\s*\n", spec_section(9), re.S)
    assert listed, f"no 'Reasons:' list in section 9 of {SPEC}"
    reasons = set(re.findall(r"`([a-z_]+)`", listed.group(1)))
    assert reasons == set(REASONS), "actors.REASONS drifted from SPEC section 9"
    return reasons


# --- talking to the server byte for byte -----------------------------------------------------------


def exchange(server, data):
    """Send raw bytes, read the whole answer (the server closes after it):
    (status, headers with lower-case names, body)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)          # all sent: the server reads to our EOF
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            assert got, "reset before any answer"   # an answer, then a reset: still the answer
    assert b"Traceback" not in got and b'File "' not in got, got[:500]
    return parse_answer(got)


def http(server, method, path, body=b"", headers=(), version="HTTP/1.1"):
    if isinstance(body, dict):
        body, headers = json.dumps(body).encode(), (("Content-Type", "application/json"),) + tuple(headers)
    head = [f"{method} {path} {version}", f"Host: {urlsplit(server.url).netloc}", "Connection: close",
            f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers]
    return exchange(server, "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)


def upgrade(server, path="/ws", version="HTTP/1.1", ws_version="13", key=KEY, origin=None, token=None):
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key)]
    if ws_version is not None:
        headers.append(("Sec-WebSocket-Version", ws_version))
    if origin is not None:
        headers.append(("Origin", origin))
    return http(server, "GET", path + (f"?token={token}" if token else ""), headers=headers,
                version=version)


def refused(spec, answer, status, reason, detail=""):
    """The answer is `status` with JSON {"error": reason, "detail": ...},
    `reason` one of SPEC's; returns the detail."""
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    obj = json.loads(body)
    assert obj["error"] in spec, obj
    assert obj["error"] == reason and isinstance(obj["detail"], str), obj
    assert detail in obj["detail"], obj
    return obj["detail"]


def guest(server, **kw):
    c = TapgridClient(server.url, backoff_base=0.2, reconnect=False, **kw)
    c.guest()
    return c


# --- HTTP, on one demo server ---------------------------------------------------------------------


def test_bodies_that_are_not_a_json_object(live_server, spec):
    path = "/api/auth/login"
    refused(spec, http(live_server, "POST", path, b"{}", [("Content-Type", "text/plain")]), 415,
            "bad_request", "Content-Type")
    json_type = [("Content-Type", "application/json")]
    refused(spec, http(live_server, "POST", path, b"{nope", json_type), 400, "bad_request", "not JSON")
    refused(spec, http(live_server, "POST", path, b"[1]", json_type), 400, "bad_request", "object")
    refused(spec, http(live_server, "POST", path, b"{" * 70_000, json_type), 413, "bad_request", "larger")


def test_tokens_missing_invalid_or_not_utf8(live_server, spec):
    refused(spec, http(live_server, "GET", "/api/me"), 401, "bad_request", "token")
    refused(spec, http(live_server, "GET", "/api/history", headers=[("Authorization", "Bearer " + "x" * 43)]),
            401, "bad_request", "token")
    answer = exchange(live_server, b"GET /api/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"Authorization: Bearer \xff\xfe\r\n\r\n")
    refused(spec, answer, 400, "bad_request", "UTF-8")


def test_guest_sign_in_refusals(live_server, spec):
    path = "/api/auth/guest"
    refused(spec, http(live_server, "POST", path, {"session_key": "nope"}), 400, "bad_request", "session_key")
    key = guest(live_server).signer
    refused(spec, http(live_server, "POST", path, {"session_key": key.public_b64, "proof": "x"}),
            400, "bad_request", "proof")
    other = TapgridClient(live_server.url).signer
    nonce = json.loads(http(live_server, "POST", "/api/auth/challenge")[2])["nonce"]
    forged = {"nonce": nonce, "sig": other.sign("tapgrid-guest:" + nonce)}
    refused(spec, http(live_server, "POST", path, {"session_key": key.public_b64, "proof": forged}),
            401, "bad_signature")
    unknown = {"nonce": "n" * 16, "sig": key.sign("tapgrid-guest:" + "n" * 16)}
    refused(spec, http(live_server, "POST", path, {"session_key": key.public_b64, "proof": unknown}),
            401, "expired")


def test_wallet_login_refusals(live_server, spec):
    path = "/api/auth/login"
    refused(spec, http(live_server, "POST", "/api/auth/challenge", headers=[("Host", "evil.example")]),
            400, "bad_request", "host name")
    refused(spec, http(live_server, "POST", path, {"message": 1, "signature": "s"}), 400, "bad_request")
    refused(spec, http(live_server, "POST", path, {"message": "hello", "signature": "0x00"}), 401,
            "bad_request")
    # A well-formed login, signed, but made for another site: refused, saying why.
    ch = json.loads(http(live_server, "POST", "/api/auth/challenge")[2])
    wallet = Wallet()
    text = build_message(domain="evil.example", uri=ch["uri"], address=wallet.address,
                         chain_id=ch["chain_id"], nonce=ch["nonce"], issued_at=ch["issued_at"],
                         expiration_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600)),
                         session_key_b64=SessionSigner.generate().public_b64)
    refused(spec, http(live_server, "POST", path, {"message": text, "signature": wallet.personal_sign(text)}),
            401, "bad_request", "another domain")


def test_game_state_queries(live_server, spec):
    token = [("Authorization", "Bearer " + guest(live_server).token)]
    refused(spec, http(live_server, "GET", "/api/grid?market_id=NOPE"), 400, "bad_request", "market_id")
    refused(spec, http(live_server, "GET", "/api/history?cursor=x", headers=token), 400, "bad_request")
    refused(spec, http(live_server, "GET", f"/api/history?cursor={1 << 64}", headers=token), 400,
            "bad_request", "range")
    for query in ("asset=DOGE-USD", "from=abc", "from=10&to=5"):
        refused(spec, http(live_server, "GET", "/api/ticks?" + query), 400, "bad_request")
    # 5/s per address, a burst of 20: the 21st at once is refused.
    answers = [http(live_server, "GET", "/api/ticks?from=1&to=2") for _ in range(30)]
    assert answers[0][0] == 200
    refused(spec, next(a for a in answers if a[0] != 200), 429, "rate_limited")


def test_topups_refused(live_server, spec):
    rich = [("Authorization", "Bearer " + guest(live_server).token)]
    refused(spec, http(live_server, "POST", "/api/topup", {}, rich), 409, "limit", "balance under")
    wallet = TapgridClient(live_server.url)
    wallet.login(Wallet())
    refused(spec, http(live_server, "POST", "/api/topup", {}, [("Authorization", "Bearer " + wallet.token)]),
            403, "bad_request", "guests")
    refused(spec, http(live_server, "POST", "/api/topup", {}), 401, "bad_request", "token")


def test_bottles_own_refusals(live_server, spec):
    refused(spec, http(live_server, "GET", "/nope"), 404, "bad_request")
    refused(spec, http(live_server, "GET", "/static/nope.js"), 404, "bad_request")
    refused(spec, http(live_server, "DELETE", "/api/me"), 405, "bad_request")
    refused(spec, http(live_server, "GET", "/ws"), 400, "bad_request", "upgrade")


def test_requests_the_http_parser_refuses(live_server, spec):
    refused(spec, exchange(live_server, b"GARBAGE\r\n\r\n"), 400, "bad_request")
    refused(spec, exchange(live_server, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"), 414, "bad_request")


# --- the WebSocket upgrade: JSON before the socket is one -----------------------------------------


def test_handshakes_that_are_not_websocket_ones(live_server, spec):
    token = guest(live_server).token
    refused(spec, upgrade(live_server, version="HTTP/1.0", token=token), 400, "bad_request", "HTTP/1.1")
    got = upgrade(live_server, ws_version=None, token=token)
    refused(spec, got, 426, "bad_request", "Sec-WebSocket-Version")
    assert "13" in got[1]["sec-websocket-version"]
    refused(spec, upgrade(live_server, ws_version="99", token=token), 400, "bad_request", "Version")
    # Not base64 at all: gevent-websocket raised on this one (a 500).
    for key in ("abc", "!!!!", base64.b64encode(b"short").decode()):
        refused(spec, upgrade(live_server, key=key, token=token), 400, "bad_request", "Sec-WebSocket-Key")


def test_upgrades_refused_at_admission(live_server, spec):
    refused(spec, upgrade(live_server), 401, "bad_request", "token")
    refused(spec, upgrade(live_server, token="x" * 43), 401, "bad_request", "token")
    token = guest(live_server).token
    refused(spec, upgrade(live_server, origin="https://evil.example", token=token), 403, "bad_request",
            "origin")


# One server each: (settings, status, reason, detail); the first upgrade
# goes through, the second is refused.
CAPS = {
    "max_connections": ({"TAPGRID_MAX_CONNECTIONS": "1"}, 503, "overloaded", "too many connections"),
    "handshake_rate": ({"TAPGRID_HANDSHAKE_RATE": "0.001"}, 503, "overloaded", "handshake rate"),
    "address_rate": ({"TAPGRID_HANDSHAKE_RATE_PER_ADDRESS": "0.001"}, 429, "rate_limited", "upgrades"),
    "per_address": ({"TAPGRID_MAX_CONNS_PER_ADDRESS": "1"}, 429, "limit", "from this address"),
    "per_user": ({"TAPGRID_MAX_CONNS_PER_USER": "1"}, 429, "limit", "for this account"),
}


@pytest.mark.parametrize("cap", sorted(CAPS))
def test_upgrades_beyond_a_cap(server_factory, spec, cap):
    env, status, reason, detail = CAPS[cap]
    server = server_factory("--seed", "1", env=env)
    first, second = guest(server), guest(server)
    ws = WSClient.connect(f"ws://{urlsplit(server.url).netloc}/ws?token={first.token}", timeout=10)
    try:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        answer = upgrade(server, token=(first if cap == "per_user" else second).token)
        refused(spec, answer, status, reason, detail)
        assert int(answer[1]["retry-after"]) > 0
    finally:
        ws.close()


# --- frames on an open socket ---------------------------------------------------------------------


def test_malformed_frames_and_taps(ws_client, spec):
    c = ws_client()
    wait_until(lambda: c.open_cell() is not None, 15, what="an open cell")
    for text in ("not json", "[1]", '{"type":"dance"}', '{"type":"subscribe","markets":7}'):
        c.send_raw(text)
    wait_until(lambda: len(c.errors) >= 4, 10, what="four error frames")
    assert [(e["type"], e["reason"]) for e in c.errors] == [("error", "bad_request")] * 4
    col, lo, _ = c.open_cell()
    now = int(time.time() * 1000) + c.clock_offset
    frame, _ = c.signed_tap(col, lo, 100, 101)
    # Not the canonical payload: refused before its nonce is read (so "nonce": null).
    seen = []
    c.on_event = seen.append
    c.send_raw(json.dumps(dict(frame, payload=frame["payload"].replace('"col":', '"col" :'))))
    ack = wait_until(lambda: next((m for m in seen if m["type"] == "ack"), None), 10,
                     what="the ack of a non-canonical tap")
    assert (ack["ok"], ack["nonce"], ack["reason"]) == (False, None, "bad_request"), ack
    taps = {
        "bad_signature": dict(frame, sig=TapgridClient(c.base_url).signer.sign(frame["payload"])),
        "expired": c.signed_tap(col, lo, 100, 101, ts=now - 120_000)[0],
        "column_closed": c.signed_tap(col - 3_600_000, lo, 100, 101)[0],
        "odds_changed": c.signed_tap(col, lo, 100, 1_000_000)[0],
        "insufficient_balance": c.signed_tap(col, lo, c.balance + 1, 101)[0],
    }
    got = {want: c.tap_async(col, lo, 0, frame=f).get(10)["reason"] for want, f in taps.items()}
    assert set(got.values()) <= spec, got
    assert got["bad_signature"] == "bad_signature", got
    assert got["expired"] == "expired" and got["odds_changed"] == "odds_changed", got
    assert got["column_closed"] in ("column_closed", "bad_cell"), got
    assert got["insufficient_balance"] in ("insufficient_balance", "limit"), got
    replayed = c.tap_async(col, lo, 0, frame=frame).get(10), c.tap_async(col, lo, 0, frame=frame).get(10)
    assert replayed[1]["ok"] is False and replayed[1]["reason"] == "replay", replayed


# --- servers with other settings ------------------------------------------------------------------


def test_without_demo_mode(server_factory, spec):
    s = server_factory("--seed", "1", "--no-demo", env={"TAPGRID_METRICS_TOKEN": "s3cret"})
    key = TapgridClient(s.url).signer.public_b64
    refused(spec, http(s, "POST", "/api/auth/guest", {"session_key": key}), 404, "bad_request", "demo")
    wallet = TapgridClient(s.url)
    wallet.login(Wallet())
    refused(spec, http(s, "POST", "/api/topup", {}, [("Authorization", "Bearer " + wallet.token)]),
            404, "bad_request", "demo")
    # The documented exception: /metrics is the operator's, not SPEC section 9's.
    status, headers, body = http(s, "GET", "/metrics")
    assert status == 401 and json.loads(body)["error"] == "unauthorized", body
    assert http(s, "GET", "/metrics", headers=[("Authorization", "Bearer s3cret")])[0] == 200


def test_sign_in_budgets_and_a_required_proof(server_factory, spec):
    s = server_factory("--seed", "1", env={
        "TAPGRID_GUEST_PROOF_REQUIRED": "true", "TAPGRID_GUEST_RATE": "0.001", "TAPGRID_GUEST_BURST": "1",
        "TAPGRID_AUTH_RATE": "0.001", "TAPGRID_AUTH_BURST": "8", "TAPGRID_TOPUP_BELOW": str(10 ** 15)})
    key = TapgridClient(s.url).signer.public_b64
    refused(spec, http(s, "POST", "/api/auth/guest", {"session_key": key}), 401, "bad_signature", "proof")
    player = guest(s)                                      # the one guest the budget allows
    with pytest.raises(HttpError) as err:
        guest(s)
    assert err.value.status == 503 and err.value.body["error"] == "overloaded"
    # Any balance is low here: one top-up, then the per-guest limit.
    bearer = [("Authorization", "Bearer " + player.token)]
    assert http(s, "POST", "/api/topup", {}, bearer)[0] == 200
    refused(spec, http(s, "POST", "/api/topup", {}, bearer), 429, "rate_limited")
    # The per-address sign-in bucket (8) is spent by now or within a few.
    answers = [http(s, "POST", "/api/auth/challenge") for _ in range(8)]
    refused(spec, next(a for a in answers if a[0] != 200), 429, "rate_limited")
