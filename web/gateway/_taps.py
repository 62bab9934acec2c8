"""The tap pipeline: one loop per connection turning frames into verified
taps and acks (SPEC sections 4, 5 and 9). Admission, before a connection
exists, is the Gateway's (``_gateway.py``).

A tap goes: size cap (in the frame reader) -> JSON -> rate bucket ->
canonical payload -> ``ts`` within 30 s -> P-256 signature -> nonce unseen
-> the market. The ack is written when the Writer has committed the bet;
the reader does not wait for it, so one connection can pipeline taps.

The signature check (~80 µs of OpenSSL) runs off the event loop: the taps
read in one loop turn, from every connection, are verified as one batch
split over ``verify_threads`` native threads (OpenSSL's verify releases
the GIL), and one wake-up brings the batch back. A connection's taps
reach the market in the order they arrived however the threads finish:
each connection keeps its verifying taps in a queue and releases only
from its head. Each tap's answer goes to a small ``_Pending`` object (no
Future per tap); the Writer hands a commit's acks to ``_acked`` in one
call, which formats them and writes each connection's in one send.

Malformed frames get an ``error`` (or an ``ack`` with ``bad_request``) and
the connection stays, unless it keeps doing it (close 1008).
"""
import logging
import time
from collections import deque

import gevent
from gevent import get_hub, getcurrent

from actors import Ack, Tap
from engine import NativePool, wake_soon

from .._safejson import loads as json_loads
from ._gridframes import frame
from actors.wire import Rejected, b64url_decode, parse_tap_payload, verify_raw
from ._tapframe import parse_tap_frame
from ._wsfast import encode_text_frame

__all__ = ["TapPipeline"]

log = logging.getLogger("tapgrid.gateway")

_SKEW_MS = 30_000
_BATCH_FULL = 64       # a held batch this big goes at once
_SPLIT = 4             # taps per verify thread before another is woken (16 was tried: p99 worse, CPU unchanged)


def reject_frame(nonce, reason):
    if nonce is None:
        return encode_text_frame(b'{"type":"ack","nonce":null,"ok":false,"reason":"%s"}' % reason.encode())
    return encode_text_frame(b'{"type":"ack","nonce":"%s","ok":false,"reason":"%s"}'
                             % (nonce.encode(), reason.encode()))


class _Pending:
    """One tap from its signature check to its ack. It is the reply the
    market answers (``set(Ack)``/``fail``): the ack frame is made right
    there, in the Writer's turn, and corked into the connection's next
    write."""
    __slots__ = ("conn", "p", "payload", "sig", "t0", "ok", "done", "answered", "metrics",
                 "sink")

    def __init__(self, conn, p, payload, sig, t0, metrics, sink=None):
        self.sink = sink          # the Writer answers a commit's acks through it, in one call
        self.conn = conn
        self.p = p
        self.payload = payload
        self.sig = sig
        self.t0 = t0
        self.metrics = metrics
        self.ok = False
        self.done = False
        self.answered = False

    def set(self, ack):
        if self.answered:
            return
        self.answered = True
        conn = self.conn
        conn.inflight -= 1
        if ack.reason is None:
            conn.send_soon(_ack_frame(self.p.nonce, ack.bet, ack.mult, ack.balance))
            outcome = "ok"
        else:
            conn.send_soon(reject_frame(self.p.nonce, ack.reason))
            outcome = ack.reason
        if self.metrics is not None:
            self.metrics.tap(outcome, time.perf_counter() - self.t0)

    def fail(self, exc):
        # A crashed Column: the tap was not taken.
        if self.answered:
            return
        log.error("tap failed inside the market: %r", exc)
        self.set(Ack("overloaded"))


def _ack_frame(nonce, bet_id, mult, balance):
    return encode_text_frame(b'{"type":"ack","nonce":"%s","ok":true,"bet":%d,"mult":%d,"balance":%d}'
                             % (nonce.encode(), bet_id, mult, balance))


def _verify_many(jobs):
    # On a verify thread: the decode and encode hold the GIL as they would
    # on the loop, but count against this thread, and OpenSSL's verify
    # releases it. ``sig`` arrives as the frame's text, leaves as 64 bytes.
    for job in jobs:
        try:
            raw = job.sig = b64url_decode(job.sig)
        except Rejected:
            job.ok = False
            continue
        job.ok = verify_raw(job.conn.session_key, job.payload.encode("utf-8"), raw)
    return jobs


class TapPipeline:
    def __init__(self, cfg, market, hub, nonces, metrics, refused=None):
        self.cfg = cfg
        self.refused = {} if refused is None else refused   # reason -> connections closed
        self.market = market
        self.hub = hub
        self.nonces = nonces
        self.metrics = metrics
        threads = max(0, int(getattr(cfg, "verify_threads", 2)))
        self.pool = NativePool(threads, name="verify") if threads else None
        self._batch = []               # taps read this loop turn, to verify together
        # Held open this long after its first tap (0: to the end of the
        # loop turn), so that at moderate rates several taps share one
        # thread wake-up and one hand-back instead of paying one each.
        self._hold = max(0.0, float(getattr(cfg, "verify_hold_ms", 3.0))) / 1000.0
        self._timer = None
        self._ready = deque()          # verified, in each connection's order
        self._parked = False           # the releaser waits for _verified
        self._hub = get_hub()
        self._loop = self._hub.loop
        self._releaser = None
        self.verified = 0
        self.batches = 0
        self.held_back = 0             # verified before an earlier tap of its connection

    # --- one connection ----------------------------------------------------------------

    def run(self, conn, receive, receive_many=None):
        """Read frames until the client goes or misbehaves. With
        ``receive_many`` (every message one read completed), a read's
        frames are taken in one pass: one greenlet wake-up per read, not
        per frame."""
        conn.verifying = deque()
        if receive_many is None:
            def receive_many():
                msg = receive()
                return None if msg is None else (msg,)
        max_strikes = self.cfg.max_strikes
        on_frame = self.on_frame
        while not conn.closed:
            msgs = receive_many()
            if msgs is None:
                break
            for msg in msgs:
                on_frame(conn, msg)
                if conn.strikes > max_strikes:
                    self._strike_out(conn)
                    return
                if conn.closed:
                    return

    def _strike_out(self, conn):
        log.warning("closing %s after %d malformed frames", conn.user, conn.strikes)
        self.refused["strikes"] = self.refused.get("strikes", 0) + 1
        conn.flush(0.5)
        conn.close(1008, b"too many malformed frames")

    def on_frame(self, conn, msg):
        if self.metrics is not None:
            self.metrics.frames_in += 1
        if type(msg) is not str:
            return self._error(conn, "bad_request", "binary frames are not part of the protocol")
        fast = parse_tap_frame(msg)
        if fast is not None:
            return self._tap(conn, fast[0], fast[1])
        try:
            obj = json_loads(msg)        # depth-bounded: no RecursionError
        except ValueError:
            return self._error(conn, "bad_request", "not JSON")
        if type(obj) is not dict:
            return self._error(conn, "bad_request", "a frame is a JSON object")
        kind = obj.get("type")
        if kind == "tap":
            return self._on_tap(conn, obj)
        if kind == "subscribe":
            # v1.1: whose ticks and grids this connection receives
            err = self.hub.subscribe(conn, obj.get("markets"))
            return None if err is None else self._error(conn, "bad_request", err)
        if kind == "ping":
            conn.send(encode_text_frame(b'{"type":"pong","ts":%d}' % int(time.time() * 1000)))
            return None
        return self._error(conn, "bad_request", "unknown type")

    def _error(self, conn, reason, detail):
        conn.strikes += 1
        conn.send(frame({"type": "error", "reason": reason, "detail": detail}))

    def _reject(self, conn, nonce, reason, t0=None):
        conn.send(reject_frame(nonce, reason))
        if self.metrics is not None:
            self.metrics.tap(reason, None if t0 is None else time.perf_counter() - t0)

    def _on_tap(self, conn, obj):
        return self._tap(conn, obj.get("payload"), obj.get("sig"))

    def _tap(self, conn, payload, sig):
        t0 = time.perf_counter()
        if type(payload) is not str or type(sig) is not str or len(sig) > 200:
            conn.strikes += 1
            return self._reject(conn, None, "bad_request")
        try:
            p = parse_tap_payload(payload)
        except Rejected:
            conn.strikes += 1
            return self._reject(conn, None, "bad_request")
        if conn.closing:
            return self._reject(conn, p.nonce, "overloaded")
        now = int(time.time() * 1000)
        if now >= conn.expires_ms:
            # The session ended while the socket stayed open: no more bets
            # (the Gateway's sweeper closes the socket within a second).
            return self._reject(conn, p.nonce, "expired")
        if not conn.bucket.take(time.monotonic()):
            return self._reject(conn, p.nonce, "rate_limited")
        if abs(now - p.ts) > _SKEW_MS:
            return self._reject(conn, p.nonce, "expired")
        if not conn.urgent:
            conn.prioritise()
        # The signature's base64 and the payload's bytes are the verify
        # job's (``_verify_many``), off the loop; a sig that does not decode
        # fails there like a bad signature (a strike and ``bad_signature``,
        # as it always did), in the connection's order.
        job = _Pending(conn, p, payload, sig, t0, self.metrics, self._acked)
        conn.inflight += 1
        if self.pool is None:
            _verify_many((job,))
            job.done = True
            self._release([job])
            return None
        conn.verifying.append(job)
        batch = self._batch
        batch.append(job)
        n = len(batch)
        if n == 1:
            # Everything read in this loop turn (or the hold) goes in one batch.
            if self._hold:
                self._timer = timer = self._loop.timer(self._hold)
                timer.start(self._flush)
            else:
                wake_soon(self._loop, self._flush)
        elif n >= _BATCH_FULL and self._timer is not None:
            # Enough to keep both threads busy: no reason to wait longer.
            self._timer.stop()
            self._timer = None
            wake_soon(self._loop, self._flush)
        return None

    # --- verification off the loop -----------------------------------------------------------

    def _flush(self):
        self._timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        self.batches += 1
        # A thread per _SPLIT taps at most: waking a second thread for one
        # or two verifies costs more than it saves.
        n = max(1, min(self.pool.size, len(batch) // _SPLIT))
        size = -(-len(batch) // n)
        # One put for the parts: the first thread woken wakes the next.
        self.pool.submit_all([(_verify_many, (batch[i:i + size],), self._verified)
                              for i in range(0, len(batch), size)])

    def _verified(self, jobs, exc):
        # In the hub: mark, then move each connection's verified head along.
        if exc is not None:            # pragma: no cover - _verify_many catches its own
            log.error("signature batch failed: %r", exc)
        for job in jobs:
            job.done = True
        self.verified += len(jobs)
        ready = self._ready
        seen = set()
        for job in jobs:
            conn = job.conn
            if conn in seen:
                continue
            seen.add(conn)
            q = conn.verifying
            while q and q[0].done:
                ready.append(q.popleft())
            if q:
                # Finished out of order (the other thread was faster): these
                # wait for the connection's earlier taps.
                self.held_back += sum(1 for j in q if j.done)
        if ready:
            if self._releaser is None:
                self._releaser = gevent.spawn(self._release_loop)
            elif self._parked:
                # Straight into the releaser when we are the hub (we are,
                # from the verify threads' watcher): no trip through the
                # loop's callback queue, which a storm makes long.
                self._parked = False
                if getcurrent() is self._hub:
                    self._releaser.switch()
                else:
                    wake_soon(self._loop, self._releaser.switch)

    def _release_loop(self):
        # A greenlet, not the hub: a Redis nonce check waits on a socket.
        ready = self._ready
        hub = self._hub
        while True:
            while ready:
                jobs = list(ready)
                ready.clear()
                try:
                    self._release(jobs)
                except Exception:      # never let the pipeline die
                    log.exception("releasing verified taps failed")
            self._parked = True
            hub.switch()               # until _verified has more

    def _release(self, jobs):
        """Verified taps, each connection's in order: nonce, then the market."""
        good = [j for j in jobs if j.ok]
        reasons = {}
        if good:
            now = int(time.time() * 1000)
            checked = self.nonces.check_many([(j.conn.key_id, j.p.nonce, j.p.ts) for j in good], now)
            reasons = {id(j): r for j, r in zip(good, checked) if r is not None}
        place = self.market.place_order
        for job in jobs:
            conn = job.conn
            if not job.ok:
                # A strike: verifying costs CPU, and an honest client never
                # sends a bad signature. Counted after the verify, so the
                # reader may be waiting for a frame that never comes: close here.
                conn.strikes += 1
                reason = "bad_signature"
                if conn.strikes > self.cfg.max_strikes and not conn.closed:
                    self._reject(conn, job.p.nonce, reason, job.t0)
                    conn.inflight -= 1
                    job.answered = True
                    gevent.spawn(self._strike_out, conn)   # flush waits; the others need not
                    continue
            else:
                reason = reasons.get(id(job))
            if reason is not None:
                conn.inflight -= 1
                job.answered = True
                self._reject(conn, job.p.nonce, reason, job.t0)
                continue
            p = job.p
            place(Tap(conn.uid, p.col, p.lo, p.stake, p.min_mult, p.ts, p.nonce, job.sig,
                      p.market_id), job)

    # --- acks -----------------------------------------------------------------------------------

    def _acked(self, acks):
        """A commit's accepted taps of this pipeline ``[(_Pending, bet_id,
        mult, balance), ...]`` (the Writer's sink, after the fsync): every
        frame made in one pass, then one write per connection, straight to
        its socket when nothing is queued there."""
        by_conn = {}
        metrics = self.metrics
        now = time.perf_counter()
        for job, bet_id, mult, balance in acks:
            if job.answered:
                continue
            job.answered = True
            conn = job.conn
            conn.inflight -= 1
            f = _ack_frame(job.p.nonce, bet_id, mult, balance)
            got = by_conn.get(conn)
            if got is None:
                by_conn[conn] = [f]
            else:
                got.append(f)
            if metrics is not None:
                metrics.tap("ok", now - job.t0)
        for conn, frames in by_conn.items():
            conn.send_ack(frames[0] if len(frames) == 1 else b"".join(frames))

    def pending(self):
        """Taps between their frame and their ack, on every connection."""
        return sum(c.inflight for c in list(self.hub.conns))
