"""Property-based fuzzing of the HTTP handlers and the WebSocket gateway
of a live `tapgrid serve` (loopback): random methods, paths, query strings,
headers and bodies never get a 500 or a traceback, every 4xx carries a
reason, and every frame the gateway answers with is an error or ack with a
reason (or the connection is closed with 1008 after too many)."""
import json
import socket
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import REASONS
from actors.feeds import WSClient, WSError
from web.client import TapgridClient

# HTTP-only reasons the API already uses besides SPEC section 9's.
PATHS = ["/api/auth/guest", "/api/auth/login", "/api/auth/challenge", "/api/me", "/api/history",
         "/api/grid", "/healthz", "/ws", "/", "/nope", "/api/history?cursor=", "/static/../x"]

header_bytes = st.binary(min_size=0, max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)


@st.composite
def requests(draw):
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]))
    path = draw(st.sampled_from(PATHS)).encode()
    if draw(st.booleans()):
        path += b"?" + draw(st.sampled_from([b"cursor=", b"limit=", b"token="])) + draw(
            st.binary(max_size=30).filter(lambda b: not set(b) & set(b" \r\n#")))
    body = draw(st.one_of(st.binary(max_size=300), st.builds(
        lambda v: json.dumps(v).encode(), st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(
                st.sampled_from(["session_key", "message", "signature", "x"]), c, max_size=4),
            max_leaves=20)),
        st.just(b"[" * 3000 + b"]" * 3000)))
    auth = draw(st.one_of(st.none(), header_bytes))
    ctype = draw(st.sampled_from([b"application/json", b"text/plain", b"\xff"]))
    return method, path, body, auth, ctype


def send(server, method, path, body, auth, ctype):
    parts = urlsplit(server.url)
    head = [b"%s %s HTTP/1.1" % (method, path), b"Host: %s" % parts.netloc.encode(),
            b"Content-Type: " + ctype, b"Content-Length: %d" % len(body), b"Connection: close"]
    if auth is not None:
        head.append(b"Authorization: " + auth)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@settings(max_examples=200)
@given(requests())
def test_http_handlers_never_500(live_server, req):
    data = send(live_server, *req)
    assert b"Traceback" not in data and b'File "' not in data
    status = int(data.split(b" ", 2)[1])
    assert status < 500 or status == 503, data[:300]
    head, _, body = data.partition(b"\r\n\r\n")
    if 400 <= status < 500 and b"application/json" in head:
        reason = json.loads(body)["error"]
        assert reason in REASONS, reason


@pytest.fixture(scope="module")
def fuzz_token(live_server):
    c = TapgridClient(live_server.url)
    c.guest()
    return c.token


def frames_text():
    tap = st.fixed_dictionaries({"type": st.just("tap"), "payload": st.one_of(
        st.text(max_size=60), st.integers(), st.none()), "sig": st.one_of(st.text(max_size=90),
                                                                           st.none())})
    return st.one_of(st.text(max_size=200), tap.map(json.dumps),
                     st.builds(lambda d: "[" * d + "]" * d, st.integers(1, 2000)),
                     st.sampled_from(['{"type":"ping"}', '{"type":null}', "{}", "[]", "1"]))


@settings(max_examples=150)
@given(st.lists(frames_text(), min_size=1, max_size=5))
def test_gateway_answers_every_frame_with_a_reason(live_server, fuzz_token, texts):
    ws = WSClient.connect(f"ws://{urlsplit(live_server.url).netloc}/ws?token={fuzz_token}",
                          timeout=10)
    try:
        for t in texts:
            ws.send_text(t)
        ws.send_text('{"type":"ping"}')
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "pong":
                break                 # everything before it was answered
            if msg["type"] in ("error", "ack"):
                assert msg.get("reason") in REASONS, msg
    except WSError:
        assert ws.close_code in (1000, 1008, 1009), ws.close_code
    finally:
        ws.close()
