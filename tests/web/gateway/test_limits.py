"""The hard limits of SPEC section 5 against a real `tapgrid serve`: max
connections and handshake admission (HTTP 503 + Retry-After), allowed
origins (403), tokens checked before the upgrade (401), and a client that
never reads, which must not hold anyone else up."""
import base64
import json
import os
import time
import urllib.request
from urllib.parse import urlsplit

import pytest
from gevent import socket as gsocket
from prometheus_client.parser import text_string_to_metric_families

from actors.feeds._wsclient import WSClient, WSHandshakeError
from tests.support import ServerProcess, wait_until
from web.client import TapgridClient, Wallet


def start_server(tmp_path_factory, name, env=None):
    db = str(tmp_path_factory.mktemp(name) / "tapgrid.db")
    return ServerProcess(db, "--seed", "1", env=env).start()


def guest(server, **kw):
    c = TapgridClient(server.url, backoff_base=0.2, **kw)
    c.guest()
    return c


def upgrade(server, token, origin=None):
    """An open WSClient that has read its hello, or WSHandshakeError."""
    ws = WSClient.connect(f"ws://{urlsplit(server.url).netloc}/ws?token={token}", origin=origin,
                          timeout=10)
    hello = json.loads(ws.recv(timeout=10))
    assert hello["type"] == "hello"
    return ws


def refused(server, token, origin=None):
    with pytest.raises(WSHandshakeError) as err:
        upgrade(server, token, origin).close()
    return err.value


def connections(server):
    """The tapgrid_connections gauge from /metrics."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "tapgrid_connections":
            return int(family.samples[0].value)
    raise AssertionError("no tapgrid_connections in /metrics")


# --- max connections -------------------------------------------------------------------------


def test_connections_beyond_the_maximum_get_503_with_retry_after(tmp_path_factory):
    s = start_server(tmp_path_factory, "maxconn", env={"TAPGRID_MAX_CONNECTIONS": "2"})
    try:
        c = guest(s)
        first, second = upgrade(s, c.token), upgrade(s, c.token)
        err = refused(s, c.token)
        assert err.status == 503
        assert err.retry_after is not None and err.retry_after >= 1
        # a slot frees when a connection goes
        first.close()
        wait_until(lambda: connections(s) == 1, timeout=10, what="the server to drop a connection")
        third = upgrade(s, c.token)
        assert refused(s, c.token).status == 503
        for ws in (second, third):
            ws.close()
    finally:
        s.kill()


# --- handshake admission rate -----------------------------------------------------------------


def test_rapid_upgrades_beyond_the_handshake_rate_are_shed(tmp_path_factory):
    s = start_server(tmp_path_factory, "handshake", env={"TAPGRID_HANDSHAKE_RATE": "1"})
    try:
        c = guest(s)
        admitted, shed = [], []
        started = time.monotonic()
        for _ in range(10):
            try:
                admitted.append(upgrade(s, c.token))
            except WSHandshakeError as e:
                shed.append(e)
        elapsed = time.monotonic() - started
        assert admitted, "the first upgrade fits the burst"
        assert shed and all(e.status == 503 and e.retry_after for e in shed)
        assert len(admitted) <= 1 + elapsed * 1 + 1             # burst 1, refill 1/s
        for ws in admitted:
            ws.close()
        # the bucket refills
        def admitted_again():
            try:
                upgrade(s, c.token).close()
                return True
            except WSHandshakeError:
                return False
        wait_until(admitted_again, timeout=10, interval=0.25, what="an upgrade after the refill")
    finally:
        s.kill()


# --- origins and tokens --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory, "limits",
                     env={"TAPGRID_ALLOWED_ORIGINS": "http://friend.example, https://app.friend.example"})
    yield s
    s.kill()


def test_same_host_and_listed_origins_are_allowed(server):
    c = guest(server)
    host = urlsplit(server.url).netloc
    for origin in (None, f"http://{host}", "http://friend.example", "https://app.friend.example"):
        upgrade(server, c.token, origin=origin).close()


@pytest.mark.parametrize("origin", [
    "http://evil.example",
    "https://friend.example",                   # listed with another scheme only
    "http://friend.example.evil.example",
    "null",
    "http://127.0.0.1:1",                        # same host, another port
])
def test_other_origins_get_403(server, origin):
    c = guest(server)
    err = refused(server, c.token, origin=origin)
    assert err.status == 403


def test_a_lookalike_of_the_server_host_gets_403(server):
    c = guest(server)
    host = urlsplit(server.url).netloc
    for origin in (f"http://{host}.evil.example", f"http://evil.example/{host}",
                   f"http://user@{host}"):
        assert refused(server, c.token, origin=origin).status == 403, origin


@pytest.mark.parametrize("token", ["", "nonsense", "A" * 43, "x" * 500])
def test_unknown_tokens_get_401_before_the_upgrade(server, token):
    err = refused(server, token)
    assert err.status == 401


def test_an_expired_session_gets_401_before_the_upgrade(server):
    c = TapgridClient(server.url)
    c.login(Wallet(), expires_in_s=4)
    upgrade(server, c.token).close()
    def refused_now():
        try:
            upgrade(server, c.token).close()
            return None
        except WSHandshakeError as e:
            return e
    err = wait_until(refused_now, timeout=15, interval=0.2, what="the session to expire")
    assert err.status == 401


# --- a client that never reads -----------------------------------------------------------------


def raw_upgrade(server, token):
    """A WebSocket upgraded by hand on a socket with a tiny receive buffer,
    so the server's frames to it pile up at once."""
    sock = gsocket.socket()
    sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        assert byte, "closed during the upgrade"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def unsent_to(server, client_port):
    """Bytes the server has queued in the kernel for this client while the
    connection is established, else None (Linux /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1].split(":"), fields[2].split(":")
            if (int(local[1], 16) == server.port and int(remote[1], 16) == client_port
                    and fields[3] == "01"):         # ESTABLISHED
                return int(fields[4].split(":")[0], 16)
    return None


def masked_text(payload):
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_client_that_never_reads_does_not_stall_the_others(server):
    fast = guest(server)
    ticks = []
    fast.on_event = lambda m: ticks.append(m) if m["type"] == "tick" else None
    fast.connect()
    slow_player = guest(server)
    slow = raw_upgrade(server, slow_player.token)
    try:
        port = slow.getsockname()[1]
        # The grid and tick broadcasts to the slow client back up in the kernel.
        wait_until(lambda: (unsent_to(server, port) or 0) > 200_000, timeout=30,
                   what="frames to pile up for the slow client")
        assert fast.wait_for(lambda: fast.open_cell(0) is not None, 10)
        seen = len(ticks)
        for _ in range(5):
            col, lo, mult = fast.open_cell(0)
            assert fast.tap(col, lo, 100, timeout=10)["ok"] is True
        assert fast.wait_for(lambda: len(ticks) >= seen + 10, 20), "ticks stopped for the fast client"
        assert (unsent_to(server, port) or 0) > 200_000        # still stuck, still connected

        # A client that floods without ever reading the answers is cut off
        # once 20,000 answers (or 1 MiB) wait for it. The kernel's send buffer
        # takes a varying few thousand pongs first, so the flood is three
        # times the queue limit: 30,000 pings sat on the edge and failed about
        # one run in three (the server had read all of them, none refused).
        flood = masked_text(b'{"type":"ping"}') * 60_000
        try:
            slow.sendall(flood)
        except OSError:
            pass                                                # reset by the server: fine
        wait_until(lambda: unsent_to(server, port) is None, timeout=30,
                   what="the server to drop the flooding client")
        col, lo, mult = fast.open_cell(0)
        assert fast.tap(col, lo, 100, timeout=10)["ok"] is True
    finally:
        slow.close()
        fast.close()


def test_sign_in_endpoints_are_rate_limited_per_address(server_factory):
    import json as _json
    import urllib.request
    import urllib.error
    srv = server_factory(env={"TAPGRID_AUTH_RATE": "1", "TAPGRID_AUTH_BURST": "3"})
    codes = []
    for _ in range(6):
        req = urllib.request.Request(srv.url + "/api/auth/challenge", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                codes.append(r.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
            if e.code == 429:
                body = _json.loads(e.read())
                assert body["error"] == "rate_limited" and e.headers["Retry-After"] == "1"
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
