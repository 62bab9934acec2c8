"""A WebSocket client: the `websockets` library's sans-I/O protocol driven
by explicit gevent sockets (plain or TLS).

`websockets.client.ClientProtocol` does all of RFC 6455 (handshake checks,
framing, masking, control frames, the closing handshake, size limits); this
module only moves bytes between it and one gevent socket, and turns its
frames into messages (opening the connection, the upgrade and the
errors are ``_wsopen``). No asyncio, no threads and no monkey-patching, cheap
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
from collections import deque
from time import monotonic

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI, ProtocolError
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from ._wsopen import (_READ_SIZE, Headers, WSClosedError, WSError, WSHandshakeError,
                      WSProtocolError, _handshake, _open_socket, _wrap_tls)

__all__ = ["WSClient", "WSError", "WSHandshakeError", "WSProtocolError",
           "WSClosedError", "Headers"]

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


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
