"""A WebSocket client: the `websockets` library's sans-I/O protocol driven
by explicit gevent sockets (plain or TLS).

`websockets.client.ClientProtocol` does all of RFC 6455 (handshake checks,
framing, masking, control frames, the closing handshake, size limits); this
module only moves bytes between it and one gevent socket, and turns its
frames into messages. No asyncio, no threads and no monkey-patching, cheap
enough that the benchmark driver can hold thousands in one process. Used by
the exchange feeds, the Python client and the tests.

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
import ipaddress
from collections import deque
from time import monotonic

import gevent
from gevent import socket, ssl
from gevent.event import Event
from gevent.lock import Semaphore
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI, ProtocolError
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

__all__ = ["WSClient", "WSError", "WSHandshakeError", "WSProtocolError",
           "WSClosedError", "Headers"]

_READ_SIZE = 65536
_HEAD_LIMIT = 65536           # the HTTP response head of the upgrade
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


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

    @classmethod
    def of(cls, headers):
        """From a `websockets.datastructures.Headers` (a multi-dict)."""
        out = cls()
        for name, value in headers.raw_items():
            name, old = name.lower(), dict.get(out, name.lower())
            dict.__setitem__(out, name, value if old is None else f"{old}, {value}")
        return out

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


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


def _handshake(sock, proto, url):
    """Read the server's answer and let the protocol check it. Only the
    response head is fed to it when the upgrade succeeds: the bytes behind it
    (frames the server sent right after the 101) are returned unparsed, for
    the connection to read as its first data."""
    buf, head_fed, rest = bytearray(), False, b""
    while True:
        data = sock.recv(_READ_SIZE)
        if not data:
            proto.receive_eof()
            events = proto.events_received()
        elif head_fed:
            proto.receive_data(data)
            events = proto.events_received()
        else:
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _HEAD_LIMIT:
                    raise WSError("HTTP response head too large")
                continue
            head_fed, rest = True, bytes(buf[end + 4:])
            proto.receive_data(bytes(buf[:end + 4]))
            events = proto.events_received()
            if not events and rest:
                # No answer yet: a refusal with a body, which the protocol reads too.
                proto.receive_data(rest)
                rest = b""
                events = proto.events_received()
        if events and isinstance(events[0], Response):
            break
        exc = proto.handshake_exc
        if not data or isinstance(getattr(exc, "__cause__", None), EOFError):
            raise WSError("connection closed during the websocket handshake")
        if exc is not None:
            raise WSError(f"malformed HTTP response from {url}: {exc.__cause__ or exc}")
    response, exc = events[0], proto.handshake_exc
    headers = Headers.of(response.headers)
    if exc is not None:
        message = None if isinstance(exc, InvalidStatus) else f"websocket upgrade refused: {exc}"
        raise WSHandshakeError(response.status_code, headers, bytes(response.body), message)
    return headers, rest


class WSClient:
    """One client connection. Reads and writes may run in two greenlets at
    once; whatever the protocol has to send goes out under one lock, so
    frames never interleave."""

    __slots__ = ("url", "headers", "max_message_size", "close_code",
                 "close_reason", "last_read_at", "_sock", "_buf", "_proto", "_inbox",
                 "_send_lock", "_reading", "_frag_op", "_frags", "_done")

    def __init__(self, sock, proto, buffered=b"", *, url="", headers=None,
                 max_message_size=16 << 20):
        self.url = url
        self.headers = headers if headers is not None else Headers()
        self.max_message_size = max_message_size
        self.close_code = None      # peer's code, ours if we failed it, 1006 on a drop
        self.close_reason = ""
        self.last_read_at = monotonic()   # any bytes at all, pings included
        self._sock = sock
        self._buf = bytearray(buffered)   # received, not yet fed to the protocol
        self._proto = proto
        self._inbox = deque()       # messages (str/bytes) or a WSProtocolError to raise
        self._send_lock = Semaphore()
        self._reading = False
        self._frag_op, self._frags = None, []
        self._done = Event()

    # -- opening ---------------------------------------------------------
    @classmethod
    def connect(cls, url, *, headers=None, origin=None, timeout=10,
                ssl_context=None, max_message_size=16 << 20):
        """Open `url` (ws:// or wss://) and finish the upgrade within
        `timeout` seconds (TimeoutError otherwise)."""
        try:
            uri = parse_uri(url)
        except InvalidURI as e:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}") from e
        proto = ClientProtocol(uri, origin=origin, max_size=max_message_size)
        request = proto.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        proto.send_request(request)

        timer = gevent.Timeout.start_new(timeout) if timeout is not None else None
        sock = None
        try:
            sock = _open_socket(uri.host, uri.port)
            if uri.secure:
                sock = _wrap_tls(sock, uri.host, ssl_context)
            sock.sendall(b"".join(proto.data_to_send()))
            rheaders, rest = _handshake(sock, proto, url)
            client = cls(sock, proto, rest, url=url, headers=rheaders,
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
    def _flush(self):
        """Send whatever the protocol has queued (data frames, pongs, close)."""
        with self._send_lock:
            chunks = self._proto.data_to_send()
            if not any(chunks):
                return  # nothing, or only the end-of-stream mark: we close the socket ourselves
            sock = self._sock
            if sock is None:
                raise WSClosedError("websocket is closed")
            try:
                sock.sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            except OSError as e:
                self._shutdown(1006)
                raise WSClosedError(f"websocket send failed: {e}") from e

    def _check_open(self):
        if self.closed:
            raise WSClosedError("websocket is closed")

    def send_text(self, s):
        self._check_open()
        self._proto.send_text(s.encode("utf-8"))
        self._flush()

    def send_bytes(self, b):
        self._check_open()
        self._proto.send_binary(bytes(b))
        self._flush()

    def ping(self, payload=b""):
        if len(payload) > 125:
            raise ValueError("ping payload is limited to 125 bytes")
        self._check_open()
        self._proto.send_ping(payload)
        self._flush()

    # -- receiving -------------------------------------------------------
    def recv(self, timeout=None):
        """Next message: str (text), bytes (binary) or None once closed.
        Raises TimeoutError if no message came within `timeout` seconds; the
        connection stays usable. Pings are answered on the way."""
        if self._reading:
            raise RuntimeError("recv() is already running in another greenlet")
        self._reading = True
        try:
            deadline = None if timeout is None else monotonic() + timeout
            while not self._inbox:
                if not self._fill(deadline):
                    return None
            msg = self._inbox.popleft()
            if isinstance(msg, WSProtocolError):
                raise msg
            return msg
        finally:
            self._reading = False

    def __iter__(self):
        while (msg := self.recv()) is not None:
            yield msg

    def _fill(self, deadline):
        """Read once from the socket and feed the protocol; False once closed."""
        sock = self._sock
        if sock is None:
            return False
        if self._buf:
            data, self._buf = bytes(self._buf), bytearray()
            self._proto.receive_data(data)
            self._take(self._proto.events_received())
            return True
        timer = None
        if deadline is not None:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError("no websocket message within the timeout")
            timer = gevent.Timeout.start_new(remaining)
        try:
            data = sock.recv(_READ_SIZE)
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
            self._proto.receive_eof()
            self._shutdown(1006)
            return False
        self.last_read_at = monotonic()
        self._proto.receive_data(data)
        self._take(self._proto.events_received())
        return True

    def _take(self, frames):
        """Turn the protocol's frames into messages in the inbox; answer what
        it queued (pongs, the close echo); fail on what it rejected."""
        proto = self._proto
        pinged = False
        for frame in frames:
            op = frame.opcode
            if op is Opcode.PING:
                pinged = True   # the protocol queued the pong
            elif op in _DATA:
                if op is not Opcode.CONT:
                    self._frag_op, self._frags = op, []
                self._frags.append(frame.data)
                if not frame.fin:
                    continue
                op, data = self._frag_op, b"".join(self._frags)
                self._frag_op, self._frags = None, []
                if op is Opcode.TEXT:
                    try:
                        # The codec validates UTF-8 in C over the whole message.
                        self._inbox.append(data.decode("utf-8"))
                    except UnicodeDecodeError:
                        proto.fail(1007, "invalid UTF-8")
                        self._failed(1007, "text message is not valid UTF-8")
                        return
                else:
                    self._inbox.append(data)
            elif op is Opcode.CLOSE:
                close = proto.close_rcvd
                self.close_code, self.close_reason = close.code, close.reason
                self._flush_quietly()
                self._shutdown(close.code)
                return
        exc = proto.parser_exc
        if exc is not None and not isinstance(exc, EOFError):
            code = proto.close_sent.code if proto.close_sent is not None else 1002
            self._failed(code, str(exc) or type(exc).__name__)
        elif pinged:
            # Only then: a reader waiting for the send lock while a sender is
            # stuck in sendall (its peer busy echoing to us) would deadlock.
            self._flush_quietly()

    def _flush_quietly(self):
        try:
            self._flush()
        except WSClosedError:
            pass  # the read side sees the drop on its own

    def _failed(self, code, why):
        self._flush_quietly()           # the protocol queued our close frame
        self.close_code = code
        self._shutdown(code)
        self._inbox.append(WSProtocolError(code, why))

    # -- closing ---------------------------------------------------------
    @property
    def closed(self):
        return self._sock is None or self._proto.state is not State.OPEN

    def close(self, code=1000, reason="", timeout=2.0):
        """Send a close frame and wait up to `timeout` s for the server's
        answer (0: don't wait). Safe to call twice or while another greenlet
        is in recv()."""
        if self._sock is None:
            return
        if self._proto.state is State.OPEN:
            try:
                self._proto.send_close(code, reason.encode()[:123].decode("utf-8", "ignore"))
            except ProtocolError as e:
                raise ValueError(f"cannot close with code {code}: {e}") from None
            try:
                self._flush()
            except WSClosedError:
                return
        if timeout and self._proto.close_rcvd is None:
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
