"""Sessions end for real (issue 15, findings 3 and 4): logout revokes the
token (SQLite and Redis), closes that session's sockets, reaches other
processes through Redis; an open socket does not outlive its session;
expired sessions are purged. Against real servers on loopback."""
import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.feeds import WSClient
from tests.support import ServerProcess, wait_until
from web.client import TapgridClient


def call(server, method, path, token=None, data=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(server.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def open_ws(server, token):
    ws = WSClient.connect(f"ws://{urlsplit(server.url).netloc}/ws?token={token}", timeout=10)
    assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    return ws


def wait_closed(ws, timeout=10):
    """Read until the server closes; its close code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ws.recv(timeout=0.5) is None:
                return ws.close_code
        except TimeoutError:
            pass
    raise AssertionError("the server did not close the socket")


def guest(server):
    c = TapgridClient(server.url)
    c.guest()
    return c


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("send") / "tapgrid.db"), "--seed", "1").start()
    yield s
    s.kill()


def test_logout_revokes_the_token_and_closes_its_sockets(server):
    c = guest(server)
    other = guest(server)
    ws, bystander = open_ws(server, c.token), open_ws(server, other.token)
    assert call(server, "GET", "/api/me", c.token)[0] == 200
    assert call(server, "POST", "/api/auth/logout", c.token) == (200, {"ok": True})
    assert call(server, "GET", "/api/me", c.token)[0] == 401       # the cache forgot it too
    assert wait_closed(ws) == 1008
    with pytest.raises(Exception):
        open_ws(server, c.token)
    # Another player's session is untouched.
    assert call(server, "GET", "/api/me", other.token)[0] == 200
    bystander.send_text(json.dumps({"type": "ping"}))
    assert json.loads(bystander.recv(timeout=10))["type"] in ("pong", "tick", "grid", "market")
    bystander.close()


def test_logout_without_a_valid_token_is_401(server):
    assert call(server, "POST", "/api/auth/logout", "nope")[0] == 401
    assert call(server, "POST", "/api/auth/logout")[0] == 401


def test_logout_survives_a_restart(server_factory, tmp_path):
    """The row is deleted, not only the cache: a restarted server agrees."""
    db = str(tmp_path / "restart.db")
    s = server_factory("--seed", "1", db=db)
    c = guest(s)
    assert call(s, "POST", "/api/auth/logout", c.token)[0] == 200
    s.stop()
    s2 = server_factory("--seed", "1", db=db)
    assert call(s2, "GET", "/api/me", c.token)[0] == 401


def test_an_open_socket_does_not_outlive_its_session(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_SESSION_TTL_MS": "4000"})
    c = guest(s)
    c.reconnect = False
    c.connect()
    assert c.wait_for(lambda: c.grid is not None and c.open_cell() is not None, 10)
    ws = open_ws(s, c.token)                  # a second socket, only listening
    col, lo, _ = c.open_cell()
    assert c.tap(col, lo, 100)["ok"] is True
    wait_until(lambda: call(s, "GET", "/api/me", c.token)[0] == 401, timeout=15, interval=0.1,
               what="the session to expire")
    # From now on no bet is taken: a tap is refused as expired, or finds
    # its socket already closed.
    try:
        col, lo, _ = c.open_cell()
        ack = c.tap(col, lo, 100, timeout=5)
        assert ack["ok"] is False and ack["reason"] == "expired", ack
    except Exception as exc:
        assert not isinstance(exc, AssertionError), exc
    assert wait_closed(ws, timeout=15) == 1008
    assert c.wait_for(lambda: not c.connected.is_set(), 15)
    c.close()


def test_expired_sessions_are_purged(server_factory, tmp_path):
    db = str(tmp_path / "purge.db")
    s = server_factory("--seed", "1", db=db, env={"TAPGRID_SESSION_TTL_MS": "500",
                                                   "TAPGRID_SESSION_PURGE_S": "0.5"})
    guest(s)
    guest(s)

    def rows():
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        finally:
            conn.close()
    wait_until(lambda: rows() == 0, timeout=15, interval=0.1, what="expired sessions to be purged")


def test_logout_reaches_other_processes_through_redis(server_factory, redis_url):
    """With --redis, a revocation is published: a process that did not
    handle the logout still closes the session's sockets."""
    from web.auth import RedisSessionStore
    s = server_factory("--seed", "1", "--redis", redis_url)
    c = guest(s)
    ws = open_ws(s, c.token)
    other = RedisSessionStore(redis_url)              # "another process" revokes
    sid = other.revoke(c.token)
    other.publish_revoked(sid)
    assert wait_closed(ws) == 1008
    assert call(s, "GET", "/api/me", c.token)[0] == 401
    other.close()


def test_logout_with_redis_sessions(server_factory, redis_url):
    s = server_factory("--seed", "1", "--redis", redis_url)
    c = guest(s)
    ws = open_ws(s, c.token)
    assert call(s, "POST", "/api/auth/logout", c.token)[0] == 200
    assert call(s, "GET", "/api/me", c.token)[0] == 401
    assert wait_closed(ws) == 1008


def test_a_session_minted_in_redis_without_the_server_key_is_refused(redis_url):
    """Anyone who can write to Redis could add a session record; with
    session_secret set, a record without the server's HMAC is ignored."""
    import hashlib
    import redis
    from web.auth import RedisSessionStore, new_token
    now = int(time.time() * 1000)
    store = RedisSessionStore(redis_url, secret="s3cret")
    key = b"\x04" + bytes(range(64))
    good = store.create("7:alice", key, now + 60_000)
    assert store.get(good, now).user == "7:alice"
    forged = new_token()
    r = redis.Redis.from_url(redis_url)
    name = "tapgrid:s:" + hashlib.sha256(forged.encode()).hexdigest()
    r.hset(name, mapping={"user": "7:alice", "key": key, "exp": str(now + 60_000)})
    assert RedisSessionStore(redis_url).get(forged, now) is not None     # unsigned store: believed
    assert store.get(forged, now) is None
    # Editing a signed record (another account, a later expiry) breaks its MAC.
    good_name = "tapgrid:s:" + hashlib.sha256(good.encode()).hexdigest()
    r.hset(good_name, "user", "1:admin")
    assert store.get(good, now) is None
    r.close()
    store.close()


def test_a_ws_ticket_works_once_and_the_token_form_still_works(server):
    c = guest(server)
    status, body = call(server, "POST", "/api/ws-ticket", c.token)
    assert status == 200 and body["expires_in_ms"] > 0
    ticket = body["ticket"]
    netloc = urlsplit(server.url).netloc
    ws = WSClient.connect(f"ws://{netloc}/ws?ticket={ticket}", timeout=10)
    assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    ws.close()
    from actors.feeds import WSHandshakeError
    with pytest.raises(WSHandshakeError) as err:          # single use
        WSClient.connect(f"ws://{netloc}/ws?ticket={ticket}", timeout=10)
    assert err.value.status == 401
    assert call(server, "POST", "/api/ws-ticket", "nope")[0] == 401
    open_ws(server, c.token).close()                      # v1's ?token= keeps working
    t = TapgridClient(server.url, use_ticket=True)
    t.guest()
    t.connect()
    assert t.wait_for(lambda: t.grid is not None, 10)
    t.close()


def test_a_ws_ticket_expires(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_WS_TICKET_TTL_MS": "200"})
    c = guest(s)
    ticket = call(s, "POST", "/api/ws-ticket", c.token)[1]["ticket"]
    time.sleep(0.5)           # past the ticket's lifetime, by design of this test
    from actors.feeds import WSHandshakeError
    with pytest.raises(WSHandshakeError) as err:
        WSClient.connect(f"ws://{urlsplit(s.url).netloc}/ws?ticket={ticket}", timeout=10)
    assert err.value.status == 401
