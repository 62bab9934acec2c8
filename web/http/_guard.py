"""What every HTTP response and request body goes through before the app:
security headers on all answers, and a body limit enforced before a byte
of the body is read (issue 15, findings 2 and 8).

    app = guard(build_app(...), cfg)      # a WSGI app again

- The headers forbid framing (clickjacking: a tap is a bet with no
  confirmation), MIME sniffing and referrers, and hold scripts, styles and
  connections to this origin (and its WebSocket twin).
- A ``Content-Length`` above ``cfg.max_body`` is answered 413 at once; a
  chunked body is read through ``LimitedInput``, which stops at the limit,
  so bottle never spools megabytes to its temporary folder.
"""
import json
import re
import time

import gevent

__all__ = ["guard", "security_headers", "LimitedInput", "BodyTooLarge", "BodyTimeout", "HEADERS"]

# Fixed headers; the CSP is per request only for its WebSocket origin.
HEADERS = [
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'{ws}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class LimitedInput:
    """``wsgi.input`` that raises ``BodyTooLarge`` past ``limit`` bytes and
    ``BodyTimeout`` once ``seconds`` have passed since the first read (one
    deadline for the whole body: trickling bytes does not extend it)."""

    def __init__(self, stream, limit, seconds=None):
        self._stream = stream
        self._left = limit
        self._seconds = seconds
        self._deadline = None

    def _timed(self, fn, want):
        if not self._seconds:
            return fn(want)
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        with gevent.Timeout(max(0.0, self._deadline - now), BodyTimeout()):
            return fn(want)

    def _take(self, fn, size):
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data = self._timed(fn, want)
        self._left -= len(data)
        if self._left < 0:
            raise BodyTooLarge()
        return data

    def read(self, size=-1):
        return self._take(self._stream.read, size)

    def readline(self, size=-1):
        return self._take(self._stream.readline, size)


def security_headers(cfg, environ):
    """The headers for one answer. ``connect-src 'self'`` covers ws(s): of
    the same host in CSP 3; the explicit ws origins are for older engines."""
    ws = ""
    if cfg.public_url:
        scheme, _, netloc = cfg.public_url.partition("://")
        netloc = netloc.rstrip("/")
        ws = f" {'wss' if scheme == 'https' else 'ws'}://{netloc}"
    else:
        host = environ.get("HTTP_HOST", "")
        if _HOST.fullmatch(host):         # never echo a header that could split lines
            ws = f" ws://{host} wss://{host}"
    return HEADERS + [("Content-Security-Policy", _CSP.format(ws=ws))]


def _too_large(start_response, limit, headers):
    body = json.dumps({"error": "bad_request", "detail": f"body larger than {limit} bytes"}).encode()
    start_response("413 Request Entity Too Large",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("Connection", "close")] + headers)
    return [body]


def guard(app, cfg):
    limit = cfg.max_body

    def guarded(environ, start_response):
        headers = security_headers(cfg, environ)
        if environ.get("wsgi.websocket") is not None:
            return app(environ, start_response)     # 101 already sent

        def start(status, response_headers, exc_info=None):
            names = {name.lower() for name, _ in response_headers}
            return start_response(status, response_headers + [
                h for h in headers if h[0].lower() not in names], exc_info)

        length = environ.get("CONTENT_LENGTH") or ""
        try:
            declared = int(length) if length else None
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            return _too_large(start_response, limit, headers)
        if declared or environ.get("REQUEST_METHOD") in ("POST", "PUT", "PATCH"):
            environ["wsgi.input"] = LimitedInput(environ["wsgi.input"], limit, cfg.body_timeout_s)
        return app(environ, start)

    return guarded
