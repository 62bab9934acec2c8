"""The HTTP side: the page, the JSON API, health and metrics (bottle).

Every error answers JSON with a reason; no traceback ever reaches a client
(bottle's debug mode stays off and a catch-all turns surprises into 500).
"""
import json
import logging
import os
import secrets
import time
from datetime import datetime, timezone

import bottle

from actors import open_readonly
from actors.store import history, next_cursor
from actors.wire import TapError, b64url_decode, load_session_key
from engine import AskTimeout

from .._safejson import loads as json_loads
from ..auth import SiweError, verify_login
from ..gateway import TokenBucket

__all__ = ["build_app"]

log = logging.getLogger("tapgrid.web")
STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
CHAIN_ID = 1


class ApiError(Exception):
    def __init__(self, status, reason, detail=""):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail


def _iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_app(cfg, market, hub, gateway, sessions, challenges, metrics):
    app = bottle.Bottle(catchall=False)
    ro = {"conn": None}

    def reader():
        if ro["conn"] is None:
            ro["conn"] = open_readonly(cfg.db)
        return ro["conn"]

    def body():
        try:
            data = json_loads(bottle.request.body.read(65536) or b"{}")
        except ValueError:            # also too deep, or not UTF-8
            raise ApiError(400, "bad_request", "body is not JSON")
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "body must be a JSON object")
        return data

    def header(name):
        """A request header as text. bottle's ``get_header`` decodes the
        WSGI latin-1 string as UTF-8 and raises on other bytes (a 500)."""
        raw = bottle.request.environ.get("HTTP_" + name.upper().replace("-", "_"), "")
        try:
            return raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise ApiError(400, "bad_request", f"the {name} header is not UTF-8")

    def session():
        auth = header("Authorization")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        s = sessions.get(token, int(time.time() * 1000))
        if s is None:
            raise ApiError(401, "unauthorized", "missing, invalid or expired token")
        return s

    def api(fn):
        def wrapper(*a, **kw):
            bottle.response.content_type = "application/json"
            bottle.response.set_header("Cache-Control", "no-store")
            try:
                result = fn(*a, **kw)
            except ApiError as e:
                bottle.response.status = e.status
                result = {"error": e.reason, "detail": e.detail}
            except AskTimeout:
                # The Writer is behind (sign-ins queue behind bets): shed, do not fail.
                bottle.response.status = 503
                bottle.response.set_header("Retry-After", "2")
                result = {"error": "overloaded", "detail": "the server is busy; retry shortly"}
            except Exception:
                log.exception("unhandled error in %s", bottle.request.path)
                bottle.response.status = 500
                result = {"error": "internal", "detail": "internal error"}
            return result if isinstance(result, (bytes, str)) else json.dumps(result, separators=(",", ":"))
        return wrapper

    def sign_in(user, key_raw, credit, expires_ms):
        uid = market.create_user(user, credit)
        token = sessions.create(user, uid, key_raw, expires_ms)
        return {"token": token, "user": user, "balance": market.balance(uid)}

    # --- the page ------------------------------------------------------------------------

    @app.get("/")
    def index():
        return bottle.static_file("index.html", root=STATIC)

    @app.get("/static/<path:path>")
    def static(path):
        mimetype = "text/javascript" if path.endswith(".js") else "auto"
        return bottle.static_file(path, root=STATIC, mimetype=mimetype)

    # --- auth -----------------------------------------------------------------------------

    @app.post("/api/auth/guest")
    @api
    def guest():
        if not cfg.demo:
            raise ApiError(404, "not_found", "guest accounts exist in demo mode only")
        auth_limit()
        key_b64 = body().get("session_key")
        try:
            key_raw = b64url_decode(key_b64) if isinstance(key_b64, str) else b""
            load_session_key(key_raw)
        except TapError:
            raise ApiError(400, "bad_request", "session_key must be a base64url P-256 point")
        name = "guest-" + secrets.token_hex(5)
        return sign_in(name, key_raw, cfg.guest_credit, int(time.time() * 1000) + cfg.session_ttl_ms)

    def _site():
        """(domain, uri) a SIWE message must name. With ``public_url`` set it
        is that; otherwise the request's Host, but only if it is one of this
        server's own names: a phishing site must not get a login by sending
        its own Host header with a message signed for its domain."""
        if cfg.public_url:
            scheme, _, netloc = cfg.public_url.partition("://")
            return netloc.rstrip("/"), f"{scheme}://{netloc.rstrip('/')}"
        host = header("Host")
        port = f":{cfg.port}"
        own = {cfg.host + port, "127.0.0.1" + port, "localhost" + port, "[::1]" + port}
        own |= {o.split("://", 1)[-1].rstrip("/") for o in cfg.allowed_origins}
        if host not in own:
            raise ApiError(400, "bad_domain", "this server does not answer to that host name")
        return host, f"{bottle.request.urlparts.scheme}://{host}"

    auth_buckets = {}

    def auth_limit():
        """A token bucket per client address for the sign-in endpoints:
        each call makes a user, a session or a challenge nonce."""
        ip = bottle.request.environ.get("REMOTE_ADDR", "?")
        now = time.monotonic()
        bucket = auth_buckets.get(ip)
        if bucket is None:
            if len(auth_buckets) > 100_000:
                auth_buckets.clear()
            bucket = auth_buckets[ip] = TokenBucket(cfg.auth_rate, cfg.auth_burst, now)
        if not bucket.take(now):
            bottle.response.set_header("Retry-After", "1")
            raise ApiError(429, "rate_limited", "too many sign-in requests; slow down")

    @app.post("/api/auth/challenge")
    @api
    def challenge():
        auth_limit()
        domain, uri = _site()
        return {"nonce": challenges.issue(), "domain": domain, "uri": uri, "chain_id": CHAIN_ID,
                "issued_at": _iso(int(time.time() * 1000))}

    @app.post("/api/auth/login")
    @api
    def login():
        data = body()
        message, signature = data.get("message"), data.get("signature")
        if not isinstance(message, str) or not isinstance(signature, str) or len(message) > 4096:
            raise ApiError(400, "bad_request", "message and signature are required strings")
        auth_limit()
        domain, uri = _site()
        try:
            ok = verify_login(message, signature, domain=domain, uri=uri,
                              chain_id=CHAIN_ID, now_ms=int(time.time() * 1000),
                              consume_nonce=challenges.consume)
        except SiweError as e:
            raise ApiError(401, e.code, str(e))
        credit = cfg.guest_credit if cfg.demo else 0
        return sign_in(ok.address, ok.session_key, credit, ok.expiration_ms)

    # --- game state -------------------------------------------------------------------------

    @app.get("/api/grid")
    @api
    def grid():
        return hub.grid_body()

    @app.get("/api/me")
    @api
    def me():
        s = session()
        return {"user": s.user, "balance": market.balance(s.uid)}

    @app.get("/api/history")
    @api
    def get_history():
        s = session()
        q = bottle.request.query
        try:
            limit = max(1, min(int(q.get("limit") or 50), 200))
            cursor = int(q["cursor"]) if q.get("cursor") else None
        except ValueError:
            raise ApiError(400, "bad_request", "cursor and limit are integers")
        if cursor is not None and not 0 < cursor < 1 << 63:
            # SQLite integers are 64-bit: a bigger one raises OverflowError.
            raise ApiError(400, "bad_request", "cursor is out of range")
        bets = history(reader(), s.uid, cursor, limit)
        return {"bets": bets, "next": next_cursor(bets, limit)}

    # --- operations -------------------------------------------------------------------------

    @app.get("/healthz")
    @api
    def healthz():
        ok, reason = market.health()
        if not ok:
            bottle.response.status = 503
            return {"status": "unavailable", "reason": reason}
        return {"status": "ok"}

    @app.get("/metrics")
    def prometheus():
        data, ctype = metrics.render()
        bottle.response.content_type = ctype
        return data

    @app.get("/ws")
    def ws():
        socket = bottle.request.environ.get("wsgi.websocket")
        sess = bottle.request.environ.get("tapgrid.session")
        if socket is None or sess is None:
            bottle.response.status = 400
            bottle.response.content_type = "application/json"
            return json.dumps({"error": "bad_request", "detail": "WebSocket upgrade required"})
        gateway.serve(socket, sess, bottle.request.environ)
        return ""

    def _json_error(err):
        bottle.response.content_type = "application/json"
        return json.dumps({"error": "not_found" if err.status_code == 404 else "error",
                           "detail": err.status_line})

    for code in (400, 404, 405, 413, 500):
        app.error(code)(_json_error)
    return app
