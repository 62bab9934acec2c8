"""The sans-I/O frame reader (web/gateway/_wsframes.py): frames split anywhere
across reads or coalesced many to a read, the size cap decided from the
header before the payload exists, and each protocol error's close code."""
import socket
import struct

import pytest

from tests.web.gateway.autobahn_cases import frame
from web.gateway._wsframes import FrameReader, unmask, _unmask_int


def feed_in_pieces(data, size, limit=4096):
    r = FrameReader(limit)
    events = []
    for i in range(0, len(data), size):
        events += r.feed(data[i:i + size])
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_frames_split_anywhere_give_the_same_events(size):
    data = (frame(1, b'{"type":"ping"}') + frame(9, b"p1") + frame(2, b"\x00" * 300)
            + frame(1, b"frag-", fin=False) + frame(10, b"x") + frame(0, b"ment")
            + frame(1, "\u00b5".encode() * 100) + frame(8, struct.pack("!H", 1001) + b"bye"))
    assert feed_in_pieces(data, size) == [
        ("text", '{"type":"ping"}'), ("ping", b"p1"), ("binary", b"\x00" * 300),
        ("pong", b"x"), ("text", "frag-ment"), ("text", "\u00b5" * 100),
        ("close", 1001, "bye")]


def test_many_frames_in_one_read_are_all_parsed():
    taps = [frame(1, b'{"type":"tap","n":%d}' % i) for i in range(500)]
    events = FrameReader().feed(b"".join(taps))
    assert [e[1] for e in events] == ['{"type":"tap","n":%d}' % i for i in range(500)]


def test_the_cap_is_enforced_from_the_header_alone():
    r = FrameReader(limit=4096)
    assert r.feed(frame(1, b"a" * 4096)) == [("text", "a" * 4096)]
    # 16-bit and 64-bit lengths: the header is enough, no payload follows.
    assert FrameReader().feed(bytes((0x81, 0xFE)) + struct.pack("!H", 4097))[0][:2] == ("fail", 1009)
    assert FrameReader().feed(bytes((0x82, 0xFF)) + struct.pack("!Q", 1 << 62))[0][:2] == ("fail", 1009)
    # A fragmented message is capped as a whole.
    r = FrameReader(limit=4096)
    assert r.feed(frame(1, b"a" * 3000, fin=False)) == []
    assert r.feed(frame(0, b"a" * 1097)[:8])[0][:2] == ("fail", 1009)
    # After a failure nothing more is taken.
    assert r.done and r.feed(frame(1, b"late")) == []


def test_an_incomplete_header_waits():
    r = FrameReader()
    data = frame(1, b"x" * 200)          # 16-bit length
    assert r.feed(data[:1]) == [] and r.feed(data[1:3]) == [] and r.feed(data[3:7]) == []
    assert r.feed(data[7:]) == [("text", "x" * 200)]


@pytest.mark.parametrize("data, code", [
    (frame(1, b"x", rsv=4), 1002),
    (frame(3), 1002),
    (frame(11), 1002),
    (frame(9, b"x", fin=False), 1002),
    (frame(9, b"x" * 126), 1002),
    (frame(0, b"x"), 1002),
    (frame(1, b"a", fin=False) + frame(1, b"b"), 1002),
    (frame(8, b"\x03"), 1002),
    (frame(8, struct.pack("!H", 1005)), 1002),
    (frame(8, struct.pack("!H", 5000)), 1002),
    (frame(8, struct.pack("!H", 1000) + b"\xff"), 1007),
    (frame(1, b"\xed\xa0\x80"), 1007),
    (frame(1, b"ok\xf4", fin=False), None),
    (bytes((0x81, 0x01)) + b"x", 1002),            # unmasked client frame
])
def test_protocol_errors_and_their_codes(data, code):
    events = FrameReader().feed(data)
    if code is None:                      # an incomplete code point may continue
        assert events == []
    else:
        assert events[-1][:2] == ("fail", code)


def test_invalid_utf8_in_a_fragment_fails_before_the_end():
    r = FrameReader()
    assert r.feed(frame(1, b"ok", fin=False)) == []
    assert r.feed(frame(0, b"\xc0\xaf", fin=False))[0][:2] == ("fail", 1007)


def test_unmask_fallback_matches_wsaccel():
    key = b"\x11\x22\x33\x44"
    for n in (0, 1, 3, 4, 5, 1000):
        data = bytes(range(256)) * 4
        assert unmask(key, data[:n]) == _unmask_int(key, data[:n])


# --- the thin I/O around it (web/gateway/_wsfast.py) over a real socket pair ----------------------

def _server_ws():
    from types import SimpleNamespace

    from gevent import socket as gsocket

    from web.gateway import FastWebSocket
    a, b = gsocket.socketpair()
    rfile = a.makefile("rb")
    handler = SimpleNamespace(rfile=rfile, socket=a)
    stream = SimpleNamespace(read=rfile.read, write=a.sendall, handler=handler)
    return FastWebSocket({}, stream, handler, frame_limit=4096), a, b


def _read_server_frames(sock, n):
    data = b""
    out = []
    while len(out) < n:
        data += sock.recv(65536)
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F):
            size = data[1] & 0x7F
            out.append((data[0] & 0x0F, data[2:2 + size]))
            data = data[2 + size:]
    return out


def test_receive_many_hands_out_every_frame_of_one_read():
    ws, a, b = _server_ws()
    try:
        b.sendall(b"".join(frame(1, b'{"n":%d}' % i) for i in range(50)))
        assert ws.receive_many() == ['{"n":%d}' % i for i in range(50)]
        b.sendall(frame(1, b"one") + frame(9, b"hi") + frame(1, b"two"))
        assert ws.receive() == "one" and ws.receive() == "two"
        assert _read_server_frames(b, 1) == [(0x0A, b"hi")]          # the pong
        b.sendall(frame(8, struct.pack("!H", 4001) + b"bye"))
        b.shutdown(socket.SHUT_WR)                                     # our EOF
        assert ws.receive() is None and ws.close_code == 4001
        assert _read_server_frames(b, 1) == [(0x08, struct.pack("!H", 4001) + b"bye")]
    finally:
        a.close()
        b.close()


def test_an_oversized_header_closes_1009_without_waiting_for_the_payload():
    ws, a, b = _server_ws()
    try:
        b.sendall(bytes((0x81, 0xFE)) + struct.pack("!H", 5000) + b"\x00" * 4)   # no payload
        b.shutdown(socket.SHUT_WR)
        assert ws.receive() is None and ws.close_code == 1009
        code, payload = _read_server_frames(b, 1)[0]
        assert code == 0x08 and payload[:2] == struct.pack("!H", 1009)
    finally:
        a.close()
        b.close()
