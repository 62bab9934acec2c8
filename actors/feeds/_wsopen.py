"""Opening a WebSocket connection for ``WSClient``: the socket (plain or
TLS, never a blocking one), the HTTP upgrade read until the protocol has
judged the response, and the errors a client can see.

    >>> from websockets.datastructures import Headers as Multi
    >>> h = Headers.of(Multi([("Retry-After", "3")]))
    >>> h["retry-after"], "RETRY-AFTER" in h
    ('3', True)
"""
import ipaddress

from gevent import socket, ssl
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

__all__ = ["WSError", "WSHandshakeError", "WSProtocolError", "WSClosedError", "Headers"]

_READ_SIZE = 65536
_HEAD_LIMIT = 65536           # the HTTP response head of the upgrade


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
