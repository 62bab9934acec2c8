"""The Fanout's broadcast (web/gateway/_hub.py): straight to each socket, a
connection whose send buffer is full skips ticks and grids (counted) and
gets its grid whole with the next broadcast it takes, while its acks and
results always go out; a big broadcast gives the loop back in slices.
Real Connections over real socket pairs."""
import socket as stdsocket
from types import SimpleNamespace

import gevent
from gevent import socket

import web.gateway._hub as hub_module
from actors import WON, Config, Grid, MarketStatus, Tick
from web.gateway._conn import Connection, TokenBucket
from web.gateway._hub import Fanout
from web.gateway._wsfast import encode_text_frame
from tests.support import wait_until


def _conn(uid=1, sndbuf=None):
    ours, peer = socket.socketpair()
    ws = SimpleNamespace(raw_write=ours.sendall, handler=SimpleNamespace(socket=ours))
    conn = Connection(ws, f"u{uid}", uid, None, "k", TokenBucket(10, 10, 0.0))
    if sndbuf:      # after Connection's own SO_SNDBUF, so this one holds
        ours.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, sndbuf)
        peer.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, sndbuf)
    peer.setblocking(False)
    return conn, ours, peer


def _grid(version, bands=300):
    # a few hundred cells: a v1 grid frame of some ten kilobytes, as in play
    return Grid(version=version, price=6_500_000 + version, price_ts=1_700_000_000_000 + version,
                columns={1_700_000_005_000 + 5000 * c: {6_400_000 + 100 * b: 150 + b for b in range(bands)}
                         for c in range(3)})


def _fanout():
    market = SimpleNamespace(grid=_grid(0), status=MarketStatus())
    fan = Fanout(Config(fanout_hz=1000))
    fan.market = market                 # a handle without markets: the default market only
    return fan, market


def _drain(peer):
    data = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def _read_all(conn, peer):
    """What ``conn`` sent, once its queue (the rest of a frame the socket
    took in part) is written too."""
    data = [b""]

    def written():
        data[0] += _drain(peer)
        return conn.writer is None and not conn.out

    wait_until(written, timeout=10, what="the connection's queue written")
    return data[0] + _drain(peer)


def _frames(data):
    """Payloads of the unmasked server frames in ``data`` (whole frames only)."""
    out, pos = [], 0
    while pos + 2 <= len(data):
        n, head = data[pos + 1], 2
        if n == 126:
            n, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
        if pos + head + n > len(data):
            break
        out.append(data[pos + head:pos + head + n])
        pos += head + n
    return out


def _broadcast(fan, version):
    fan.on_tick(Tick(6_500_000 + version, 1_700_000_000_000 + version))
    fan.on_grid(_grid(version))
    fan._broadcast()


def test_a_full_send_buffer_skips_ticks_and_grids_but_never_results():
    fan, market = _fanout()
    slow, s_ours, s_peer = _conn(1, sndbuf=4096)
    quick, q_ours, q_peer = _conn(2)
    fan.add(slow)
    fan.add(quick)
    # broadcasts until the slow reader's buffer is full and it has skipped some
    version = 0
    while fan.skipped < 3:
        version += 1
        assert version < 200, "the socket pair never filled"
        _broadcast(fan, version)
        _drain(q_peer)                  # the quick one reads everything at once
    assert slow in fan.owed and quick not in fan.owed
    # nothing of the skipped broadcasts waits in memory: at most the rest of
    # the one frame the socket took in part
    assert len(slow.out) <= 1 and slow.queued <= len(fan.grid_frame()) + 64
    skipped = fan.skipped

    # a result while it is behind is queued, not skipped
    fan.on_market_result(None, 1, SimpleNamespace(bet=77, outcome=WON, payout=500), 9_000)
    gevent.sleep(0)                     # send_soon: at the end of the turn
    assert fan.skipped == skipped

    # the client reads again: the result arrives, after what was sent before it
    data = b""
    while b'"bet":77' not in data:
        gevent.sleep(0.01)
        data += _drain(s_peer)
    kinds = [f[:16] for f in _frames(data)]
    assert kinds[-1].startswith(b'{"type":"result"')
    # the next broadcast brings it the newest tick and the whole grid again,
    # even one that only moves the tick
    _read_all(slow, s_peer)
    fan.on_tick(Tick(1, 1_800_000_000_000))
    fan._broadcast()
    after = _frames(_read_all(slow, s_peer))
    assert [f[:15] for f in after] == [b'{"type":"tick",', b'{"type":"grid",']
    assert slow not in fan.owed
    # and only once: the broadcast after that is the tick alone
    fan.on_tick(Tick(2, 1_800_000_000_001))
    fan._broadcast()
    assert _frames(_read_all(slow, s_peer)) == [b'{"type":"tick","p":2,"t":1800000000001}']
    for s in (s_ours, s_peer, q_ours, q_peer):
        s.close()


def test_a_big_broadcast_lets_a_waiting_reader_run_before_it_ends(monkeypatch):
    # the slice made as short as can be: the broadcaster yields every 16 sends
    monkeypatch.setattr(hub_module, "SLICE_S", 0.0)
    fan, _ = _fanout()
    pairs = [_conn(i) for i in range(64)]
    conns = [c for c, _, _ in pairs]
    sent = []

    def data(conn):
        sent.append(conn)
        return encode_text_frame(b'{"type":"tick","p":1,"t":1}')

    # a tapper's socket, its frame already there: its reader runs as soon as
    # the loop polls
    tap_in, tap_out = socket.socketpair()
    seen = []
    reader = gevent.spawn(lambda: (tap_in.recv(100), seen.append(len(sent))))
    gevent.sleep(0)                     # the reader waits on its socket
    tap_out.sendall(b"tap")
    fan._deliver(conns, data)
    reader.join(5)
    assert len(sent) == 64
    assert seen and 0 < seen[0] < 64, seen
    for c, ours, peer in pairs:
        assert _frames(_drain(peer)) == [b'{"type":"tick","p":1,"t":1}']
        ours.close(), peer.close()
    tap_in.close(), tap_out.close()
