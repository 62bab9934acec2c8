"""The WebSocket gateway: admission (before a connection exists), then each
connection handed to the tap pipeline (``_taps.py``), which turns its
frames into verified taps and acks (SPEC sections 4, 5 and 9).
"""
import logging
import time
from urllib.parse import parse_qs

from actors.wire import load_session_key
from engine import AskTimeout, BulkGate, LagWatch

from .._addr import LruTable, client_addr
from ..auth import SessionsUnavailable
from ._conn import Connection, TokenBucket
from ._gate import HandshakeGate, TurnPacer
from ._taps import TapPipeline
from ._wsfast import refusal

__all__ = ["Gateway"]

log = logging.getLogger("tapgrid.gateway")

# Upgrades that go on with a piece of their work in one loop turn (the
# handshake after the gate; the welcome): a reconnect storm's turns stay a
# few upgrades long, so players' taps, read first in every turn, wait a
# short turn at each hop instead of 32 handshakes' worth. The price: with 4,
# 10,000 reconnects were all back in 9-11 s rather than 6.5-8.5 (perf/README,
# stop 26), inside the 15 s the SPEC allows.
HANDSHAKES_PER_TURN = 4


class Gateway:
    def __init__(self, cfg, market, hub, sessions, nonces, metrics):
        self.cfg = cfg
        self.market = market
        self.hub = hub
        self.sessions = sessions
        self.nonces = nonces
        self.metrics = metrics
        self.handshakes = TokenBucket(cfg.handshake_rate, max(1.0, cfg.handshake_rate), time.monotonic())
        # upgrades worked on at once (admission to the first frames written)
        self.gate = HandshakeGate(cfg.handshake_concurrency, cfg.handshake_queue, cfg.handshake_wait_s)
        self.pacer = TurnPacer(getattr(cfg, "handshake_per_turn", HANDSHAKES_PER_TURN))
        # Teardowns wait while the loop's callback queue is long (a mass
        # disconnect), so the players still here are served first.
        self.bulk = BulkGate(cfg.bulk_queue_max, cfg.bulk_per_turn)
        self.accepting = True
        self.shed = 0
        self.upgrading = 0        # admitted, not yet a registered connection
        self.loop_lag_ms = 0.0    # how late the event loop runs (see watch_loop)
        self._keys = {}           # session key bytes -> public key object (verify is hot)
        self._by_sid = {}         # session id -> its open connections
        self._per_addr = {}       # client address -> admitted connections
        self._upgrading_users = {}  # uid -> admitted, not yet registered
        self._addr_buckets = LruTable()   # client address -> handshake bucket
        self._user_buckets = LruTable()   # uid -> tap bucket, across connections
        self.refused = {}         # reason -> upgrades refused / connections closed
        self.tickets = None       # web._tickets.TicketStore, when the app offers tickets
        self.pipeline = TapPipeline(cfg, market, hub, nonces, metrics, self.refused)

    # --- admission, before the upgrade ------------------------------------------------------

    def admit(self, environ):
        """None to upgrade, else (status, headers, body) to refuse: JSON
        ``{"error": reason, "detail": text}``, the reason from SPEC section 9
        (``overloaded`` for the server's own limits, ``rate_limited`` and
        ``limit`` for the client's, ``bad_request`` for a wrong origin or
        token: the status says which).

        The cheap, server-wide checks first; then everything that is per
        client (its address's handshake rate and connection count) before
        the token is looked up; the global handshake budget is charged only
        for a token that checks out, so bogus upgrades cannot drain it.
        Last, the HandshakeGate: the upgrade waits for one of
        ``handshake_concurrency`` slots (held until its first frames are
        written, see ``serve``), or is refused once the queue is full."""
        if environ.get("PATH_INFO") != "/ws":
            return None
        if not self.accepting:
            return self._shed("shutting down", retry=5, count=False)
        if len(self.hub.conns) + self.upgrading >= self.cfg.max_connections:
            return self._shed("too many connections", retry=2)
        if self.loop_lag_ms > self.cfg.max_loop_lag_ms:
            # The event loop is already late: players' taps come first, new
            # connections wait (a reconnect storm must not starve acks).
            return self._shed("busy", retry=1)
        addr = client_addr(environ, self.cfg.trusted_proxies)
        cfg = self.cfg
        bucket = self._addr_buckets.get_or_make(addr, lambda: TokenBucket(
            cfg.handshake_rate_per_address, max(1.0, cfg.handshake_rate_per_address), time.monotonic()))
        if not bucket.take(time.monotonic()):
            return self._limit("address_rate", "rate_limited", "too many upgrades from this address")
        if self._per_addr.get(addr, 0) >= cfg.max_conns_per_address:
            return self._limit("per_address", "limit", "too many connections from this address")
        origin = environ.get("HTTP_ORIGIN")
        if origin and not self.origin_allowed(origin, environ.get("HTTP_HOST", "")):
            return refusal("403 Forbidden", "bad_request", "origin not allowed")
        try:
            token = self._ticket_or_token(environ)
            session = self.sessions.get(token, int(time.time() * 1000)) if token else None
        except SessionsUnavailable:
            return self._shed("sessions unavailable; retry", retry=1)
        if session is None:
            return refusal("401 Unauthorized", "bad_request", "missing, invalid or expired token")
        if len(self.hub.by_user.get(session.uid, ())) + self._upgrading_users.get(session.uid, 0) \
                >= cfg.max_conns_per_user:
            return self._limit("per_user", "limit", "too many connections for this account")
        if not self.handshakes.take(time.monotonic()):
            return self._shed("handshake rate exceeded", retry=1)
        if not self.gate.enter():
            return self._shed("too many upgrades at once; retry", retry=1)
        if len(self.hub.conns) + self.upgrading >= cfg.max_connections or not self.accepting:
            # filled up (or began shutting down) while this one waited at the gate
            self.gate.leave()
            return self._shed("too many connections", retry=2)
        environ["tapgrid.gate"] = True
        environ["tapgrid.session"] = session
        environ["tapgrid.admitted"] = True
        environ["tapgrid.slot"] = (addr, session.uid)
        self._per_addr[addr] = self._per_addr.get(addr, 0) + 1
        self._upgrading_users[session.uid] = self._upgrading_users.get(session.uid, 0) + 1
        self.upgrading += 1
        # The handshake's own work (the 101, the connection, its balance
        # asked) goes on a few upgrades a turn.
        try:
            self.pacer.pace()
        except BaseException:
            # Killed while it waited (admit is outside the handler's
            # try/finally): what it holds is given back here, or the
            # gate's slot would be gone for good.
            self.release(environ)
            raise
        return None

    def _ticket_or_token(self, environ):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        ticket = query.get("ticket", [""])[0]
        if ticket and self.tickets is not None:
            return self.tickets.redeem(ticket)
        return query.get("token", [""])[0]

    def _limit(self, counter, reason, detail):
        self.refused[counter] = self.refused.get(counter, 0) + 1
        return refusal("429 Too Many Requests", reason, detail, [("Retry-After", "5")])

    def through_gate(self, environ):
        """The upgrade's first frames are out (or it failed): free its slot."""
        if environ.pop("tapgrid.gate", False):
            self.gate.leave()

    def upgrade_done(self, environ):
        """An admitted upgrade became a connection (or failed): stop counting it."""
        if environ.pop("tapgrid.admitted", False):
            self.upgrading -= 1
            uid = environ["tapgrid.slot"][1]
            left = self._upgrading_users.get(uid, 1) - 1
            if left > 0:
                self._upgrading_users[uid] = left
            else:
                self._upgrading_users.pop(uid, None)

    def release(self, environ):
        """The connection (or failed upgrade) is over: free its address slot."""
        self.through_gate(environ)
        self.upgrade_done(environ)
        slot = environ.pop("tapgrid.slot", None)
        if slot is not None:
            left = self._per_addr.get(slot[0], 1) - 1
            if left > 0:
                self._per_addr[slot[0]] = left
            else:
                self._per_addr.pop(slot[0], None)

    def _shed(self, detail, retry, count=True):
        self.shed += count
        return refusal("503 Service Unavailable", "overloaded", detail, [("Retry-After", str(retry))])

    def origin_allowed(self, origin, host=None):
        """The Origin (scheme, host and port) must be one this server is
        reached at: ``public_url``, ``allowed_origins``, or its own loopback
        names. Never the request's Host header: under DNS rebinding a page
        on evil.example sends Host and Origin both naming evil.example."""
        allowed = self.cfg.allowed_origins
        if "*" in allowed:
            return True
        return origin.rstrip("/").lower() in self._own_origins

    @property
    def _own_origins(self):
        own = getattr(self, "_own", None)
        if own is None:
            cfg = self.cfg
            own = {o.rstrip("/").lower() for o in cfg.allowed_origins}
            if cfg.public_url:
                scheme, _, rest = cfg.public_url.partition("://")
                own.add(f"{scheme}://{rest.split('/', 1)[0]}".lower())
            for name in {cfg.host, "127.0.0.1", "localhost", "[::1]"}:
                if name not in ("0.0.0.0", "::", ""):
                    own.add(f"http://{name}:{cfg.port}".lower())
            self._own = own
        return own

    # --- one connection ------------------------------------------------------------------------

    def serve(self, ws, session, environ=None):
        if environ is not None:
            self.upgrade_done(environ)
        key = self._keys.get(session.session_key)
        if key is None:
            key = self._keys[session.session_key] = load_session_key(session.session_key)
        # One tap bucket per user, shared by all their connections: opening
        # more sockets buys no more taps.
        cfg = self.cfg
        bucket = self._user_buckets.get_or_make(session.uid, lambda: TokenBucket(
            cfg.tap_rate, cfg.tap_burst, time.monotonic()))
        conn = Connection(ws, session.user, session.uid, key, session.session_key, bucket,
                          max_buffer=cfg.max_send_buffer)
        conn.sid = session.sid
        conn.expires_ms = session.expires_ms
        # ?grid=2: compact grid frames (a protocol addition; v1 by default)
        query = parse_qs(environ.get("QUERY_STRING", "")) if environ is not None else {}
        self.hub.add(conn, 2 if query.get("grid", [""])[0] == "2" else 1)
        self._by_sid.setdefault(conn.sid, set()).add(conn)
        try:
            try:
                balance = self.market.balance(session.uid)
            except AskTimeout:
                # A gateway whose market is away, and this player's balance
                # never heard: try again later (the client backs off).
                conn.close(1013, b"the market is away; retry")
                return
            self.pacer.pace()          # the balance replies of many upgrades land at once
            self.hub.welcome(conn, balance)
            if environ is not None:
                self.through_gate(environ)
            self.pipeline.run(conn, ws.receive, getattr(ws, "receive_many", None))
        finally:
            self.hub.remove(conn)
            # The rest of a teardown (and, after it, the socket's close and
            # this greenlet's end, two loop callbacks) is bulk work when
            # thousands go at once: it waits while the loop is busy, so the
            # players still here are served first.
            self.bulk.wait()
            if conn.cut_off:
                self.refused["slow_reader"] = self.refused.get("slow_reader", 0) + 1
            mine = self._by_sid.get(conn.sid)
            if mine is not None:
                mine.discard(conn)
                if not mine:
                    del self._by_sid[conn.sid]
            if not conn.closed:
                conn.flush(1.0)
                conn.close(1000)
            conn.closed = True

    # --- sessions that end ---------------------------------------------------------------------

    def end_session(self, sid, reason=b"signed out"):
        """Close every socket of session ``sid`` here (logout, or a
        revocation another process published)."""
        for conn in list(self._by_sid.get(sid, ())):
            conn.flush(0.2)
            conn.close(1008, reason)

    def expiry_loop(self, period=1.0):
        """Close sockets whose session expired: the session is checked at
        the upgrade and on each tap, and this ends idle ones too."""
        import gevent
        while True:
            gevent.sleep(period)
            self.close_expired(int(time.time() * 1000))

    def close_expired(self, now_ms):
        # A scan, not a heap: closed connections leave nothing behind, and
        # comparing 20,000 integers a second is well under a millisecond.
        for conn in [c for c in self.hub.conns if c.expires_ms <= now_ms and not c.closed]:
            conn.close(1008, b"session expired")

    def watch_lag(self, period=0.01):
        """Measure how late a 10 ms timer fires: the event loop's lag, the
        first sign of overload. Decays so one slow turn does not linger.
        A timer in the hub (``engine.LagWatch``), not a sleeping greenlet:
        the same figure without two switches per wake. Returns the watch
        (``stop()`` it)."""
        return LagWatch(self._lagged, period).start()

    def _lagged(self, late):
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
