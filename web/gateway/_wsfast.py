"""gevent-websocket, without its two per-byte Python loops.

Stock gevent-websocket unmasks every client frame with a Python loop over
each byte (``Header.mask_payload``) and validates UTF-8 with a pure-Python
state machine, twice per text message, although the payload is decoded as
UTF-8 anyway. That costs most of a text frame's CPU. This module is the one
place where tapgrid fixes it, by subclassing (site-packages stays
untouched):

- unmasking uses wsaccel's C XOR masker (or one big-int XOR as a fallback);
- a text message is validated once, by ``bytes.decode("utf-8")``;
- a frame larger than the configured limit is refused before its payload is
  read (``FrameTooLarge``), so a client cannot make us buffer megabytes;
- ``FastHandler`` asks ``server.admit(environ)`` before upgrading, so the
  server can shed load with HTTP 503 + Retry-After (or refuse an origin)
  before any WebSocket exists.

    from gevent.pywsgi import WSGIServer
    from web.gateway._wsfast import FastHandler
    WSGIServer(("127.0.0.1", 8080), app, handler_class=FastHandler).serve_forever()
"""
import struct

from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header, WebSocket

try:
    from wsaccel.xormask import XorMaskerSimple
except ImportError:  # pragma: no cover - wsaccel is a declared dependency
    XorMaskerSimple = None

__all__ = ["FastWebSocket", "FastHandler", "FrameTooLarge", "unmask", "encode_text_frame"]

DEFAULT_FRAME_LIMIT = 4096


class FrameTooLarge(WebSocketError):
    def __init__(self, length):
        super().__init__(f"frame of {length} bytes is over the limit")
        self.length = length


def _unmask_int(key, data):
    n = len(data)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


def unmask(key, data):
    """XOR ``data`` with the 4-byte mask ``key`` (RFC 6455 section 5.3)."""
    if XorMaskerSimple is not None:
        return XorMaskerSimple(key).process(data)
    return _unmask_int(key, data)


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

    def read_frame(self):
        header = Header.decode_header(self.stream)
        if header.flags:
            raise ProtocolError("reserved bits set")
        if not header.length:
            return header, b""
        if header.length > self.frame_limit:
            raise FrameTooLarge(header.length)
        payload = self.raw_read(header.length)
        if len(payload) != header.length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        if header.mask:
            payload = unmask(header.mask, payload)
        return header, payload

    def read_message(self):
        opcode = None
        message = b""
        while True:
            header, payload = self.read_frame()
            op = header.opcode
            if op in (self.OPCODE_TEXT, self.OPCODE_BINARY):
                if opcode:
                    raise ProtocolError("new message inside a fragmented one")
                opcode = op
            elif op == self.OPCODE_CONTINUATION:
                if not opcode:
                    raise ProtocolError("continuation without a start")
            elif op == self.OPCODE_PING:
                self.handle_ping(header, payload)
                continue
            elif op == self.OPCODE_PONG:
                continue
            elif op == self.OPCODE_CLOSE:
                self.handle_close(header, payload)
                return None
            else:
                raise ProtocolError(f"unexpected opcode {op}")
            message = payload if not message else message + payload
            if len(message) > self.frame_limit:
                raise FrameTooLarge(len(message))
            if header.fin:
                break
        if opcode == self.OPCODE_TEXT:
            # One validation: decode raises UnicodeDecodeError (a UnicodeError).
            return message.decode("utf-8")
        return message

    def receive(self):
        """A message, or None once closed. Oversized frames close with 1009."""
        if self.closed:
            return None
        try:
            return self.read_message()
        except FrameTooLarge:
            self.close(1009, b"frame too large")
        except UnicodeError:
            self.close(1007)
        except ProtocolError:
            self.close(1002)
        except (WebSocketError, OSError):
            self.close()
        except (TypeError, AttributeError):
            # Closed by another greenlet (shutdown, a cut-off slow client)
            # while this one was blocked reading: the stream is gone.
            if not self.closed:
                raise
        return None

    def close(self, code=1000, message=b""):
        # Not super().close(): gevent-websocket 0.10.1 drops ``code`` and sends
        # str(message) ("b'...'") as the close payload, so clients saw 25127.
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode("utf-8")
        try:
            self.send_frame(struct.pack("!H", code) + (message or b"")[:123], opcode=self.OPCODE_CLOSE)
        except Exception:
            pass
        finally:
            self.closed = True
            self.stream = None
            self.raw_write = None
            self.raw_read = None


class FastHandler(WebSocketHandler):
    """Admission control before the upgrade, then ``FastWebSocket`` frames."""

    def run_application(self):
        env = self.environ
        if env.get("HTTP_UPGRADE", "").lower() == "websocket":
            admit = getattr(self.server, "admit", None)
            refusal = admit(env) if admit is not None else None
            if refusal is not None:
                status, headers, body = refusal
                self.start_response(status, headers + [("Content-Length", str(len(body)))])
                self.write(body)
                return
        try:
            super().run_application()
        finally:
            done = getattr(self.server, "upgrade_done", None)
            if done is not None:
                done(env)

    def upgrade_connection(self):
        result = super().upgrade_connection()
        ws = self.websocket
        if result is None and ws is not None and not isinstance(ws, FastWebSocket):
            # The stock object would send a close frame from __del__.
            ws.closed = True
            fast = FastWebSocket(self.environ, ws.stream, self)
            fast.frame_limit = getattr(self.server, "frame_limit", DEFAULT_FRAME_LIMIT)
            self.websocket = fast
            self.environ["wsgi.websocket"] = fast
        return result

    def log_request(self):
        # Access logs per request would dominate CPU under load; the server
        # logs what matters (see web._server).
        pass
