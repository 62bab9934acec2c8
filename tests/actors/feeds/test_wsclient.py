"""The gevent WebSocket client against real local servers: gevent-websocket
for the ordinary cases, a raw socket server where a test needs to send bytes
a well-behaved server never would."""
import base64
import datetime
import doctest
import hashlib
import ipaddress
import ssl as std_ssl
import struct

import gevent
import gevent.server
import pytest
from gevent import socket, ssl
from gevent.queue import Queue
from geventwebsocket.websocket import Header, WebSocket
from websockets.utils import apply_mask

from actors.feeds import _wsclient
from actors.feeds._wsclient import WSClient, WSClosedError, WSHandshakeError, WSProtocolError
from tests.support import free_port, wait_until


@pytest.fixture
def serve(local_ws_server):
    """serve(app, **server_kw) -> "ws://127.0.0.1:PORT" (see conftest)."""
    return local_ws_server


def echo_app(environ, start_response):
    ws = environ["wsgi.websocket"]
    while (msg := ws.receive()) is not None:
        ws.send(msg)
    return []


@pytest.fixture
def raw_serve():
    """A bare TCP server that does the upgrade by hand, then runs
    script(sock) so a test can write any bytes it likes."""
    servers = []

    def start(script, accept=None):
        def handle(sock, _addr):
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            token = accept or base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + token + b"\r\n\r\n")
            script(sock)
        server = gevent.server.StreamServer(("127.0.0.1", 0), handle)
        server.start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.stop(timeout=1)


def frame(opcode, payload, fin=True, masked=False):
    # encode_header appends the (all-zero, so payload-preserving) mask itself.
    return bytes(Header.encode_header(fin, opcode, b"\x00" * 4 if masked else b"",
                                      len(payload), 0)) + payload


def read_client_frame(sock):
    """Read one masked client frame off a raw socket: (fin, opcode, mask bit, payload)."""
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "client hung up mid-frame"
            data += chunk
        return data
    b0, b1 = exact(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", exact(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", exact(8))[0]
    key = exact(4) if b1 & 0x80 else b""
    payload = exact(length)
    if key:
        payload = apply_mask(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), payload


def test_module_example_runs():
    assert doctest.testmod(_wsclient).failed == 0


def test_echo_text_unicode_and_binary(serve):
    ws = WSClient.connect(serve(echo_app) + "/echo")
    ws.send_text("hello")
    assert ws.recv(timeout=5) == "hello"
    ws.send_text("₿ 95 000,00 — ok ✓ 🚀")
    assert ws.recv(timeout=5) == "₿ 95 000,00 — ok ✓ 🚀"
    ws.send_bytes(b"\x00\xff\x10")
    assert ws.recv(timeout=5) == b"\x00\xff\x10"
    ws.send_text("")
    assert ws.recv(timeout=5) == ""
    ws.close()
    assert ws.closed


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 300_000])
def test_large_frames_round_trip(serve, size):
    ws = WSClient.connect(serve(echo_app))
    text = ("tapgrid-" * (size // 8 + 1))[:size]
    ws.send_text(text)
    assert ws.recv(timeout=10) == text
    blob = bytes(range(256)) * (size // 256 + 1)
    ws.send_bytes(blob[:size])
    assert ws.recv(timeout=10) == blob[:size]
    ws.close()


def test_client_frames_are_masked(raw_serve):
    seen = Queue()
    url = raw_serve(lambda sock: seen.put(read_client_frame(sock)))
    ws = WSClient.connect(url)
    ws.send_text("masked please " * 20)
    fin, opcode, masked, payload = seen.get(timeout=5)
    assert (fin, opcode, masked) == (True, 0x1, True)
    assert payload == ("masked please " * 20).encode()
    ws.close(timeout=0)


def test_server_ping_is_answered_with_pong(serve):
    pongs = Queue()

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.send_frame("are-you-there", WebSocket.OPCODE_PING)  # str: the lib str()s bytes
        header, payload = ws.read_frame()
        pongs.put((header.opcode, bytes(payload)))
        ws.send("after-ping")
        ws.receive()
        return []

    ws = WSClient.connect(serve(app))
    assert ws.recv(timeout=5) == "after-ping"
    assert pongs.get(timeout=5) == (WebSocket.OPCODE_PONG, b"are-you-there")
    ws.close(timeout=0)


def test_server_close_code_and_reason_are_recorded(serve):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.receive()
        ws.send("last words")
        # gevent-websocket's close() drops the code, so write the frame itself.
        ws.send_frame(struct.pack("!H", 4001) + b"bye", WebSocket.OPCODE_CLOSE)
        return []

    ws = WSClient.connect(serve(app))
    ws.send_text("close me")
    assert ws.recv(timeout=5) == "last words"
    assert ws.recv(timeout=5) is None
    assert (ws.close_code, ws.close_reason) == (4001, "bye")
    assert ws.closed
    assert ws.recv(timeout=1) is None
    with pytest.raises(WSClosedError):
        ws.send_text("too late")


def test_client_close_handshake_reaches_server(serve):
    ended = Queue()

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ended.put(ws.receive())
        return []

    ws = WSClient.connect(serve(app))
    ws.close(1000, timeout=5)
    assert ended.get(timeout=5) is None
    assert ws.closed and ws.close_code is not None
    ws.close()  # twice is harmless


def test_abrupt_drop_reads_as_closed_1006(raw_serve):
    url = raw_serve(lambda sock: sock.sendall(frame(0x1, b"one")))
    ws = WSClient.connect(url)
    assert ws.recv(timeout=5) == "one"
    assert ws.recv(timeout=5) is None
    assert ws.close_code == 1006


def test_fragmented_message_with_ping_between_fragments(raw_serve):
    got = Queue()

    def script(sock):
        sock.sendall(frame(0x1, "₿ fr".encode(), fin=False)
                     + frame(0x9, b"mid")
                     + frame(0x0, "agment".encode(), fin=False)
                     + frame(0x0, " ✓".encode()))
        got.put(read_client_frame(sock))
        got.put(read_client_frame(sock))

    ws = WSClient.connect(raw_serve(script))
    assert ws.recv(timeout=5) == "₿ fragment ✓"
    assert got.get(timeout=5)[1:] == (0xA, True, b"mid")
    ws.send_text("next")
    assert got.get(timeout=5)[3] == b"next"
    ws.close(timeout=0)


@pytest.mark.parametrize("raw, code", [
    (frame(0x1, b"hi", masked=True), 1002),          # server frames must not be masked
    (frame(0x1, b"\xff\xfe"), 1007),                 # invalid UTF-8 in a text message
    (frame(0x0, b"orphan"), 1002),                   # continuation with nothing to continue
    (frame(0x3, b"?"), 1002),                        # reserved opcode
    (frame(0x9, b"x" * 126), 1002),                  # control frame too long
])
def test_protocol_errors_fail_the_connection(raw_serve, raw, code):
    closes = Queue()

    def script(sock):
        sock.sendall(raw)
        closes.put(read_client_frame(sock))

    ws = WSClient.connect(raw_serve(script))
    with pytest.raises(WSProtocolError) as err:
        ws.recv(timeout=5)
    assert err.value.code == code == ws.close_code
    _, opcode, _, payload = closes.get(timeout=5)
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == code
    assert ws.closed and ws.recv(timeout=1) is None


def test_message_size_limit(serve):
    ws = WSClient.connect(serve(echo_app), max_message_size=1000)
    ws.send_text("x" * 1001)
    with pytest.raises(WSProtocolError) as err:
        ws.recv(timeout=5)
    assert err.value.code == 1009


def test_handshake_503_with_retry_after(serve):
    def app(environ, start_response):
        start_response("503 Service Unavailable",
                       [("Retry-After", "7"), ("Content-Type", "text/plain")])
        return [b"market busy"]

    url = serve(app, pre_start_hook=lambda handler: True)
    with pytest.raises(WSHandshakeError) as err:
        WSClient.connect(url + "/ws", timeout=5)
    assert err.value.status == 503
    assert err.value.headers["Retry-After"] == "7"
    assert err.value.retry_after == 7
    assert err.value.body == b"market busy"


def test_handshake_with_bad_accept_is_refused(raw_serve):
    url = raw_serve(lambda sock: None, accept=b"bm90LXRoZS1yaWdodC1rZXk=")
    with pytest.raises(WSHandshakeError, match="Sec-WebSocket-Accept"):
        WSClient.connect(url, timeout=5)


def test_handshake_sends_origin_and_headers(serve):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.send(f"{environ.get('HTTP_ORIGIN')}|{environ.get('HTTP_X_PLAYER')}|"
                f"{environ.get('PATH_INFO')}?{environ.get('QUERY_STRING')}")
        ws.receive()
        return []

    ws = WSClient.connect(serve(app) + "/ws?v=1", origin="http://tapgrid.test",
                          headers={"X-Player": "p1"})
    assert ws.recv(timeout=5) == "http://tapgrid.test|p1|/ws?v=1"
    ws.close()


def test_connect_refused_and_bad_urls():
    with pytest.raises(OSError):
        WSClient.connect(f"ws://127.0.0.1:{free_port()}/", timeout=5)
    for url in ("http://127.0.0.1/", "ws:///nohost", "127.0.0.1:80"):
        with pytest.raises(ValueError):
            WSClient.connect(url)


def test_connect_timeout_when_server_never_answers():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        with pytest.raises(TimeoutError):
            WSClient.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.2)
    finally:
        listener.close()


def test_recv_timeout_leaves_connection_usable(serve):
    ws = WSClient.connect(serve(echo_app))
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.05)
    ws.send_text("still here")
    assert ws.recv(timeout=5) == "still here"
    ws.close()


def test_close_from_another_greenlet_wakes_reader(serve):
    ws = WSClient.connect(serve(echo_app))
    reader = gevent.spawn(ws.recv)
    wait_until(lambda: ws._reading, what="reader blocked in recv")
    ws.close(timeout=5)
    assert reader.get(timeout=5) is None
    assert ws.closed


def test_concurrent_senders_never_interleave_frames(serve):
    ws = WSClient.connect(serve(echo_app))
    # Big enough to overflow the socket buffers, so sendall() yields mid-frame.
    big = {name: f"{name}:" + name * 3_000_000 for name in "ab"}

    def sender(name):
        for _ in range(3):
            ws.send_text(big[name])

    senders = [gevent.spawn(sender, name) for name in "ab"]
    got = [ws.recv(timeout=10) for _ in range(6)]
    gevent.joinall(senders, raise_error=True)
    assert sorted(got) == sorted([big["a"]] * 3 + [big["b"]] * 3)
    ws.close()


def test_many_connections_in_one_process(serve):
    url = serve(echo_app)
    clients = [WSClient.connect(url) for _ in range(200)]

    def talk(i, ws):
        ws.send_text(f"tap {i}")
        return ws.recv(timeout=10)

    jobs = [gevent.spawn(talk, i, ws) for i, ws in enumerate(clients)]
    gevent.joinall(jobs, raise_error=True)
    assert [j.value for j in jobs] == [f"tap {i}" for i in range(200)]
    for ws in clients:
        ws.close(timeout=0)


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_wss_with_verified_certificate(serve, tmp_path):
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    url = serve(echo_app, scheme="wss", ssl_context=server_ctx)
    gevent_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    gevent_ctx.load_verify_locations(cafile=cert)
    # Both a gevent context and a plain stdlib one must stay cooperative.
    for ctx in (gevent_ctx, std_ssl.create_default_context(cafile=cert)):
        ws = WSClient.connect(url, ssl_context=ctx, timeout=5)
        ws.send_text("over tls " * 10_000)
        assert ws.recv(timeout=5) == "over tls " * 10_000
        ws.close()
    # The default context does not trust a self-signed server.
    with pytest.raises(ssl.SSLError):
        WSClient.connect(url, timeout=5)
