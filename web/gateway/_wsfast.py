"""gevent-websocket's handshake, with tapgrid's own frame reader.

gevent-websocket reads each frame with three small reads (header, length,
mask + payload), unmasks with a Python loop per byte and closes most
protocol errors with 1000. Here the handshake and the handler stay theirs
and reading is ours (site-packages stays untouched):

- one ``recv`` (``rfile.read1``) per turn, every complete frame in it parsed
  by the sans-I/O ``FrameReader`` (web/gateway/_wsframes.py), unmasked by wsaccel;
  ``receive`` hands them out one by one, ``receive_many`` all at once;
- the 4 KiB cap is enforced from the header (close 1009), before the
  payload is read; RFC 6455 closing behaviour: protocol errors close with
  1002, invalid UTF-8 with 1007, a client's close is echoed with its code;
- pings are answered, pongs ignored;
- control frames we write (pong, close) go through ``control_send`` /
  ``closer`` when the connection sets them (web/gateway/_conn.py), so they queue
  behind frames already being written instead of interleaving with them;
- ``FastHandler`` checks the handshake itself and asks
  ``server.admit(environ)`` before upgrading, so the server can shed load
  with HTTP 503 + Retry-After (or refuse an origin) before any WebSocket
  exists. Every refusal before the upgrade, and every error the HTTP parser
  answers, is JSON ``{"error": reason, "detail": text}`` with a SPEC section
  9 reason (``refusal``): gevent-websocket's own answers were bare text, one
  with status 402, and a Sec-WebSocket-Key that is not base64 made it raise
  (a 500).

    from gevent.pywsgi import WSGIServer
    from web.gateway._wsfast import FastHandler
    WSGIServer(("127.0.0.1", 8080), app, handler_class=FastHandler).serve_forever()
"""
import base64
import json
import socket
import struct
from collections import deque

import gevent

from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import WebSocket

from ._wsframes import FrameReader, unmask

__all__ = ["FastWebSocket", "FastHandler", "unmask", "encode_text_frame", "encode_frame", "refusal"]

DEFAULT_FRAME_LIMIT = 4096
RECV_SIZE = 65536
LINGER_S = 2.0            # after our close frame, read (and drop) until the peer's EOF
LINGER_BYTES = 1 << 18
WS_VERSIONS = ("13", "8", "7")     # what gevent-websocket speaks


def refusal(status, reason, detail, headers=()):
    """An HTTP answer refusing a request before the app (or the upgrade):
    ``(status line, headers, body)``, the body JSON with a SPEC reason."""
    body = json.dumps({"error": reason, "detail": detail}, separators=(",", ":")).encode()
    return (status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
            + list(headers), body)


def _raw_answer(status, reason, detail):
    """``refusal`` as the bytes of a whole response, for the parser's errors
    (sent before a request exists, and the connection closes)."""
    status, headers, body = refusal(status, reason, detail)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers + [("Content-Length", str(len(body))),
                                                           ("Connection", "close")])
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body


# gevent.pywsgi's answers to requests it cannot parse, in the same JSON
_PARSE_ERRORS = {
    "400": _raw_answer("400 Bad Request", "bad_request", "malformed HTTP request"),
    "414": _raw_answer("414 Request URI Too Long", "bad_request", "request line too long"),
}


def bad_key(key):
    """Why ``key`` (the Sec-WebSocket-Key header) is not 16 bytes of
    base64 as RFC 6455 4.1 asks, or None when it is."""
    key = (key or "").strip()
    if not key:
        return "Sec-WebSocket-Key is missing"
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (ValueError, UnicodeError):
        return "Sec-WebSocket-Key is not base64"
    if len(raw) != 16:
        return "Sec-WebSocket-Key must be 16 bytes of base64"
    return None


def encode_frame(opcode, data):
    """A complete unmasked server frame (FIN set) carrying ``data`` (bytes)."""
    n = len(data)
    if n < 126:
        return bytes((0x80 | opcode, n)) + data
    if n < 65536:
        return bytes((0x80 | opcode, 126, n >> 8, n & 0xFF)) + data
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + data


def encode_text_frame(data):
    """A complete unmasked server text frame for UTF-8 ``data`` (bytes):
    encode once, send the same bytes to every connection."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return bytes((0x81, 126, n >> 8, n & 0xFF)) + data
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + data


class FastWebSocket(WebSocket):
    frame_limit = DEFAULT_FRAME_LIMIT

    def __init__(self, environ, stream, handler, frame_limit=DEFAULT_FRAME_LIMIT):
        super().__init__(environ, stream, handler)
        self.frame_limit = frame_limit
        self.reader = FrameReader(frame_limit)
        self.ready = deque()          # messages parsed, not yet handed out
        self.close_code = None        # what we closed with (or echoed)
        self.control_send = None      # callable(frame bytes), set by the connection
        self.closer = None            # callable(code, reason bytes), ditto
        rfile = getattr(handler, "rfile", None)
        # read1: what is buffered, else one recv of up to RECV_SIZE bytes.
        self._recv = getattr(rfile, "read1", None) or (lambda n: stream.read(n))
        self._pending_close = None    # (code, reason) once the peer closed or failed
        # Once rfile's buffer is empty (the first read shorter than asked
        # proves it), reads go to the OS socket directly (see _read).
        sock = getattr(handler, "socket", None)
        self._raw_recv = getattr(getattr(sock, "_sock", None), "recv", None)
        self._wait_read = None
        if self._raw_recv is not None and hasattr(sock, "_wait") and hasattr(sock, "_read_event"):
            self._wait_read = lambda: sock._wait(sock._read_event)
        self._drained = False         # the last read took all there was: wait before the next

    def receive(self):
        """The next message (str or bytes), or None once closed."""
        ready = self.ready
        while not ready:
            if not self._fill():
                return None
        return ready.popleft()

    def receive_many(self):
        """Every message that the next read completes (at least one), or
        None once closed: a batch for callers that verify taps together."""
        ready = self.ready
        while not ready:
            if not self._fill():
                return None
        out = list(ready)
        ready.clear()
        return out

    def _fill(self):
        """Read once and parse; False when the connection is over."""
        if self._pending_close is not None:
            self._finish(*self._pending_close)
            return False
        if self.closed:
            return False
        try:
            data = self._read()
        except (OSError, ValueError, AttributeError, TypeError):
            # A reset, or closed by another greenlet while we waited.
            data = b""
        if not data:
            self.closed = True
            return False
        ready = self.ready
        for ev in self.reader.feed(data):
            kind = ev[0]
            if kind == "text" or kind == "binary":
                ready.append(ev[1])
            elif kind == "ping":
                self._control(encode_frame(0x0A, ev[1]))
            elif kind == "close":
                self._pending_close = (ev[1], ev[2].encode("utf-8"))
            elif kind == "fail":
                self._pending_close = (ev[1], ev[2].encode("utf-8"))
        # Messages that arrived before a close or a failure are still
        # handed out; the close goes once they have been.
        if not ready and self._pending_close is not None:
            self._finish(*self._pending_close)
            return False
        return True

    def _read(self):
        """One read of up to RECV_SIZE bytes (b"" at EOF).

        A read that returned less than it asked for emptied the kernel's
        buffer, almost always: the next frame of a tapping client is
        milliseconds away. So the next read waits for the socket to be
        readable first, instead of the usual try-then-wait, whose try is a
        ``recv`` failing with EAGAIN (a syscall and an exception) on every
        read. If bytes did arrive meanwhile the wait returns in the next
        loop turn (epoll is level-triggered): nothing is lost or delayed
        beyond that turn. The reads go straight to the OS socket, past
        ``rfile``'s buffered reader and ``SocketIO``, once that buffer is
        known to be empty (a short read from it takes all it holds)."""
        recv = self._raw_recv
        if not self._drained or recv is None or self._wait_read is None:
            data = self._recv(RECV_SIZE)
            self._drained = len(data) < RECV_SIZE
            return data
        wait = self._wait_read
        wait()
        while True:
            try:
                data = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                wait()                # readable, yet nothing: wait again
                continue
            # A full read may leave more in the kernel: then no wait first.
            self._drained = len(data) < RECV_SIZE
            return data

    def _control(self, frame):
        send = self.control_send
        try:
            if send is not None:
                send(frame)
            elif not self.closed:
                self.raw_write(frame)
        except Exception:
            self.closed = True

    def _finish(self, code, reason):
        self._pending_close = None
        self.close_code = code
        closer = self.closer
        if closer is not None:
            closer(code, reason)
            self.closed = True
        else:
            self.close(code, reason)
        self._linger()

    def _linger(self):
        # Closing a socket with unread bytes makes the kernel answer with a
        # reset, which can destroy our close frame before the client reads
        # it (a client still sending a big frame we refused). So read what
        # still comes, bounded in time and bytes, until the peer's EOF.
        recv, got = self._recv, 0
        with gevent.Timeout(LINGER_S, False):
            try:
                while got < LINGER_BYTES:
                    data = recv(RECV_SIZE)
                    if not data:
                        break
                    got += len(data)
            except (OSError, ValueError, AttributeError, TypeError):
                pass

    def close(self, code=1000, message=b""):
        # Not super().close(): gevent-websocket 0.10.1 drops ``code`` and sends
        # str(message) ("b'...'") as the close payload, so clients saw 25127.
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode("utf-8")
        try:
            self.raw_write(encode_frame(0x08, struct.pack("!H", code) + (message or b"")[:123]))
        except Exception:
            pass
        finally:
            self.closed = True
            self.stream = None
            self.raw_write = None
            self.raw_read = None


class FastHandler(WebSocketHandler):
    """Admission control before the upgrade, then ``FastWebSocket`` frames.

    The request line and headers must arrive within ``server.header_timeout``
    seconds (one deadline for the whole head, so a byte every few seconds
    does not keep a slowloris connection alive); an idle keep-alive
    connection waiting for its next request is closed by the same rule."""

    _head_timer = None

    def read_requestline(self):
        seconds = getattr(self.server, "header_timeout", None)
        if seconds:
            self._head_timer = gevent.Timeout(seconds, socket.timeout("request head too slow"))
            self._head_timer.start()
        try:
            line = super().read_requestline()
        except BaseException:
            self._cancel_head_timer()
            raise
        if not line:
            self._cancel_head_timer()
        return line

    def read_request(self, raw_requestline):
        try:
            return super().read_request(raw_requestline)
        finally:
            self._cancel_head_timer()

    def handle_one_request(self):
        try:
            result = super().handle_one_request()
        finally:
            self._cancel_head_timer()     # e.g. a 414 returned before read_request
        if type(result) is tuple and result[0] in _PARSE_ERRORS:
            return result[0], _PARSE_ERRORS[result[0]]
        return result

    def _send_error_response_if_possible(self, error_code):
        # pywsgi's own 400 (a body that breaks off) and 500 (the app raised:
        # logged, never shown) are bare text; these are JSON, no traceback.
        if self.response_length:
            self.close_connection = True
            return
        if error_code == 500:
            status, headers, body = refusal("500 Internal Server Error", "internal", "internal error")
        else:
            status, headers, body = refusal("400 Bad Request", "bad_request", "malformed request body")
        try:
            self.start_response(status, headers + [("Connection", "close"),
                                                   ("Content-Length", str(len(body)))])
            self.write(body)
        except socket.error:
            self.close_connection = True

    def _handshake_fault(self):
        """Why an upgrade request cannot become a WebSocket, as a refusal, or
        None. The same checks as gevent-websocket's (which answer in bare
        text), plus a strict key: RFC 6455 4.2.1 wants 16 bytes, base64."""
        env = self.environ
        if env.get("REQUEST_METHOD") != "GET" or "upgrade" not in env.get("HTTP_CONNECTION", "").lower():
            return None          # not an upgrade: the app answers (405, or /ws's 400)
        if self.request_version != "HTTP/1.1":
            return refusal("400 Bad Request", "bad_request", "a WebSocket upgrade needs HTTP/1.1")
        version = env.get("HTTP_SEC_WEBSOCKET_VERSION")
        offer = [("Sec-WebSocket-Version", ", ".join(WS_VERSIONS))]
        if not version:
            return refusal("426 Upgrade Required", "bad_request", "Sec-WebSocket-Version is missing", offer)
        if version not in WS_VERSIONS:
            return refusal("400 Bad Request", "bad_request", "unsupported Sec-WebSocket-Version", offer)
        bad = bad_key(env.get("HTTP_SEC_WEBSOCKET_KEY"))
        if bad is not None:
            return refusal("400 Bad Request", "bad_request", bad)
        return None

    def _refuse(self, answer):
        status, headers, body = answer
        extra = list(getattr(self.server, "refusal_headers", ()))   # the security headers
        self.start_response(status, headers + extra + [("Content-Length", str(len(body)))])
        self.write(body)

    def _cancel_head_timer(self):
        timer, self._head_timer = self._head_timer, None
        if timer is not None:
            timer.cancel()

    def run_application(self):
        env = self.environ
        if env.get("HTTP_UPGRADE", "").lower() == "websocket":
            # The handshake's own faults first: they cost nothing and take
            # no admission slot.
            fault = self._handshake_fault()
            if fault is not None:
                return self._refuse(fault)
            admit = getattr(self.server, "admit", None)
            refused = admit(env) if admit is not None else None
            if refused is not None:
                return self._refuse(refused)
        try:
            super().run_application()
        finally:
            done = getattr(self.server, "upgrade_done", None)
            if done is not None:
                done(env)
            release = getattr(self.server, "release", None)
            if release is not None:
                release(env)

    def upgrade_connection(self):
        result = super().upgrade_connection()
        ws = self.websocket
        if result is None and ws is not None and not isinstance(ws, FastWebSocket):
            # The stock object would send a close frame from __del__.
            ws.closed = True
            fast = FastWebSocket(self.environ, ws.stream, self,
                                 getattr(self.server, "frame_limit", DEFAULT_FRAME_LIMIT))
            self.websocket = fast
            self.environ["wsgi.websocket"] = fast
        return result

    def log_request(self):
        # Access logs per request would dominate CPU under load; the server
        # logs what matters (see web._server).
        pass
