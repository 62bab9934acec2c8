"""Sign-in over HTTP against a real `tapgrid serve` (SPEC sections 4 and 9):
guest accounts in demo mode, Sign-In with Ethereum signed by eth-account,
the rejects of a bad login, and SQLite sessions that outlive a restart."""
import http.client
import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from actors.feeds._wsclient import WSClient, WSHandshakeError
from tests.support import ServerProcess, wait_until
from web.auth._siwe import build_message
from actors.wire._tapsig import SessionSigner
from web.client import TapgridClient


def call(url, method, path, body=None, token=None, host=None):
    """(status, parsed JSON body); every answer must be JSON."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if host:
        headers["Host"] = host
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        resp = conn.getresponse()
        status, ctype, text = resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
    finally:
        conn.close()
    assert ctype.startswith("application/json"), (status, ctype, text)
    assert "Traceback" not in text
    return status, json.loads(text)


def iso(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def siwe(url, account, signer, *, domain=None, issued_at=None, expires_in=timedelta(hours=1),
         challenge=None, sign_with=None):
    """(challenge, message, signature) for a login, as a wallet would make them."""
    if challenge is None:
        status, challenge = call(url, "POST", "/api/auth/challenge")
        assert status == 200
    issued = issued_at or challenge["issued_at"]
    issued_dt = datetime.fromisoformat(issued.replace("Z", "+00:00"))
    message = build_message(
        domain=domain or challenge["domain"], address=account.address, uri=challenge["uri"],
        chain_id=challenge["chain_id"], nonce=challenge["nonce"], issued_at=issued,
        expiration_time=iso(issued_dt + expires_in), session_key_b64=signer.public_b64)
    signed = Account.sign_message(encode_defunct(text=message), (sign_with or account).key)
    return challenge, message, "0x" + bytes(signed.signature).hex()


def ws_open(url, token, **kw):
    return WSClient.connect(f"ws://{urlsplit(url).netloc}/ws?token={token}", timeout=10, **kw)


def first_frames(ws, until, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if until(msg):
            return msg


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("auth") / "tapgrid.db"), "--seed", "1").start()
    yield s
    s.kill()


# --- guests --------------------------------------------------------------------------------


def test_guest_sign_in_gives_a_token_a_user_and_play_money(demo):
    signer = SessionSigner.generate()
    status, body = call(demo.url, "POST", "/api/auth/guest", {"session_key": signer.public_b64})
    assert status == 200
    assert set(body) == {"token", "user", "balance"}
    assert body["user"].startswith("guest-") and body["balance"] == 100_000
    assert len(body["token"]) >= 22                     # 128+ random bits
    assert call(demo.url, "GET", "/api/me", token=body["token"]) == (
        200, {"user": body["user"], "balance": 100_000})


@pytest.mark.parametrize("body", [{}, {"session_key": 5}, {"session_key": "AAAA"},
                                  {"session_key": "B" * 87}])
def test_guest_sign_in_needs_a_p256_session_key(demo, body):
    status, answer = call(demo.url, "POST", "/api/auth/guest", body)
    assert status == 400 and answer["error"] == "bad_request"


def test_no_demo_has_no_guest_accounts(server_factory):
    s = server_factory("--seed", "1", "--no-demo")
    status, body = call(s.url, "POST", "/api/auth/guest",
                        {"session_key": SessionSigner.generate().public_b64})
    assert status == 404 and body["error"] == "bad_request" and "demo" in body["detail"]
    # wallets still sign in, with no play money
    account, signer = Account.create(), SessionSigner.generate()
    _, message, sig = siwe(s.url, account, signer)
    status, body = call(s.url, "POST", "/api/auth/login", {"message": message, "signature": sig})
    assert status == 200 and body["user"] == account.address and body["balance"] == 0


def test_me_without_a_valid_token_is_401(demo):
    assert call(demo.url, "GET", "/api/me")[0] == 401
    status, body = call(demo.url, "GET", "/api/me", token="x" * 43)
    assert status == 401 and body["error"] == "bad_request" and "token" in body["detail"]


# --- Sign-In with Ethereum -----------------------------------------------------------------------


def test_wallet_login_then_me_and_a_tap_over_the_websocket(demo):
    account, signer = Account.create(), SessionSigner.generate()
    challenge, message, sig = siwe(demo.url, account, signer)
    assert set(challenge) == {"nonce", "domain", "uri", "chain_id", "issued_at"}
    assert challenge["domain"] == urlsplit(demo.url).netloc and challenge["chain_id"] == 1
    status, body = call(demo.url, "POST", "/api/auth/login", {"message": message, "signature": sig})
    assert status == 200, body
    assert body["user"] == account.address            # checksummed
    assert call(demo.url, "GET", "/api/me", token=body["token"]) == (
        200, {"user": account.address, "balance": body["balance"]})

    # The session key the message authorised signs taps.
    client = TapgridClient(demo.url, signer=signer)
    client.token = body["token"]
    client.connect()
    try:
        assert client.user == account.address
        assert client.wait_for(lambda: client.open_cell(0) is not None, 10)
        col, lo, mult = client.open_cell(0)
        # min_mult 1.01: this is about whose key signs, not about the odds,
        # which move with every tick (a tap at the exact multiplier seen can
        # meet odds_changed).
        ack = client.tap(col, lo, 200, min_mult=101)
        assert ack["ok"] is True and ack["balance"] == body["balance"] - 200, ack
        # ...and no other key does
        other = TapgridClient(demo.url, signer=SessionSigner.generate())
        frame, nonce = other.signed_tap(col, lo, 200, 101)
        assert client.tap_async(col, lo, 200, frame=frame).get(10)["reason"] == "bad_signature"
    finally:
        client.close()


def login_error(url, message, sig):
    return login_refusal(url, message, sig)[0]


def login_refusal(url, message, sig):
    """(reason, detail) of a refused login."""
    status, body = call(url, "POST", "/api/auth/login", {"message": message, "signature": sig})
    assert status == 401, body
    assert "token" not in body
    return body["error"], body["detail"]


def test_a_message_for_another_domain_is_refused(demo):
    _, message, sig = siwe(demo.url, Account.create(), SessionSigner.generate(),
                           domain="evil.example:8080")
    reason, detail = login_refusal(demo.url, message, sig)
    assert reason == "bad_request" and "another domain" in detail, detail


def test_a_foreign_domain_cannot_pass_by_naming_it_in_the_host_header(demo):
    # A phishing site has the player sign a SIWE message for its own domain
    # (with a nonce it fetched from us), then replays it here with that
    # domain in the Host header. The domain we expect must not come from
    # the request, or the domain binding of EIP-4361 protects nothing.
    status, challenge = call(demo.url, "POST", "/api/auth/challenge", host="evil.example")
    if status == 200:
        challenge = dict(challenge, domain="evil.example", uri="http://evil.example")
        _, message, sig = siwe(demo.url, Account.create(), SessionSigner.generate(),
                               challenge=challenge)
        status, body = call(demo.url, "POST", "/api/auth/login",
                            {"message": message, "signature": sig}, host="evil.example")
        assert status in (400, 401) and "token" not in body, body


def test_an_old_issued_at_is_refused(demo):
    old = iso(datetime.now(timezone.utc) - timedelta(seconds=90))
    _, message, sig = siwe(demo.url, Account.create(), SessionSigner.generate(), issued_at=old)
    assert login_error(demo.url, message, sig) == "expired"


def test_an_expired_message_is_refused(demo):
    issued = iso(datetime.now(timezone.utc) - timedelta(seconds=10))
    _, message, sig = siwe(demo.url, Account.create(), SessionSigner.generate(), issued_at=issued,
                           expires_in=timedelta(seconds=5))
    assert login_error(demo.url, message, sig) == "expired"


def test_a_challenge_nonce_works_once(demo):
    account, signer = Account.create(), SessionSigner.generate()
    challenge, message, sig = siwe(demo.url, account, signer)
    assert call(demo.url, "POST", "/api/auth/login", {"message": message, "signature": sig})[0] == 200
    assert login_error(demo.url, message, sig) == "replay"
    # a fresh message built on the same challenge is no better
    _, message2, sig2 = siwe(demo.url, account, SessionSigner.generate(), challenge=challenge)
    assert login_error(demo.url, message2, sig2) == "replay"


def test_a_nonce_the_server_never_issued_is_refused(demo):
    fake = dict(call(demo.url, "POST", "/api/auth/challenge")[1], nonce="f" * 32)
    _, message, sig = siwe(demo.url, Account.create(), SessionSigner.generate(), challenge=fake)
    assert login_error(demo.url, message, sig) == "replay"


def test_another_address_signature_is_refused(demo):
    account, mallory = Account.create(), Account.create()
    challenge, message, sig = siwe(demo.url, account, SessionSigner.generate(), sign_with=mallory)
    assert login_error(demo.url, message, sig) == "bad_signature"
    # the refused attempt did not burn the challenge: the real owner can use it
    _, message, sig = siwe(demo.url, account, SessionSigner.generate(), challenge=challenge)
    assert call(demo.url, "POST", "/api/auth/login", {"message": message, "signature": sig})[0] == 200


def test_a_session_longer_than_a_day_is_refused(demo):
    _, message, sig = siwe(demo.url, Account.create(), SessionSigner.generate(),
                           expires_in=timedelta(hours=25))
    status, body = call(demo.url, "POST", "/api/auth/login", {"message": message, "signature": sig})
    assert status in (400, 401) and body["error"] == "bad_request"


@pytest.mark.parametrize("body", [{}, {"message": "hello", "signature": "0x00"},
                                  {"message": "x" * 5000, "signature": "0x" + "00" * 65}])
def test_garbage_logins_are_json_errors(demo, body):
    status, answer = call(demo.url, "POST", "/api/auth/login", body)
    assert status in (400, 401) and answer["error"] == "bad_request"


def test_a_wallet_session_ends_at_its_expiration(demo):
    account, signer = Account.create(), SessionSigner.generate()
    _, message, sig = siwe(demo.url, account, signer, expires_in=timedelta(seconds=3))
    status, body = call(demo.url, "POST", "/api/auth/login", {"message": message, "signature": sig})
    assert status == 200
    token = body["token"]
    wait_until(lambda: call(demo.url, "GET", "/api/me", token=token)[0] != 200, timeout=15,
               interval=0.1, what="the session to expire")
    assert call(demo.url, "GET", "/api/me", token=token)[0] == 401
    with pytest.raises(WSHandshakeError) as refused:
        ws_open(demo.url, token)
    assert refused.value.status == 401


# --- sessions across a restart -------------------------------------------------------------------


def test_a_session_survives_a_restart(server_factory):
    s = server_factory("--seed", "1")
    signer = SessionSigner.generate()
    status, body = call(s.url, "POST", "/api/auth/guest", {"session_key": signer.public_b64})
    assert status == 200
    token = body["token"]
    assert s.stop() == 0
    s.start()
    assert call(s.url, "GET", "/api/me", token=token) == (200, {"user": body["user"], "balance": 100_000})
    ws = ws_open(s.url, token)
    try:
        hello = first_frames(ws, lambda m: m["type"] == "hello")
        assert hello["user"] == body["user"]
    finally:
        ws.close()
    # and a made-up token is still refused
    assert call(s.url, "GET", "/api/me", token=token[:-2] + "zz")[0] == 401


def test_with_redis_a_challenge_from_one_process_is_redeemed_once_by_another(server_factory,
                                                                             redis_url):
    a = server_factory("--redis", redis_url)
    b = server_factory("--redis", redis_url)
    status, challenge = call(a.url, "POST", "/api/auth/challenge")
    assert status == 200
    host_b = f"127.0.0.1:{b.port}"
    at_b = dict(challenge, domain=host_b, uri=f"http://{host_b}")
    account = Account.create()
    _, message, sig = siwe(b.url, account, SessionSigner.generate(), challenge=at_b)
    status, body = call(b.url, "POST", "/api/auth/login", {"message": message, "signature": sig})
    assert status == 200 and body["user"] == account.address
    # the same challenge nonce cannot be spent again, at either process
    at_a = dict(challenge, domain=f"127.0.0.1:{a.port}", uri=a.url)
    _, message2, sig2 = siwe(a.url, account, SessionSigner.generate(), challenge=at_a)
    assert login_error(a.url, message2, sig2) == "replay"
    assert login_error(b.url, message, sig) == "replay"
