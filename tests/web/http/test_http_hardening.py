"""HTTP hardening probed on loopback against a real `tapgrid serve` (issue 15,
findings 2, 8 and 9): security headers on every answer, a body limit that
answers 413 before the body is read, rate limits before parsing, JSON-only
POSTs."""
import json
import socket
import urllib.error
import urllib.request

import pytest

from tests.support import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("hard") / "tapgrid.db"), "--seed", "1").start()
    yield s
    s.kill()


def fetch(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.parametrize("path,method", [
    ("/", "GET"), ("/static/app.js", "GET"), ("/static/style.css", "GET"), ("/api/grid", "GET"),
    ("/api/me", "GET"), ("/healthz", "GET"), ("/metrics", "GET"), ("/nope", "GET"),
    ("/api/grid", "POST"), ("/ws", "GET"),
])
def test_every_answer_carries_the_security_headers(server, path, method):
    status, headers, _ = fetch(server.url + path, data=b"{}" if method == "POST" else None,
                               headers={"Content-Type": "application/json"}, method=method)
    assert status < 500
    csp = headers["Content-Security-Policy"]
    for directive in ("frame-ancestors 'none'", "script-src 'self'", "style-src 'self'",
                      "default-src 'none'"):
        assert directive in csp, csp
    assert "connect-src 'self' ws://127.0.0.1:%d" % server.port in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_static_files_have_their_real_types(server):
    assert fetch(server.url + "/static/style.css")[1]["Content-Type"].startswith("text/css")
    assert fetch(server.url + "/static/app.js")[1]["Content-Type"].startswith("text/javascript")


def _raw(server, head, body_parts=(), timeout=10):
    """Send a request head (and some body bytes), then read the answer that
    comes without the rest of the body."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        s.sendall(head.encode())
        for part in body_parts:
            s.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def test_a_huge_content_length_gets_413_before_any_body(server):
    out = _raw(server, "POST /api/auth/guest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413"), out[:200]


def test_a_chunked_body_past_the_limit_gets_413_while_reading(server):
    chunk = b"a" * 4096
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 4      # 16 KiB, never finished
    out = _raw(server, "POST /api/auth/guest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", parts)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]


def test_a_post_that_is_not_json_is_refused(server):
    # What a cross-site <form> or no-preflight fetch can send.
    status, _, body = fetch(server.url + "/api/auth/guest", data=b'{"session_key": "x"}',
                            headers={"Content-Type": "text/plain"})
    assert status == 415
    assert json.loads(body)["error"] == "bad_request"


def test_login_is_rate_limited_before_its_body_is_parsed(server_factory):
    srv = server_factory("--seed", "1", env={"TAPGRID_AUTH_RATE": "0.001", "TAPGRID_AUTH_BURST": "1"})
    codes = [fetch(srv.url + "/api/auth/login", data=b"{not json",
                   headers={"Content-Type": "application/json"})[0] for _ in range(3)]
    assert codes[0] == 400 and codes[1:] == [429, 429], codes


def _upgrade_status(server, host, origin, token):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        s.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   ).encode())
        return s.recv(4096).split(b" ", 2)[1]
    finally:
        s.close()


def test_dns_rebinding_origins_are_refused(server):
    """A page on evil.example resolved to 127.0.0.1 sends Host and Origin both
    naming evil.example: matching Origin against Host would let it in."""
    from web.client import TapgridClient
    c = TapgridClient(server.url)
    c.guest()
    rebound = f"evil.example:{server.port}"
    assert _upgrade_status(server, rebound, f"http://{rebound}", c.token) == b"403"
    own = f"127.0.0.1:{server.port}"
    assert _upgrade_status(server, own, f"http://{own}", c.token) == b"101"


def test_metrics_can_require_a_token(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_METRICS_TOKEN": "m3tr1cs"})
    assert fetch(s.url + "/metrics")[0] == 401
    assert fetch(s.url + "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    status, _, body = fetch(s.url + "/metrics", headers={"Authorization": "Bearer m3tr1cs"})
    assert status == 200 and b"tapgrid_connections" in body


def test_metrics_are_public_by_default(server):
    assert fetch(server.url + "/metrics")[0] == 200
