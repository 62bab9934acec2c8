"""The storm's crowd: N idle players on raw non-blocking sockets in one
epoll loop (no client library, no greenlet per connection), so 10,000 fit
in two processes on a 2-core box beside the server they measure.

Each upgrade is written by hand and its 101 (and Sec-WebSocket-Accept)
checked; server frames, never masked, are parsed by offset from one shared
buffer. ``tick`` frames are timed (their ``t``), ``hello`` marks a peer
back, ``grid``/``grid2`` frames are counted and their ~35 KB skipped unread
after the first bytes named them. Driven by perf/_storm_clients.py.

    crowd = Crowd("http://127.0.0.1:8080", n=100, users=2, backoff_base=5.0)
    crowd.setup()                    # {"connected": 100, ...}
    crowd.serve(say)                 # stdin commands until "quit"
"""
import base64
import errno
import hashlib
import heapq
import os
import random
import select
import socket
import struct
import time
from collections import deque
from urllib.parse import urlsplit

from web.client import TapgridClient

__all__ = ["Crowd"]

_TICK = b'{"type":"tick"'
_GRID = b'{"type":"grid'        # grid and grid2
_HELLO = b'{"type":"hello"'
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _now_ms():
    return time.time() * 1000


class _Peer:
    """One crowd connection's state (no greenlet, no client object)."""
    __slots__ = ("i", "sock", "fd", "state", "buf", "skip", "head", "deadline", "back_at",
                 "attempt", "tries", "key", "live")

    def __init__(self, i):
        self.i = i
        self.sock = self.fd = None
        self.state = _IDLE
        self.buf = b""            # an incomplete frame header (and its first bytes)
        self.skip = 0             # payload bytes of a big frame still to discard
        self.head = b""           # the HTTP answer so far, while upgrading
        self.deadline = 0.0
        self.back_at = None       # when the last hello arrived
        self.attempt = 0          # reconnects since the last hello (the backoff's n)
        self.tries = 0            # setup: connection attempts so far
        self.key = b""
        self.live = False         # a hello arrived on this connection


_IDLE, _CONNECTING, _UPGRADING, _OPEN, _GONE = range(5)
_PEEK = 24                 # bytes of a big frame's payload enough to know its type
_SMALL = 512               # frames up to this are read whole (hello, tick, market, ack)
_RECV = 1 << 18
_LINGER0 = struct.pack("ii", 1, 0)      # l_onoff 1, l_linger 0: close sends an RST


class Crowd:
    """N idle players on raw non-blocking sockets in one epoll loop: the
    upgrade written and its 101 checked by hand, server frames (never
    masked) parsed from a shared buffer by offset. A grid frame's ~35 KB
    are skipped once its first bytes named it; only ticks are parsed (for
    their ``t``). A dropped connection reconnects as web.client does: full
    jitter, ``backoff_base * 2**n``, a 503's Retry-After honoured on top;
    a 401 ends that player."""

    def __init__(self, url, n, users, backoff_base, grid=1):
        u = urlsplit(url)
        self.addr = (u.hostname, u.port or 80)
        self.host = f"{u.hostname}:{u.port or 80}"
        self.n, self.users, self.grid = n, users, grid
        self.backoff_base, self.backoff_cap = backoff_base, 60.0
        self.url = url
        self.refused = {}
        self.grids = 0
        self.ticks = {}          # tick ts -> receipt wall-clock ms list
        self.recording = False
        self.reconnects = 0
        self.peers = [_Peer(i) for i in range(n)]
        self.tokens = []
        self.by_fd = {}
        self.timers = []         # heap of (due monotonic, seq, peer)
        self._seq = 0
        self.setup_mode = False
        self.opening = 0         # peers connecting or upgrading
        self.live = 0            # peers whose connection said hello
        self.gone = 0            # peers given up on (401, or setup's 50 tries)
        self.quit = False
        self.extra = {}          # fd -> callback (stdin)
        self.ep = select.epoll()
        self.space = bytearray(_RECV + _SMALL + 16)
        self.view = memoryview(self.space)

    # --- the loop ------------------------------------------------------------------------

    def run(self, until):
        """Serve sockets and timers until ``until()`` is true (checked every pass)."""
        ep, by_fd, timers = self.ep, self.by_fd, self.timers
        while not until():
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                _, _, p = heapq.heappop(timers)
                if p.state == _IDLE:
                    self._open(p)
            wait = 0.05 if not timers else max(0.0, min(0.05, timers[0][0] - now))
            for fd, ev in ep.poll(wait):
                if fd in self.extra:
                    self.extra[fd]()
                    continue
                p = by_fd.get(fd)
                if p is None:
                    continue
                if p.state == _OPEN:
                    self._read(p)
                elif p.state == _CONNECTING:
                    self._connected(p, ev)
                elif p.state == _UPGRADING:
                    self._upgrade_reply(p)
            self._expire(now)

    def _expire(self, now, _last=[0.0]):
        if now - _last[0] < 0.5:
            return
        _last[0] = now
        for p in self.by_fd.values():
            if p.state in (_CONNECTING, _UPGRADING) and p.deadline < now:
                self._failed(p, "TimeoutError")

    # --- the worker's commands ---------------------------------------------------------------

    def setup(self, concurrency=100):
        """Sign in ``users`` guests, connect every peer (``concurrency``
        upgrades at a time; a refused one retried soon, 50 tries)."""
        for _ in range(self.users):
            c = TapgridClient(self.url, timeout=30)
            c.guest()
            self.tokens.append(c.token)
        t0 = time.time()
        self.setup_mode = True
        pending = deque(self.peers)

        def done():
            while pending and self.opening < concurrency:
                self._open(pending.popleft())
            return not pending and self.live + self.gone >= self.n

        self.run(done)
        self.setup_mode = False
        return {"connected": self.live, "setup_s": round(time.time() - t0, 2),
                "refused_during_setup": dict(self.refused)}

    def serve(self, say):
        """Answer stdin's commands (one JSON line each) while the sockets run, until quit."""
        pending = [b""]

        def on_stdin():
            data = os.read(0, 65536)
            if not data:
                self.quit = True
                return
            pending[0] += data
            while b"\n" in pending[0]:
                line, pending[0] = pending[0].split(b"\n", 1)
                words = line.decode().split()
                if words == ["quit"]:
                    self.quit = True
                    return
                if words:
                    say(self.command(words))

        self.extra[0] = on_stdin
        self.ep.register(0, select.EPOLLIN)
        self.run(lambda: self.quit)

    def command(self, words):
        cmd = words[0]
        if cmd == "status":
            since = float(words[1]) if len(words) > 1 else 0.0
            back = sum(1 for p in self.peers if p.live and p.back_at > since)
            return {"connected": self.live, "back": back, "n": self.n, "refused": self.refused,
                    "reconnects": self.reconnects}
        if cmd == "drop":
            return {"dropped": self.drop(words[1] if len(words) > 1 else "reset")}
        if cmd == "reset":
            self.refused = {}
            return {"ok": True}
        if cmd == "record":
            self.ticks, self.grids, self.recording = {}, 0, True
            return {"ok": True}
        if cmd == "stop_record":
            self.recording = False
            # Per tick ts: first receipt (ms) and a 1 ms histogram of receipt - ts.
            out = {}
            for t, lst in self.ticks.items():
                hist = {}
                for r in lst:
                    k = int(r - t)
                    hist[k] = hist.get(k, 0) + 1
                out[t] = {"first": min(lst), "hist": hist, "n": len(lst)}
            return {"ticks": out, "grids": self.grids}
        if cmd == "backs":
            since = float(words[1])
            backs = sorted(p.back_at - since for p in self.peers
                           if p.back_at is not None and p.back_at > since)
            return {"back": len(backs), "n": self.n, "backs": [round(b, 3) for b in backs],
                    "refused": self.refused}
        return {"error": f"unknown command {cmd}"}

    def drop(self, how):
        """Every live connection ended from this side at once, as the server
        would see a network failure or a mass client restart: ``reset``
        (SO_LINGER 0, then close: an RST), ``fin`` (a plain close: a FIN, or
        an RST where unread bytes wait) or ``shutdown`` (SHUT_RDWR, the fd
        kept until the server's own close arrives). Each peer reconnects
        with its backoff; the number dropped is returned."""
        n = 0
        for p in self.peers:
            if not p.live:
                continue
            n += 1
            if how == "shutdown":
                try:
                    p.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                continue
            if how == "reset":
                p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            self._lost(p)
        return n

    # --- connecting ------------------------------------------------------------------------

    def _open(self, p):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        p.sock, p.fd, p.buf, p.skip, p.head = s, s.fileno(), b"", 0, b""
        p.state, p.deadline = _CONNECTING, time.monotonic() + 30
        p.tries += 1
        self.opening += 1
        self.by_fd[p.fd] = p
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            self._failed(p, "OSError")
            return
        self.ep.register(p.fd, select.EPOLLOUT)

    def _connected(self, p, ev):
        if p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._failed(p, "ConnectionRefusedError")
            return
        p.key = base64.b64encode(os.urandom(16))
        token = self.tokens[p.i % len(self.tokens)]
        query = f"token={token}" + ("&grid=2" if self.grid == 2 else "")
        req = (f"GET /ws?{query} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {p.key.decode()}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
        try:
            if p.sock.send(req) != len(req):      # a few hundred bytes: all, or nothing
                raise OSError("short write")
        except OSError:
            self._failed(p, "OSError")
            return
        p.state = _UPGRADING
        self.ep.modify(p.fd, select.EPOLLIN)

    def _upgrade_reply(self, p):
        try:
            data = p.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._failed(p, "ConnectionResetError")
            return
        p.head += data
        end = p.head.find(b"\r\n\r\n")
        if end < 0:
            if len(p.head) > 16384:
                self._failed(p, "bad_reply")
            return
        lines = p.head[:end].decode("latin-1").split("\r\n")
        rest, p.head = p.head[end + 4:], b""
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        if status != 101:
            retry = headers.get("retry-after", "")
            self._failed(p, str(status), float(retry) if retry.replace(".", "", 1).isdigit() else 0)
            return
        accept = base64.b64encode(hashlib.sha1(p.key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            self._failed(p, "bad_accept")
            return
        p.state = _OPEN
        self.opening -= 1
        if rest:
            self._parse(p, rest, 0, len(rest))

    def _failed(self, p, kind, retry_after=0.0):
        """An attempt that did not end in an upgrade: count it, try again later."""
        self.refused[kind] = self.refused.get(kind, 0) + 1
        self._drop(p)
        if kind == "401":                 # the session is gone: web.client stops too
            p.state, self.gone = _GONE, self.gone + 1
            return
        if self.setup_mode:
            delay = (retry_after or 1) * random.random() + 0.05
            if p.tries >= 50:
                p.state, self.gone = _GONE, self.gone + 1
                return
        else:
            delay = self._backoff(p) + retry_after * random.random()
        self._later(p, delay)

    def _backoff(self, p):
        d = random.random() * min(self.backoff_cap, self.backoff_base * 2 ** p.attempt)
        p.attempt += 1
        return d

    def _later(self, p, delay):
        self._seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._seq, p))

    def _drop(self, p):
        if p.state in (_CONNECTING, _UPGRADING):
            self.opening -= 1
        if p.live:
            p.live, self.live = False, self.live - 1
        if p.sock is not None:
            self.by_fd.pop(p.fd, None)
            try:
                self.ep.unregister(p.fd)
            except (OSError, ValueError):
                pass
            p.sock.close()
        p.sock = p.fd = None
        p.state = _IDLE

    def _lost(self, p):
        """An open connection ended (EOF, reset or a close frame): reconnect."""
        self._drop(p)
        self.reconnects += 1
        self._later(p, self._backoff(p))

    # --- reading frames ----------------------------------------------------------------------

    def _read(self, p):
        space, view = self.space, self.view
        left = len(p.buf)
        if left:
            space[:left] = p.buf
        try:
            got = p.sock.recv_into(view[left:left + _RECV])
        except BlockingIOError:
            return
        except OSError:
            got = 0
        if not got:
            self._lost(p)
            return
        i, n = 0, left + got
        if p.skip:
            if p.skip >= got:
                p.skip -= got
                return
            i, p.skip = p.skip, 0
        self._parse(p, space, i, n)

    def _parse(self, p, buf, i, n):
        while n - i >= 2:
            ln = buf[i + 1] & 0x7F
            op = buf[i] & 0x0F
            if ln < 126:
                start = i + 2
            elif ln == 126:
                if n - i < 4:
                    break
                ln, start = (buf[i + 2] << 8) | buf[i + 3], i + 4
            else:
                if n - i < 10:
                    break
                ln, start = int.from_bytes(buf[i + 2:i + 10], "big"), i + 10
            end = start + ln
            if ln <= _SMALL:
                if end > n:
                    break
                if not self._frame(p, op, bytes(buf[start:end])):
                    return
                i = end
            else:
                if n - start < _PEEK:
                    break
                self._frame(p, op, bytes(buf[start:start + _PEEK]))
                if end > n:
                    p.skip, i = end - n, n
                else:
                    i = end
        p.buf = bytes(buf[i:n]) if i < n else b""

    def _frame(self, p, op, payload):
        """One server frame (its first bytes if big); False once the connection is over."""
        if op == 8:                   # close: the server is done with us
            self._lost(p)
            return False
        if payload.startswith(_TICK):
            if self.recording:
                k = payload.find(b'"t":') + 4
                e = k
                while e < len(payload) and 48 <= payload[e] <= 57:
                    e += 1
                t = int(payload[k:e])
                lst = self.ticks.get(t)
                if lst is None:
                    lst = self.ticks[t] = []
                lst.append(_now_ms())
        elif payload.startswith(_GRID):
            self.grids += 1
        elif payload.startswith(_HELLO):
            p.back_at, p.attempt, p.tries = time.time(), 0, 0
            if not p.live:
                p.live, self.live = True, self.live + 1
        return True
