"""Hostile input that used to escape the error handlers (issue 9, holes 2
and 3): deeply nested JSON in a WebSocket frame gets a `bad_request` error
frame and the connection stays; nested JSON bodies, an out-of-range
history cursor and a non-UTF-8 Authorization header are HTTP 400 with a
reason, never 500."""
import json
import socket
from urllib.parse import urlsplit

import pytest

from actors.feeds import WSClient
from web.client import TapgridClient

NESTED = "[" * 1000 + "]" * 1000


def next_of(ws, kind, timeout=10):
    while True:
        msg = json.loads(ws.recv(timeout=timeout))
        if msg["type"] == kind:
            return msg


@pytest.mark.parametrize("text", [
    NESTED,
    "{" + '"a":{' * 599 + "}" * 600,
    '{"type":%s}' % NESTED,
    '{"type":"tap","payload":%s,"sig":"x"}' % NESTED,
    '{"type":"tap","payload":"p","sig":%s}' % NESTED,
])
def test_nested_json_frame_is_bad_request_and_the_connection_stays(live_server, text):
    client = TapgridClient(live_server.url)
    client.guest()
    ws = WSClient.connect(f"ws://{urlsplit(live_server.url).netloc}/ws?token={client.token}",
                          timeout=10)
    try:
        ws.send_text(text)
        err = next_of(ws, "error")
        assert err["reason"] == "bad_request"
        ws.send_text('{"type":"ping"}')
        assert next_of(ws, "pong")["ts"] > 0        # still connected
    finally:
        ws.close()


def raw_http(server, request: bytes):
    """(status, parsed JSON body) for a raw request (bytes no client library sends)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"Traceback" not in data
    return status, json.loads(body)


def post(server, path, body: bytes, extra=b""):
    host = urlsplit(server.url).netloc.encode()
    return raw_http(server, b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n%s\r\n%s"
                    % (path.encode(), host, len(body), extra, body))


@pytest.mark.parametrize("path", ["/api/auth/guest", "/api/auth/login"])
@pytest.mark.parametrize("body", [NESTED.encode(), b'{"session_key":' + NESTED.encode() + b"}",
                                  b'{"message":' + NESTED.encode() + b',"signature":"0x"}',
                                  b"\xff\xfe{}"])
def test_nested_or_undecodable_bodies_are_400(live_server, path, body):
    status, reply = post(live_server, path, body)
    assert status == 400 and reply["error"] == "bad_request", reply


def get(server, path, extra=b""):
    host = urlsplit(server.url).netloc.encode()
    return raw_http(server, b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n"
                    % (path.encode(), host, extra))


@pytest.mark.parametrize("cursor", ["99999999999999999999999999", "9223372036854775808",
                                    "-1", "0", "1e9", "abc"])
def test_history_cursor_out_of_range_is_400(live_server, cursor):
    client = TapgridClient(live_server.url)
    client.guest()
    status, reply = get(live_server, f"/api/history?cursor={cursor}",
                        b"Authorization: Bearer %s\r\n" % client.token.encode())
    assert status == 400 and reply["error"] == "bad_request", reply
    ok, page = get(live_server, "/api/history?cursor=9223372036854775807",
                   b"Authorization: Bearer %s\r\n" % client.token.encode())
    assert ok == 200 and page["bets"] == []


@pytest.mark.parametrize("path", ["/api/me", "/api/history"])
def test_non_utf8_authorization_header_is_400(live_server, path):
    status, reply = get(live_server, path, b"Authorization: Bearer \xff\xfe\xc0\xaf\r\n")
    assert status == 400 and reply["error"] == "bad_request", reply


def test_non_utf8_host_header_on_login_is_400(live_server):
    parts = urlsplit(live_server.url)
    body = b'{"message":"m","signature":"s"}'
    status, reply = raw_http(live_server, b"POST /api/auth/login HTTP/1.1\r\nHost: \xff\xfe:%d\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (parts.port, len(body), body))
    assert status == 400 and reply["error"] == "bad_request", reply
