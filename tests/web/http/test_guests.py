"""Guest accounts and client addresses (issue 15, finding 9 and the SIWE
notes), against real servers on loopback: 128-bit guest names, creation
that never signs into an existing account, a server-wide guest budget,
proof of possession of the session key, and X-Forwarded-For /
X-Forwarded-Proto believed only from a trusted proxy."""
import json
import urllib.error
import urllib.request

import pytest

from actors import Config, UserExists, start_market
from engine import ActorSystem
from web._addr import client_addr
from actors.wire import SessionSigner
from web.client import TapgridClient


def post(server, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.support import ServerProcess
    s = ServerProcess(str(tmp_path_factory.mktemp("guests") / "tapgrid.db"), "--seed", "1").start()
    yield s
    s.kill()


def test_guest_names_carry_128_random_bits(server):
    c = TapgridClient(server.url)
    c.guest()
    suffix = c.user.removeprefix("guest-")
    assert len(suffix) == 32 and int(suffix, 16) >= 0


def test_creating_a_taken_name_never_returns_the_existing_account(tmp_path):
    """What a guest-name collision meets: insert-only creation refuses."""
    system = ActorSystem()
    try:
        market = start_market(system, Config.load(env={}, overrides={"db": str(tmp_path / "t.db")}))
        uid = market.create_user("guest-" + "ab" * 16, 1000)
        assert market.create_user("guest-" + "ab" * 16, 1000) == uid          # ensure: same
        with pytest.raises(UserExists):
            market.create_user("guest-" + "ab" * 16, 1000, new=True)
        assert market.balance(uid) == 1000
    finally:
        system.stop(timeout=5)


def test_the_guest_budget_is_server_wide(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_GUEST_RATE": "0.001", "TAPGRID_GUEST_BURST": "3"})
    codes = []
    for _ in range(5):
        key = SessionSigner.generate().public_b64
        codes.append(post(s, "/api/auth/guest", {"session_key": key})[0])
    assert codes[:3] == [200, 200, 200] and codes[3:] == [503, 503], codes


def test_a_guest_proof_is_checked_when_given(server):
    signer, other = SessionSigner.generate(), SessionSigner.generate()
    nonce = post(server, "/api/auth/challenge")[1]["nonce"]
    bad = {"session_key": signer.public_b64,
           "proof": {"nonce": nonce, "sig": other.sign("tapgrid-guest:" + nonce)}}
    status, body = post(server, "/api/auth/guest", bad)
    assert status == 401 and body["error"] == "bad_signature"
    good = {"session_key": signer.public_b64,
            "proof": {"nonce": nonce, "sig": signer.sign("tapgrid-guest:" + nonce)}}
    assert post(server, "/api/auth/guest", good)[0] == 200
    # A challenge is single use.
    status, body = post(server, "/api/auth/guest", good)
    assert status == 401 and body["error"] == "expired"
    # v1 clients (no proof) still sign in.
    assert post(server, "/api/auth/guest", {"session_key": signer.public_b64})[0] == 200


def test_a_proof_can_be_required(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_GUEST_PROOF_REQUIRED": "1"})
    key = SessionSigner.generate().public_b64
    assert post(s, "/api/auth/guest", {"session_key": key})[0] == 401
    c = TapgridClient(s.url)
    c.guest()                                       # the Python client proves
    assert c.token


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    env = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 1.2.3.4"}
    assert client_addr(env, []) == "10.0.0.2"
    assert client_addr(env, ["10.0.0.9"]) == "10.0.0.2"
    assert client_addr(env, ["10.0.0.2"]) == "1.2.3.4"           # rightmost untrusted hop
    assert client_addr({**env, "HTTP_X_FORWARDED_FOR": "6.6.6.6, 10.0.0.3"},
                       ["10.0.0.2", "10.0.0.3"]) == "6.6.6.6"
    assert client_addr({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_REAL_IP": "5.5.5.5"},
                       ["10.0.0.2"]) == "5.5.5.5"


def test_sign_in_limits_key_on_the_forwarded_client_behind_a_trusted_proxy(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_AUTH_RATE": "0.001", "TAPGRID_AUTH_BURST": "1",
                                           "TAPGRID_TRUSTED_PROXIES": "127.0.0.1"})
    assert post(s, "/api/auth/challenge", headers={"X-Forwarded-For": "1.1.1.1"})[0] == 200
    assert post(s, "/api/auth/challenge", headers={"X-Forwarded-For": "1.1.1.1"})[0] == 429
    assert post(s, "/api/auth/challenge", headers={"X-Forwarded-For": "2.2.2.2"})[0] == 200


def test_forwarded_for_from_an_untrusted_peer_changes_nothing(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_AUTH_RATE": "0.001", "TAPGRID_AUTH_BURST": "1"})
    assert post(s, "/api/auth/challenge", headers={"X-Forwarded-For": "1.1.1.1"})[0] == 200
    assert post(s, "/api/auth/challenge", headers={"X-Forwarded-For": "2.2.2.2"})[0] == 429


def test_forwarded_proto_from_an_untrusted_peer_is_ignored(server):
    status, body = post(server, "/api/auth/challenge", headers={"X-Forwarded-Proto": "https"})
    assert status == 200 and body["uri"].startswith("http://"), body


def test_idle_guests_that_never_bet_are_purged(server_factory, tmp_path):
    import pysqlite3.dbapi2 as sqlite3
    from actors import audit
    from tests.support import wait_until
    db = str(tmp_path / "purge.db")
    s = server_factory("--seed", "1", db=db, env={
        "TAPGRID_SESSION_TTL_MS": "3000", "TAPGRID_GUEST_IDLE_MS": "3000",
        "TAPGRID_SESSION_PURGE_S": "0.5"})
    player = TapgridClient(s.url)
    player.guest()
    player.connect()
    assert player.wait_for(lambda: player.grid is not None and player.open_cell() is not None, 10)
    col, lo, _ = player.open_cell()
    assert player.tap(col, lo, 100)["ok"] is True
    player.close()
    idle = TapgridClient(s.url)
    idle.guest()

    def names():
        conn = sqlite3.connect(db)
        try:
            return {r[0] for r in conn.execute("SELECT name FROM users")}
        finally:
            conn.close()
    assert {player.user, idle.user} <= names()
    wait_until(lambda: idle.user not in names(), timeout=20, interval=0.2,
               what="the idle guest to be purged")
    assert player.user in names()                 # a guest who bet stays
    s.stop()
    assert audit(db) == []
