"""FastWebSocket's reads (web/gateway/_wsfast.py): after a read that took
all there was, the next waits for the socket to be readable instead of
trying a ``recv`` that fails with EAGAIN (a syscall and an exception per
read on the tap path); bytes already waiting, a frame split over reads, a
full read and the peer's EOF all still come through. A real socketpair
under gevent, frames written by hand."""
import gevent
from gevent import socket

from web.gateway._wsfast import RECV_SIZE, FastWebSocket


def masked(payload, op=1):
    key = b"\x01\x02\x03\x04"
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes((0x80 | op, 0x80 | n)) if n < 126 else bytes((0x80 | op, 0xFE, n >> 8, n & 0xFF))
    return head + key + body


class _Handler:
    def __init__(self, sock):
        self.socket = sock
        self.rfile = sock.makefile("rb")


class _Stream:
    def __init__(self, sock):
        self.write = sock.sendall
        self.read = lambda n: b""


class CountingOSSocket:
    """The OS socket under gevent's, counting the recvs that found nothing
    (EAGAIN): gevent's own ``recv_into`` tries, fails, waits, retries."""

    def __init__(self, sock, misses):
        self._sock = sock
        self._misses = misses

    def _count(self, fn, *args):
        try:
            return fn(*args)
        except BlockingIOError:
            self._misses.append(1)
            raise

    def recv(self, *args):
        return self._count(self._sock.recv, *args)

    def recv_into(self, *args):
        return self._count(self._sock.recv_into, *args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def pair():
    a, b = socket.socketpair()
    misses = []
    a._sock = CountingOSSocket(a._sock, misses)
    ws = FastWebSocket({}, _Stream(a), _Handler(a))
    return ws, b, misses


def test_reads_after_a_drained_one_wait_instead_of_failing_a_recv():
    ws, peer, misses = pair()
    got = []
    reader = gevent.spawn(lambda: [got.extend(m) for m in iter(ws.receive_many, None)])
    for i in range(20):
        peer.sendall(masked(b'{"n":%d}' % i))
        gevent.sleep(0.002)            # one frame a read, the kernel buffer empty between
    peer.sendall(masked(b'{"n":"a') [:5])      # a frame split over two reads
    gevent.sleep(0.002)
    peer.sendall(masked(b'{"n":"a')[5:] + masked(b'{"n":"b"}'))
    gevent.sleep(0.01)
    peer.close()                        # EOF ends the reader
    reader.join(2)
    assert got == ['{"n":%d}' % i for i in range(20)] + ['{"n":"a', '{"n":"b"}']
    assert reader.dead and ws.closed
    assert misses == [], f"{len(misses)} recvs found nothing"


def test_bytes_waiting_before_the_read_and_a_full_read_still_come_through():
    ws, peer, misses = pair()
    frames = [masked(b"x" * 1000) for _ in range(3 * RECV_SIZE // 1000)]
    peer.sendall(b"".join(frames))      # more than one read's worth, there already
    got = []
    while len(got) < len(frames):
        got.extend(ws.receive_many())
    assert got == ["x" * 1000] * len(frames)
    peer.sendall(masked(b"late"))
    assert ws.receive_many() == ["late"]
    peer.close()
    assert ws.receive_many() is None
