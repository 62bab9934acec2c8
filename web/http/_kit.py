"""What every route group shares: ``ApiError`` (a 4xx/5xx with a reason
code), the ``api`` wrapper that turns results and errors into JSON (never a
traceback), and the request helpers: the JSON body (type, size and time
checked), the bearer token, the session, the sign-in rate limit."""
import json
import logging
import time
from datetime import datetime, timezone

import bottle

from engine import AskTimeout

from .._addr import LruTable, client_addr
from .._safejson import loads as json_loads
from ..auth import SessionsUnavailable
from ..gateway import TokenBucket
from ._guard import BodyTimeout, BodyTooLarge

__all__ = ["ApiError", "Kit", "api", "iso"]

log = logging.getLogger("tapgrid.web")


class ApiError(Exception):
    def __init__(self, status, reason, detail=""):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class Kit:
    def __init__(self, cfg, sessions):
        self.cfg = cfg
        self.sessions = sessions
        self._auth_buckets = LruTable()

    def body(self):
        cfg = self.cfg
        ctype = bottle.request.environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # A cross-site form or fetch can send text/plain without a
            # preflight; application/json from another origin needs CORS.
            raise ApiError(415, "bad_request", "Content-Type must be application/json")
        try:
            data = json_loads(bottle.request.body.read(cfg.max_body + 1) or b"{}")
        except BodyTooLarge:
            raise ApiError(413, "bad_request", f"body larger than {cfg.max_body} bytes")
        except BodyTimeout:
            bottle.response.set_header("Connection", "close")
            raise ApiError(408, "bad_request", "the body did not arrive in time")
        except ValueError:            # also too deep, or not UTF-8
            raise ApiError(400, "bad_request", "body is not JSON")
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "body must be a JSON object")
        return data

    @staticmethod
    def header(name):
        """A request header as text. bottle's ``get_header`` decodes the
        WSGI latin-1 string as UTF-8 and raises on other bytes (a 500)."""
        raw = bottle.request.environ.get("HTTP_" + name.upper().replace("-", "_"), "")
        try:
            return raw.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise ApiError(400, "bad_request", f"the {name} header is not UTF-8")

    @classmethod
    def bearer(cls):
        auth = cls.header("Authorization")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def session(self):
        try:
            s = self.sessions.get(self.bearer(), int(time.time() * 1000))
        except SessionsUnavailable:
            bottle.response.set_header("Retry-After", "1")
            raise ApiError(503, "overloaded", "sessions unavailable; retry shortly") from None
        if s is None:
            raise ApiError(401, "bad_request", "missing, invalid or expired token")
        return s

    def auth_limit(self):
        """A token bucket per client address for the sign-in endpoints:
        each call makes a user, a session or a challenge nonce."""
        cfg = self.cfg
        ip = client_addr(bottle.request.environ, cfg.trusted_proxies)
        now = time.monotonic()
        bucket = self._auth_buckets.get_or_make(ip, lambda: TokenBucket(cfg.auth_rate, cfg.auth_burst, now))
        if not bucket.take(now):
            bottle.response.set_header("Retry-After", "1")
            raise ApiError(429, "rate_limited", "too many sign-in requests; slow down")
