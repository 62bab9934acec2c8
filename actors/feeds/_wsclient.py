"""A small RFC 6455 WebSocket client on explicit gevent sockets.

One object per connection, no threads and no monkey-patching, cheap enough
that the benchmark driver can hold thousands in one process. Used by the
exchange feeds, the Python client and the tests.

    >>> import gevent.pywsgi, geventwebsocket.handler
    >>> def echo(environ, start_response):
    ...     ws = environ["wsgi.websocket"]
    ...     ws.send(ws.receive())
    ...     return []
    >>> server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), echo, log=None,
    ...     handler_class=geventwebsocket.handler.WebSocketHandler)
    >>> server.start()
    >>> ws = WSClient.connect(f"ws://127.0.0.1:{server.server_port}/")
    >>> ws.send_text("hello")
    >>> ws.recv(timeout=5)
    'hello'
    >>> ws.close(); server.stop()
"""
import base64
import hashlib
import ipaddress
import os
import struct
from time import monotonic
from urllib.parse import urlsplit

import gevent
from gevent import socket, ssl
from gevent.event import Event
from gevent.lock import Semaphore

try:
    from wsaccel.xormask import XorMaskerSimple
except ImportError:  # pragma: no cover - wsaccel is a declared dependency
    XorMaskerSimple = None

__all__ = ["WSClient", "WSError", "WSHandshakeError", "WSProtocolError",
           "WSClosedError", "Headers"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_READ_SIZE = 65536
_HEAD_LIMIT = 65536           # response head of the HTTP upgrade
_BODY_LIMIT = 1 << 20         # body of a refused upgrade, kept for the caller
_MORE = object()              # parser sentinel: need more bytes


class WSError(Exception):
    """Base of every error this client raises (besides plain OSError)."""


class WSHandshakeError(WSError):
    """The server did not switch protocols. `status`, `headers` and `body` are
    the server's answer, so a caller can honour 503 + Retry-After."""

    def __init__(self, status, headers, body=b"", message=None):
        self.status, self.headers, self.body = status, headers, body
        super().__init__(message or f"websocket upgrade refused: HTTP {status}")

    @property
    def retry_after(self):
        """Retry-After in seconds (delta-seconds form only), else None."""
        value = self.headers.get("retry-after", "").strip()
        return int(value) if value.isdigit() else None


class WSProtocolError(WSError):
    """The server broke RFC 6455; the connection was failed with `code`."""

    def __init__(self, code, message):
        self.code = code
        super().__init__(f"{message} (closed with {code})")


class WSClosedError(WSError, ConnectionError):
    """Sending on a connection that is closed or closing."""


class Headers(dict):
    """Response headers; lookups ignore case, repeated headers are joined."""

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


def mask_payload(key, data):
    """XOR `data` with the 4-byte `key` (RFC 6455 5.3)."""
    if XorMaskerSimple is not None:
        return XorMaskerSimple(key).process(data)
    return _mask_int(key, data)


def _mask_int(key, data):
    # One big-int XOR instead of a per-byte Python loop.
    n = len(data)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little")
            ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


def _accept_for(key):
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()


def _open_socket(host, port):
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        sock = socket.create_connection((host, port))
    else:
        # An IP literal needs no resolver round trip, which matters when the
        # benchmark opens thousands of connections to 127.0.0.1.
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _wrap_tls(sock, host, ctx):
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies cert and hostname
        ctx.load_default_certs()
    if isinstance(ctx, ssl.SSLContext):
        return ctx.wrap_socket(sock, server_hostname=host)
    # A stdlib context (gevent.ssl.create_default_context makes one, too)
    # would hand back a blocking SSLSocket that stalls the whole hub.
    return ssl.SSLSocket(sock=sock, server_hostname=host, _context=ctx)


class _HeadReader:
    """Buffered reads for the HTTP part of the handshake."""

    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def _more(self):
        data = self.sock.recv(_READ_SIZE)
        if not data:
            raise EOFError
        self.buf += data

    def until(self, sep, limit):
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise WSError("HTTP response head too large")
            self._more()
        out = bytes(self.buf[:i])
        del self.buf[:i + len(sep)]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._more()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def body(self, headers):
        try:
            if "content-length" in headers:
                return self.exact(min(int(headers["content-length"]), _BODY_LIMIT))
            # No length: read to EOF (a chunked body arrives with its framing).
            while len(self.buf) < _BODY_LIMIT:
                self._more()
        except (EOFError, OSError, ValueError):
            pass  # a refused upgrade's body is a courtesy; keep what came
        return bytes(self.buf)


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise WSError(f"malformed HTTP status line: {lines[0][:80]!r}")
    headers = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        old = dict.get(headers, name)
        dict.__setitem__(headers, name, value if old is None else f"{old}, {value}")
    return int(parts[1]), headers


class WSClient:
    """One client connection. Reads and writes may run in two greenlets at
    once; sends from several greenlets are serialised per frame."""

    __slots__ = ("url", "headers", "max_message_size", "close_code",
                 "close_reason", "last_read_at", "_sock", "_buf", "_want",
                 "_send_lock", "_close_sent", "_close_received", "_reading",
                 "_frag_op", "_frags", "_frag_size", "_done")

    def __init__(self, sock, buffered=b"", *, url="", headers=None,
                 max_message_size=16 << 20):
        self.url = url
        self.headers = headers if headers is not None else Headers()
        self.max_message_size = max_message_size
        self.close_code = None      # peer's code, ours if we failed it, 1006 on a drop
        self.close_reason = ""
        self.last_read_at = monotonic()   # any bytes at all, pings included
        self._sock = sock
        self._buf = bytearray(buffered)
        self._want = _READ_SIZE
        self._send_lock = Semaphore()
        self._close_sent = self._close_received = self._reading = False
        self._frag_op, self._frags, self._frag_size = None, [], 0
        self._done = Event()

    # -- opening ---------------------------------------------------------
    @classmethod
    def connect(cls, url, *, headers=None, origin=None, timeout=10,
                ssl_context=None, max_message_size=16 << 20):
        """Open `url` (ws:// or wss://) and finish the upgrade within
        `timeout` seconds (TimeoutError otherwise)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
        host, secure = parts.hostname, scheme == "wss"
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if ":" not in host else f"[{host}]"
        if parts.port:
            host_header += f":{port}"
        key = base64.b64encode(os.urandom(16))
        lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}",
                 "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
        if origin:
            lines.append(f"Origin: {origin}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

        timer = gevent.Timeout.start_new(timeout) if timeout is not None else None
        sock = None
        try:
            sock = _open_socket(host, port)
            if secure:
                sock = _wrap_tls(sock, host, ssl_context)
            sock.sendall(request)
            reader = _HeadReader(sock)
            try:
                status, rheaders = _parse_head(reader.until(b"\r\n\r\n", _HEAD_LIMIT))
            except EOFError:
                raise WSError("connection closed during the websocket handshake") from None
            if status != 101:
                raise WSHandshakeError(status, rheaders, reader.body(rheaders))
            if (rheaders.get("upgrade", "").lower() != "websocket"
                    or "upgrade" not in rheaders.get("connection", "").lower()):
                raise WSHandshakeError(status, rheaders, b"", "101 without a websocket upgrade")
            if rheaders.get("sec-websocket-accept") != _accept_for(key):
                raise WSHandshakeError(status, rheaders, b"", "bad Sec-WebSocket-Accept")
            client = cls(sock, reader.buf, url=url, headers=rheaders,
                         max_message_size=max_message_size)
            sock = None
            return client
        except gevent.Timeout as t:
            if t is not timer:
                raise
            raise TimeoutError(f"websocket connect to {url} timed out after {timeout}s") from None
        finally:
            if timer is not None:
                timer.close()
            if sock is not None:
                sock.close()

    # -- sending ---------------------------------------------------------
    def _send_frame(self, opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        key = os.urandom(4)
        frame = head + key + mask_payload(key, payload)
        with self._send_lock:
            sock = self._sock
            if sock is None:
                raise WSClosedError("websocket is closed")
            try:
                sock.sendall(frame)
            except OSError as e:
                self._shutdown(1006)
                raise WSClosedError(f"websocket send failed: {e}") from e

    def _check_open(self):
        if self._close_sent or self._close_received or self._sock is None:
            raise WSClosedError("websocket is closed")

    def send_text(self, s):
        self._check_open()
        self._send_frame(OP_TEXT, s.encode("utf-8"))

    def send_bytes(self, b):
        self._check_open()
        self._send_frame(OP_BINARY, bytes(b))

    def ping(self, payload=b""):
        if len(payload) > 125:
            raise ValueError("ping payload is limited to 125 bytes")
        self._check_open()
        self._send_frame(OP_PING, payload)

    # -- receiving -------------------------------------------------------
    def recv(self, timeout=None):
        """Next message: str (text), bytes (binary) or None once closed.
        Raises TimeoutError if no message came within `timeout` seconds; the
        connection stays usable. Pings are answered on the way."""
        if self._reading:
            raise RuntimeError("recv() is already running in another greenlet")
        if self._sock is None:
            return None
        self._reading = True
        try:
            deadline = None if timeout is None else monotonic() + timeout
            while True:
                msg = self._next_message()
                if msg is not _MORE:
                    return msg
                if not self._fill(deadline):
                    return None
        finally:
            self._reading = False

    def __iter__(self):
        while (msg := self.recv()) is not None:
            yield msg

    def _fill(self, deadline):
        sock = self._sock
        if sock is None:
            return False
        timer = None
        if deadline is not None:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError("no websocket message within the timeout")
            timer = gevent.Timeout.start_new(remaining)
        try:
            data = sock.recv(self._want)
        except gevent.Timeout as t:
            if t is not timer:
                raise
            raise TimeoutError("no websocket message within the timeout") from None
        except OSError:
            data = b""
        finally:
            if timer is not None:
                timer.close()
        if not data:
            self._shutdown(1006)
            return False
        self._buf += data
        self.last_read_at = monotonic()
        return True

    def _next_message(self):
        buf = self._buf
        while True:
            n = len(buf)
            if n < 2:
                self._want = _READ_SIZE
                return _MORE
            b0, b1 = buf[0], buf[1]
            length, pos = b1 & 0x7F, 2
            if length == 126:
                if n < 4:
                    return _MORE
                length, pos = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if n < 10:
                    return _MORE
                length, pos = int.from_bytes(buf[2:10], "big"), 10
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if b1 & 0x80:
                self._fail(1002, "server frames must not be masked")
            if b0 & 0x70:
                self._fail(1002, "reserved bits set without an extension")
            if opcode >= 8:
                if not fin or length > 125 or opcode > OP_PONG:
                    self._fail(1002, "bad control frame")
            elif opcode > OP_BINARY:
                self._fail(1002, f"unknown opcode {opcode}")
            if length + self._frag_size > self.max_message_size:
                self._fail(1009, "message too big")
            end = pos + length
            if n < end:
                self._want = max(_READ_SIZE, end - n)
                return _MORE
            payload = bytes(buf[pos:end])
            del buf[:end]
            if opcode >= 8:
                if self._on_control(opcode, payload):
                    continue
                return None
            if opcode == OP_CONT:
                if self._frag_op is None:
                    self._fail(1002, "continuation frame outside a message")
                self._frags.append(payload)
                self._frag_size += length
                if not fin:
                    continue
                opcode, payload = self._frag_op, b"".join(self._frags)
                self._frag_op, self._frags, self._frag_size = None, [], 0
            elif self._frag_op is not None:
                self._fail(1002, "new message inside a fragmented one")
            elif not fin:
                self._frag_op, self._frags, self._frag_size = opcode, [payload], length
                continue
            if opcode == OP_TEXT:
                try:
                    # The codec validates UTF-8 in C over the whole message.
                    return payload.decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(1007, "text message is not valid UTF-8")
            return payload

    def _on_control(self, opcode, payload):
        """Handle one control frame; False once the connection is closed."""
        if opcode == OP_PING:
            if not (self._close_sent or self._close_received):
                try:
                    self._send_frame(OP_PONG, payload)
                except WSClosedError:
                    pass  # the read side will see the drop on its own
            return True
        if opcode == OP_PONG:
            return True
        if len(payload) == 1:
            self._fail(1002, "close frame with a 1-byte body")
        self._close_received = True
        self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
        self.close_reason = payload[2:].decode("utf-8", "replace")
        if not self._close_sent:
            self._close_sent = True
            try:
                self._send_frame(OP_CLOSE, payload[:2])
            except WSClosedError:
                pass
        self._shutdown(self.close_code)
        return False

    def _fail(self, code, why):
        if not self._close_sent and self._sock is not None:
            self._close_sent = True
            try:
                self._send_frame(OP_CLOSE, struct.pack("!H", code))
            except WSClosedError:
                pass
        self.close_code = code
        self._shutdown(code)
        raise WSProtocolError(code, why)

    # -- closing ---------------------------------------------------------
    @property
    def closed(self):
        return self._sock is None or self._close_sent or self._close_received

    def close(self, code=1000, reason="", timeout=2.0):
        """Send a close frame and wait up to `timeout` s for the server's
        answer (0: don't wait). Safe to call twice or while another greenlet
        is in recv()."""
        if self._sock is None:
            return
        if not (self._close_sent or self._close_received):
            self._close_sent = True
            try:
                self._send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123])
            except WSClosedError:
                return
        if timeout and not self._close_received:
            if self._reading:
                self._done.wait(timeout)
            else:
                deadline = monotonic() + timeout
                try:
                    while self.recv(timeout=max(0.0, deadline - monotonic())) is not None:
                        pass  # late data after our close is of no use to anyone
                except (TimeoutError, WSError):
                    pass
        self._shutdown(1006)

    def _shutdown(self, code):
        sock, self._sock = self._sock, None
        self._buf.clear()  # whatever follows a close or a protocol error is void
        if self.close_code is None:
            self.close_code = code
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._done.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<WSClient {self.url} {state} close_code={self.close_code}>"
