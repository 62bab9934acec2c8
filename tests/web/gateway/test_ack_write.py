"""A commit's acks are written in one pass (web/gateway/_taps.py,
``TapPipeline._acked``): straight to the socket, in the Writer's turn, when
nothing is queued on the connection; behind what is queued (or corked
earlier in the turn) when something is, so a connection's frames keep their
order. A real Connection over a real socket pair."""
import json
import socket as stdsocket
from types import SimpleNamespace

import gevent
from gevent import socket

from actors._config import Config
from actors.wire import encode_tap_payload, parse_tap_payload
from web.gateway._conn import Connection, TokenBucket
from web.gateway._taps import TapPipeline, _Pending
from web.gateway._wsfast import encode_text_frame


def _conn():
    ours, peer = socket.socketpair()
    ws = SimpleNamespace(raw_write=ours.sendall, handler=SimpleNamespace(socket=ours))
    conn = Connection(ws, "u", 1, None, "k", TokenBucket(10, 10, 0.0))
    return conn, ours, peer


def _job(pipeline, conn, i):
    payload = encode_tap_payload(1_800_000_000_000, 9_500_000, 100, 101, 1_700_000_000_000,
                                 f"nonce-{i:04d}")
    conn.inflight += 1
    return _Pending(conn, parse_tap_payload(payload), payload.encode(), b"", 0.0, None,
                    pipeline._acked)


def _frames(data):
    out, pos = [], 0
    while pos < len(data):
        n = data[pos + 1]
        assert n < 126
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def _read(peer, want):
    data = b""
    peer.setblocking(False)
    while len(data) < want:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            gevent.sleep(0.01)
            continue
        assert chunk
        data += chunk
    return data


def _pipeline():
    return TapPipeline(Config(verify_threads=0), None, None, None, None)


def test_acks_go_straight_to_the_socket_when_nothing_is_queued():
    pipeline = _pipeline()
    conn, ours, peer = _conn()
    jobs = [_job(pipeline, conn, i) for i in range(3)]
    pipeline._acked([(j, 10 + i, 250, 900 - i) for i, j in enumerate(jobs)])
    # Written in this turn, by the caller: no writer greenlet, nothing queued.
    assert conn.writer is None and not conn.out and conn.inflight == 0
    peer.setblocking(False)
    data = peer.recv(1 << 16)              # no yield since: the bytes are already there
    acks = [json.loads(f) for f in _frames(data)]
    assert [(a["nonce"], a["bet"], a["balance"]) for a in acks] == [
        ("nonce-0000", 10, 900), ("nonce-0001", 11, 899), ("nonce-0002", 12, 898)]
    # a second answer for the same tap is ignored
    pipeline._acked([(jobs[0], 99, 250, 1)])
    try:
        extra = peer.recv(1 << 16)
    except BlockingIOError:
        extra = b""
    assert extra == b""
    ours.close(), peer.close()


def test_acks_queue_behind_what_the_connection_has_not_written_yet():
    pipeline = _pipeline()
    conn, ours, peer = _conn()
    ours.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
    big = encode_text_frame(b"x" * 60000)
    for _ in range(8):                     # more than the kernel takes while the peer sleeps
        conn.send(big)
    assert conn.out, "the socket pair took everything: nothing queued to test against"
    queued = len(conn.out)
    job = _job(pipeline, conn, 7)
    pipeline._acked([(job, 42, 250, 500)])
    assert len(conn.out) == queued + 1     # behind the queue, not before it
    total = 8 * len(big) + len(_frames_of_ack(42, 500))
    data = _read(peer, total)
    assert data.endswith(_frames_of_ack(42, 500))
    assert data[:8 * len(big)] == big * 8
    ours.close(), peer.close()


def test_acks_follow_frames_corked_earlier_in_the_turn():
    pipeline = _pipeline()
    conn, ours, peer = _conn()
    first = encode_text_frame(b'{"type":"ack","nonce":"r","ok":false,"reason":"limit"}')
    conn.send_soon(first)                  # a reject made earlier in this loop turn
    job = _job(pipeline, conn, 1)
    pipeline._acked([(job, 5, 250, 700)])
    data = _read(peer, len(first) + len(_frames_of_ack(5, 700, 1)))
    assert data == first + _frames_of_ack(5, 700, 1)
    ours.close(), peer.close()


def _frames_of_ack(bet, balance, i=7):
    return encode_text_frame(b'{"type":"ack","nonce":"nonce-%04d","ok":true,"bet":%d,"mult":250,'
                             b'"balance":%d}' % (i, bet, balance))
