"""The WebSocket gateway: admission (before a connection exists), then each
connection handed to the tap pipeline (``_taps.py``), which turns its
frames into verified taps and acks (SPEC sections 4, 5 and 9).
"""
import logging
import time
from urllib.parse import parse_qs

from actors.wire import load_session_key

from ._conn import Connection, TokenBucket
from ._taps import TapPipeline

__all__ = ["Gateway"]

log = logging.getLogger("tapgrid.gateway")


class Gateway:
    def __init__(self, cfg, market, hub, sessions, nonces, metrics):
        self.cfg = cfg
        self.market = market
        self.hub = hub
        self.sessions = sessions
        self.nonces = nonces
        self.metrics = metrics
        self.handshakes = TokenBucket(cfg.handshake_rate, max(1.0, cfg.handshake_rate), time.monotonic())
        self.accepting = True
        self.shed = 0
        self.upgrading = 0        # admitted, not yet a registered connection
        self.loop_lag_ms = 0.0    # how late the event loop runs (see watch_loop)
        self._keys = {}           # session key bytes -> public key object (verify is hot)
        self.pipeline = TapPipeline(cfg, market, hub, nonces, metrics)

    # --- admission, before the upgrade ------------------------------------------------------

    def admit(self, environ):
        """None to upgrade, else (status, headers, body) to refuse."""
        if environ.get("PATH_INFO") != "/ws":
            return None
        if not self.accepting:
            return self._refuse("503 Service Unavailable", b"shutting down", retry=5)
        if len(self.hub.conns) + self.upgrading >= self.cfg.max_connections:
            self.shed += 1
            return self._refuse("503 Service Unavailable", b"too many connections", retry=2)
        if self.loop_lag_ms > self.cfg.max_loop_lag_ms:
            # The event loop is already late: players' taps come first, new
            # connections wait (a reconnect storm must not starve acks).
            self.shed += 1
            return self._refuse("503 Service Unavailable", b"busy", retry=1)
        if not self.handshakes.take(time.monotonic()):
            self.shed += 1
            return self._refuse("503 Service Unavailable", b"handshake rate exceeded", retry=1)
        origin = environ.get("HTTP_ORIGIN")
        if origin and not self.origin_allowed(origin, environ.get("HTTP_HOST", "")):
            return ("403 Forbidden", [("Content-Type", "text/plain")], b"origin not allowed")
        token = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
        session = self.sessions.get(token, int(time.time() * 1000))
        if session is None:
            return ("401 Unauthorized", [("Content-Type", "text/plain")], b"invalid or expired token")
        environ["tapgrid.session"] = session
        environ["tapgrid.admitted"] = True
        self.upgrading += 1
        return None

    def upgrade_done(self, environ):
        """An admitted upgrade became a connection (or failed): stop counting it."""
        if environ.pop("tapgrid.admitted", False):
            self.upgrading -= 1

    @staticmethod
    def _refuse(status, body, retry):
        return (status, [("Content-Type", "text/plain"), ("Retry-After", str(retry))], body)

    def origin_allowed(self, origin, host):
        allowed = self.cfg.allowed_origins
        if origin in allowed or "*" in allowed:
            return True
        hostpart = origin.split("://", 1)[-1].rstrip("/")
        return hostpart == host

    # --- one connection ------------------------------------------------------------------------

    def serve(self, ws, session, environ=None):
        if environ is not None:
            self.upgrade_done(environ)
        key = self._keys.get(session.session_key)
        if key is None:
            key = self._keys[session.session_key] = load_session_key(session.session_key)
        bucket = TokenBucket(self.cfg.tap_rate, self.cfg.tap_burst, time.monotonic())
        conn = Connection(ws, session.user, session.uid, key, session.session_key, bucket)
        # ?grid=2: compact grid frames (a protocol addition; v1 by default)
        query = parse_qs(environ.get("QUERY_STRING", "")) if environ is not None else {}
        self.hub.add(conn, 2 if query.get("grid", [""])[0] == "2" else 1)
        try:
            self.hub.welcome(conn, self.market.balance(session.uid))
            self.pipeline.run(conn, ws.receive)
        finally:
            self.hub.remove(conn)
            if not conn.closed:
                conn.flush(1.0)
                conn.close(1000)
            conn.closed = True

    def watch_loop(self, period=0.01):
        """Measure how late a 10 ms timer fires: the event loop's lag, the
        first sign of overload. Decays so one slow turn does not linger."""
        import gevent
        while True:
            t = time.perf_counter()
            gevent.sleep(period)
            late = (time.perf_counter() - t - period) * 1000
            self.loop_lag_ms = max(late, self.loop_lag_ms * 0.8)
            if self.metrics is not None:
                self.metrics.loop_lag(late)

    # --- shutdown -------------------------------------------------------------------------------

    def drain(self, timeout=5.0):
        """Stop taking taps, wait for the acks of those already queued."""
        import gevent
        self.accepting = False
        for conn in list(self.hub.conns):
            conn.closing = True
        with gevent.Timeout(timeout, False):
            while any(c.inflight for c in list(self.hub.conns)):
                gevent.sleep(0.01)

    def close_all(self, code=1001):
        for conn in list(self.hub.conns):
            conn.flush(1.0)
            conn.close(code, b"server shutting down")
