"""RFC 6455 conformance of the framing layer: the Autobahn case groups 1-7
and 10 (247 cases, tests/web/gateway/autobahn_cases.py) replayed as raw frames
against a real `tapgrid serve`, each on its own connection; the close code
the server sends is checked for every case, and so are the messages it took
and the pings it answered before closing.

Since the server talks first (hello, grid, ticks), only its `error`
replies count as "messages taken": tapgrid answers any data frame that is
not a protocol frame with one."""
import json
import struct
import time
from urllib.parse import urlsplit

import gevent
import gevent.pool
import pytest

from actors.feeds import WSClient
from tests.web.gateway.autobahn_cases import CASES, LIMIT, frame

CASE_TIMEOUT = 6.0


@pytest.fixture(scope="module")
def rfc_server(tmp_path_factory):
    from tests.support import ServerProcess
    db = str(tmp_path_factory.mktemp("rfc") / "tapgrid.db")
    # Every case shares one guest's token, 16 at a time: lift the per-user cap.
    s = ServerProcess(db, "--seed", "1", env={"TAPGRID_HANDSHAKE_RATE": "100000",
                                              "TAPGRID_MAX_CONNS_PER_USER": "100000",
                                              "TAPGRID_FRAME_LIMIT": str(LIMIT)}).start()
    yield s
    s.kill()


class Peer:
    """The raw side of one connection: reads server frames as they come."""

    def __init__(self, ws):
        self.sock = ws._sock
        self.buf = bytearray(ws._buf)
        self.errors = 0              # the server's `error` replies: messages it took
        self.pongs = []
        self.close_code = None       # None: no close frame (yet)
        self.eof = False
        self.reader = gevent.spawn(self._read)

    def _read(self):
        while self.close_code is None:
            if not self._parse():
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.eof = True
                    return
                self.buf += data

    def _parse(self):
        buf = self.buf
        if len(buf) < 2:
            return False
        op, n, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
        assert not buf[1] & 0x80, "server frames are never masked"
        if n == 126:
            if len(buf) < 4:
                return False
            n, pos = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return False
            n, pos = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < pos + n:
            return False
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if op == 1:
            msg = json.loads(payload)
            if msg.get("type") == "error":
                self.errors += 1
        elif op == 10:
            self.pongs.append(payload)
        elif op == 8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return True

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def settled(self, expect):
        return self.close_code is not None or (
            self.errors >= expect.messages and len(self.pongs) >= len(expect.pongs))


def run_case(url, token, case):
    ws = WSClient.connect(f"ws://{urlsplit(url).netloc}/ws?token={token}", timeout=10)
    peer = Peer(ws)
    try:
        for data, pause in case.steps:
            if peer.close_code is not None or not peer.send(data):
                break
            if pause:
                gevent.sleep(pause)
        deadline = time.monotonic() + CASE_TIMEOUT
        if case.stays_open:
            # Everything it should answer, then our close, then its echo.
            while not peer.settled(case.expect) and time.monotonic() < deadline:
                gevent.sleep(0.005)
            if peer.close_code is None:
                peer.send(frame(8, struct.pack("!H", 1000)))
        peer.reader.join(max(0.0, deadline - time.monotonic()))
        return peer
    finally:
        peer.reader.kill()
        try:
            peer.sock.close()
        except OSError:
            pass


def test_the_case_list_is_the_public_one():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) == 247
    groups = {}
    for c in CASES:
        groups[c.id.split(".")[0]] = groups.get(c.id.split(".")[0], 0) + 1
    assert groups == {"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "10": 1}


def test_autobahn_cases_close_with_the_rfc_code(rfc_server):
    from web.client import TapgridClient
    client = TapgridClient(rfc_server.url)
    client.guest()
    pool = gevent.pool.Pool(16)
    results = dict(zip([c.id for c in CASES],
                       pool.map(lambda c: run_case(rfc_server.url, client.token, c), CASES)))
    wrong = []
    for case in CASES:
        peer = results[case.id]
        got = (peer.close_code, peer.errors, tuple(peer.pongs))
        want = (case.expect.close, case.expect.messages, case.expect.pongs)
        if got != want:
            wrong.append((case.id, got[0], want[0], got[1], want[1],
                          [p[:12] for p in got[2]], [p[:12] for p in want[2]]))
    right = len(CASES) - len(wrong)
    print(f"\nRFC 6455 cases with the right close code and answers: {right}/{len(CASES)}")
    assert not wrong, wrong
    # The server is still fine afterwards.
    assert TapgridClient(rfc_server.url).fetch_grid()["columns"] is not None
