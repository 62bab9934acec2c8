"""One player's WebSocket connection: an outgoing queue drained by its own
writer greenlet, so nobody ever blocks on a slow client's socket.

Frames are bytes, already encoded (broadcasts are encoded once for all).
Droppable frames (ticks, grids) are skipped when the client is behind;
acks, results and market changes are never dropped: a client so far
behind that even those pile up is disconnected (close 1008).

    conn = Connection(ws, user="guest-1", uid=1, session_key=key)
    conn.send(encode_text_frame(b'{"type":"pong"}'))
"""
from collections import deque

import gevent
from gevent.event import Event

__all__ = ["Connection", "TokenBucket"]

MAX_BEHIND = 32          # droppable frames are skipped beyond this queue depth
MAX_QUEUE = 20000        # beyond this the client is cut off


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
    def __init__(self, ws, user, uid, session_key, key_id, bucket):
        self.ws = ws
        self.user = user
        self.uid = uid
        self.session_key = session_key
        self.key_id = key_id
        self.bucket = bucket
        self.out = deque()
        self.idle = True
        self.event = Event()
        self.closed = False
        self.closing = False          # graceful shutdown: no new taps
        self.inflight = 0
        self.strikes = 0
        self.dropped = 0
        self._sendall = ws.raw_write
        self.writer = gevent.spawn(self._write_loop)

    def send(self, frame, droppable=False):
        if self.closed:
            return
        out = self.out
        if droppable and len(out) >= MAX_BEHIND:
            self.dropped += 1
            return
        if len(out) >= MAX_QUEUE:
            self.close(1008)
            return
        out.append(frame)
        if self.idle:
            self.idle = False
            self.event.set()

    def _write_loop(self):
        out = self.out
        while True:
            if not out:
                if self.closed:
                    return
                self.idle = True
                self.event.clear()
                self.event.wait()
                continue
            # Coalesce everything queued into one write.
            data = out.popleft() if len(out) == 1 else b"".join([out.popleft() for _ in range(len(out))])
            try:
                self._sendall(data)
            except Exception:
                self.closed = True
                out.clear()
                return

    def flush(self, timeout=2.0):
        """Wait until the queue is written (graceful shutdown)."""
        with gevent.Timeout(timeout, False):
            while self.out and not self.closed:
                gevent.sleep(0.005)

    def close(self, code=1000, reason=b""):
        if self.closed:
            return
        self.closed = True
        self.event.set()
        try:
            self.ws.close(code, reason)
        except Exception:
            pass
