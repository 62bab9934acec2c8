"""One player's WebSocket connection: an outgoing queue drained by its own
writer greenlet, so nobody ever blocks on a slow client's socket.

Frames are bytes, already encoded (broadcasts are encoded once for all).
Droppable frames (ticks, grids) go straight to the socket or not at all:
one that finds the kernel's send buffer full, or anything already queued,
is skipped (``send`` says False), so a broadcast never queues megabytes
of stale grids or spawns a writer per slow client; the next broadcast
brings the newest state. Only the rest of a droppable frame the socket
took in part is queued (a frame cannot stop halfway). Acks, results and
market changes are never dropped: a client so far behind that even those
pile up is disconnected (close 1008).

    conn = Connection(ws, user="guest-1", uid=1, session_key=key, key_id=kid,
                      bucket=TokenBucket(rate=20, burst=40, now=time.monotonic()))
    conn.send(encode_text_frame(b'{"type":"pong"}'))    # encode_text_frame: _wsfast

A ``TokenBucket`` spends saved-up tokens first, then refills at ``rate``:

    >>> bucket = TokenBucket(rate=2, burst=2, now=0.0)
    >>> [bucket.take(0.0) for _ in range(3)]
    [True, True, False]
    >>> bucket.take(0.5), bucket.take(0.5)
    (True, False)
"""
import socket
import struct
from collections import deque

import gevent

from engine import wake_soon

__all__ = ["Connection", "TokenBucket"]

MAX_QUEUE = 20000        # beyond this the client is cut off
MAX_BUFFER = 1 << 20     # or beyond this many queued bytes (cfg.max_send_buffer)
SEND_BUFFER = 256 * 1024


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now, n=1):
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= n:
            self.tokens = tokens - n
            return True
        self.tokens = tokens
        return False


class Connection:
    def __init__(self, ws, user, uid, session_key, key_id, bucket, max_buffer=MAX_BUFFER):
        self.ws = ws
        self.user = user
        self.uid = uid
        self.session_key = session_key
        self.key_id = key_id
        self.bucket = bucket
        self.out = deque()
        self.queued = 0               # bytes in self.out
        self.max_buffer = max_buffer
        self.cut_off = False          # closed for not reading
        self.closed = False
        self.closing = False          # graceful shutdown: no new taps
        self.inflight = 0
        self.strikes = 0
        self.dropped = 0
        self.sid = ""                 # the session's id (web._sessions.Session.sid)
        self.expires_ms = float("inf")
        self._sendall = ws.raw_write
        sock = getattr(getattr(ws, "handler", None), "socket", None)
        # The OS socket under gevent's wrapper is non-blocking: a frame that
        # fits in the kernel buffer is written at once, with no greenlet
        # switch. Only what does not fit waits for the writer greenlet.
        self._try_send = getattr(getattr(sock, "_sock", None), "send", None)
        try:
            # Acks are small and latency is the product: no Nagle delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        try:
            # A fixed kernel buffer (no autotuning to megabytes): a client
            # that stops reading shows up as "behind" after SEND_BUFFER
            # bytes, and 10,000 stuck clients cannot pin gigabytes.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except (OSError, AttributeError):
            pass
        self.writer = None            # spawned only when a client falls behind
        self.urgent = False           # its reads go first in each loop turn (it taps)
        self._cork = []
        self._loop = gevent.get_hub().loop
        if hasattr(ws, "control_send"):
            # The frame reader's pongs and close replies join this queue, so
            # they never interleave with a frame the writer is sending.
            ws.control_send = self.send
            ws.closer = self.finish

    def prioritise(self):
        """Read this player's frames first in every loop turn, before the
        turn's other sockets (a storm's EOFs and upgrades): called when it
        taps. libev runs a turn's ready watchers by priority; the read
        watcher is idle here (we are its reader, between two reads), the
        only time its priority may change."""
        self.urgent = True
        sock = getattr(getattr(self.ws, "handler", None), "socket", None)
        watcher = getattr(sock, "_read_event", None)     # gevent's socket's read watcher
        try:
            if watcher is not None and not watcher.active:
                watcher.priority = self._loop.MAXPRI
        except (AttributeError, ValueError, TypeError):
            pass

    def finish(self, code, reason=b""):
        """Close after what is queued has gone out (the reader saw the
        client's close, or a protocol error): the close frame comes last."""
        self.flush(1.0)
        self.close(code, reason)

    def send_soon(self, frame):
        """Queue ``frame`` for the end of this loop turn: the acks of one
        group commit leave in one write (one syscall) per connection."""
        cork = self._cork
        cork.append(frame)
        if len(cork) == 1:
            wake_soon(self._loop, self._uncork)

    def send_ack(self, frame):
        """Write ``frame`` now (``send``: straight to the socket when nothing
        is queued, else behind what is), unless frames corked earlier in
        this turn are waiting: then after them, so a connection's frames
        keep the order they were made in."""
        if self._cork:
            self.send_soon(frame)
        else:
            self.send(frame)

    def _uncork(self):
        cork = self._cork
        if cork:
            data = cork[0] if len(cork) == 1 else b"".join(cork)
            cork.clear()
            self.send(data)

    def send(self, frame, droppable=False):
        """Write or queue ``frame``; False if it was not taken (a droppable
        frame skipped because the client is behind, or the connection is over)."""
        if self.closed:
            return False
        out = self.out
        if not out and self.writer is None and self._try_send is not None:
            try:
                n = self._try_send(frame)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self.close(1006)
                return False
            if n == len(frame):
                return True
            if n == 0 and droppable:
                self.dropped += 1         # the kernel buffer is full: skip it whole
                return False
            frame = frame[n:]         # the rest, in order, before anything else
        elif droppable and (out or self.writer is not None):
            self.dropped += 1             # still writing an earlier frame: behind
            return False
        if len(out) >= MAX_QUEUE or self.queued + len(frame) > self.max_buffer:
            # A reader this far behind pins memory for nothing: cut it off.
            self.cut_off = True
            self.close(1008, b"too far behind")
            return False
        out.append(frame)
        self.queued += len(frame)
        if self.writer is None:
            self.writer = gevent.spawn(self._write_loop)
        return True

    def _write_loop(self):
        out = self.out
        while True:
            if not out:
                if self.closed:
                    break
                # Caught up: hand writing back to the direct path.
                self.writer = None
                return
            # Coalesce everything queued into one write.
            data = out.popleft() if len(out) == 1 else b"".join([out.popleft() for _ in range(len(out))])
            self.queued -= len(data)
            try:
                self._sendall(data)
            except Exception:
                # A dead or timed-out peer: drop the connection for real, so
                # the reader ends too and the socket does not linger.
                self.writer = None
                self.close(1006)
                return
        self.writer = None

    def flush(self, timeout=2.0):
        """Wait until the queue is written (graceful shutdown)."""
        if self.closed or not (self.out or self._cork or self.writer is not None):
            # Nothing to wait for (every teardown of a peer that went away):
            # no Timeout, whose timer start and stop cost more than the check.
            return
        with gevent.Timeout(timeout, False):
            while (self.out or self._cork or self.writer is not None) and not self.closed:
                gevent.sleep(0.005)

    def close(self, code=1000, reason=b""):
        """Send a close frame if it can go out now, then shut the socket.
        Never blocks: a client that does not read cannot hold us here."""
        if self.closed:
            return
        self.closed = True
        frame = struct.pack("!BBH", 0x88, 2 + len(reason[:123]), code) + reason[:123]
        sent = False
        # A websocket that already answered the peer's close sends no second
        # one (browsers fail the connection on "close received after close").
        if (not self.out and self.writer is None and self._try_send is not None
                and not getattr(self.ws, "closed", False)):
            try:
                sent = self._try_send(frame) == len(frame)
            except OSError:
                pass
        self.out.clear()
        self.queued = 0
        ws = self.ws
        ws.closed = True              # no second close frame from gevent-websocket
        sock = getattr(getattr(ws, "handler", None), "socket", None)
        try:
            # After a delivered close frame, half-close so it is not lost to
            # a reset; otherwise cut the connection both ways.
            sock.shutdown(socket.SHUT_WR if sent else socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
