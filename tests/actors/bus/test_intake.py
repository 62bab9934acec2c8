"""The market's side of the bus, with the test as the gateway: a real
``tapgrid market`` and redis-server, taps and calls written to the streams
by hand, answers read from this "gateway"'s inbox.

- a tap entry delivered twice (the market died between its commit and
  its XACK) makes one bet, and the second delivery is answered with that
  same bet, not ``replay``;
- a tap the gateway has given up on (past its deadline) is refused
  ``overloaded`` and never placed, pending or new; a tap past its 30 s
  window is ``expired``;
- a gateway that never reads its inbox: the stream stays bounded
  (``MAXLEN ~``) and another gateway's acks keep coming;
- calls: answers, ``UserExists``, an unknown method, a call past its
  deadline skipped.
"""
import time

import pytest

from actors import Tap
from actors.bus import Keys, decode_value, encode_taps, encode_value, grid_from_body, decode_blob
from actors.store import audit
from tests.serverproc import MarketProcess
from tests.support import wait_until
from tests.web.auth.test_replay_redis import RedisProcess

K = Keys()
ENV = {"TAPGRID_BUS_STREAM_MAX": "100",
       "TAPGRID_MAX_OPEN_BETS": "100000", "TAPGRID_CELL_LIABILITY_CAP": "1000000000000"}


class FakeGateway:
    """What a gateway writes and reads, by hand."""

    def __init__(self, red, name):
        self.r = red
        self.name = name
        self.inbox = K.inbox(name)
        self.last = b"0-0"
        self.rid = 0
        self.nonce = 0
        self.seen = {}

    def call(self, method, *args, deadline_ms=5000):
        cid = f"{self.name}-{time.monotonic_ns()}".encode()
        self.r.xadd(K.calls, {b"g": self.name, b"i": cid, b"m": method,
                              b"x": int(time.time() * 1000) + deadline_ms,
                              b"a": encode_value(list(args))})
        reply = wait_until(lambda: self._reply(cid), timeout=10, what=f"the reply to {method}")
        if b"e" in reply:
            return ("error", decode_value(reply[b"e"]))
        return decode_value(reply[b"v"])

    def _reply(self, cid):
        for eid, fields in self.read(block=100):
            if fields.get(b"k") == b"r" and fields[b"i"] == cid:
                return fields
        return None

    def read(self, block=None):
        got = self.r.xread({self.inbox: self.last}, count=1000, block=block)
        entries = got[0][1] if got else []
        if entries:
            self.last = entries[-1][0]
        return entries

    def tap(self, user, cell, ts=None, nonce=None):
        self.nonce += 1
        col, lo, mult = cell
        return Tap(user, col, lo, 100, 101, ts or int(time.time() * 1000),
                   nonce or f"{self.name}-{self.nonce}-{time.monotonic_ns()}", bytes(64))

    def send(self, taps, deadline_ms=3000):
        rows = []
        for t in taps:
            self.rid += 1
            rows.append((self.rid, t, None))
        eid = self.r.xadd(K.taps, {b"g": self.name, b"x": int(time.time() * 1000) + deadline_ms,
                                   b"d": encode_taps(rows)})
        return eid, [rid for rid, _, _ in rows]

    def acks(self, rids, timeout=10):
        """{rid: [rid, reason, bet, mult, balance]} once all have come (one
        inbox entry may answer several of our entries: kept in ``seen``)."""
        got = self.seen
        want = set(rids)

        def more():
            for _, fields in self.read(block=100):
                if fields.get(b"k") == b"a":
                    for row in decode_value(fields[b"d"]):
                        got[row[0]] = row
            return want <= set(got)
        wait_until(more, timeout=timeout, what="acks")
        return {rid: got[rid] for rid in rids}


@pytest.fixture
def bus(tmp_path):
    red = RedisProcess(tmp_path).start()
    market = MarketProcess(str(tmp_path / "m.db"), red.url, "--seed", "4", env=ENV).start()
    client = red.client()
    yield red, market, client
    market.kill()
    client.close()
    red.kill()


def open_cell(client, ahead_ms=4500):
    def cell():
        state = client.hget(K.state, K.grid_field("BTC-USD/5s"))
        if state is None:
            return None
        _, head, parts = decode_blob(state)
        grid = grid_from_body(parts[0], head["v"])
        now = int(time.time() * 1000)
        for col in sorted(grid.columns):
            if col - ahead_ms > now:
                lo = grid.price // 1000 * 1000 + 1000
                if lo in grid.columns[col]:
                    return col, lo, grid.columns[col][lo]
        return None
    wait_open(client)
    return wait_until(cell, timeout=20, what="an open cell in the published grid")


def wait_open(client):
    def is_open():
        m = client.hget(K.state, K.status_field("BTC-USD/5s"))
        return m is not None and decode_blob(m)[1]["status"] == "open"
    wait_until(is_open, timeout=20, what="the market open")


def bets(db):
    import sqlite3
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM bets").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.timeout(120)
def test_a_tap_delivered_twice_makes_one_bet_and_both_answers_name_it(bus, tmp_path):
    red, market, client = bus
    gw = FakeGateway(client, "gwA")
    uid = gw.call("create_user", "alice", 1_000_000, False)
    cell = open_cell(client, ahead_ms=30_000)     # still open after two restarts
    taps = [gw.tap(uid, cell) for _ in range(3)]
    eid, rids = gw.send(taps, deadline_ms=60_000)
    first = gw.acks(rids)
    assert all(a[1] is None for a in first.values()), first
    wait_until(lambda: client.xpending(K.taps, K.group)["pending"] == 0, what="the XACK")
    assert market.stop() == 0

    # As if the market had died after the commit, before the XACK: the entry
    # is pending again for the market's consumer when it starts.
    client.xgroup_setid(K.taps, K.group, "0")
    client.xreadgroup(K.group, "market", {K.taps: ">"}, count=10)
    assert client.xpending(K.taps, K.group)["pending"] == 1
    client.delete(K.state)          # so that wait_open hears the new market
    market.start()
    for rid in rids:
        gw.seen.pop(rid, None)
    again = gw.acks(rids)
    assert [a[2] for a in again.values()] == [a[2] for a in first.values()]   # the same bets
    assert all(a[1] is None for a in again.values())
    wait_until(lambda: client.xpending(K.taps, K.group)["pending"] == 0, what="the XACK")
    assert bets(market.db) == 3

    # A new delivery of the same signed taps (another entry) is a replay.
    wait_open(client)
    _, rids2 = gw.send(taps)
    assert {a[1] for a in gw.acks(rids2).values()} == {"replay"}
    assert bets(market.db) == 3
    assert market.stop() == 0
    assert audit(market.db) == []


@pytest.mark.timeout(120)
def test_taps_past_their_deadline_or_window_are_never_placed(bus):
    red, market, client = bus
    gw = FakeGateway(client, "gwB")
    uid = gw.call("create_user", "bob", 1_000_000, False)
    cell = open_cell(client)
    # Given up by its gateway before the market read it.
    _, late = gw.send([gw.tap(uid, cell)], deadline_ms=-1)
    # Signed 31 s ago (the gateway let it through at 29 s, say).
    _, old = gw.send([gw.tap(uid, cell, ts=int(time.time() * 1000) - 31_000)])
    assert gw.acks(late)[late[0]][1] == "overloaded"
    assert gw.acks(old)[old[0]][1] == "expired"

    # Pending when the market died, and past its deadline when it is back:
    # not committed, so refused and not placed.
    assert market.stop() == 0
    _, pending = gw.send([gw.tap(uid, cell)], deadline_ms=300)
    client.xreadgroup(K.group, "market", {K.taps: ">"}, count=10)
    time.sleep(0.5)            # the deadline passes while the market is away
    market.start()
    assert gw.acks(pending)[pending[0]][1] == "overloaded"
    assert bets(market.db) == 0
    assert market.stop() == 0
    assert audit(market.db) == []


@pytest.mark.timeout(120)
def test_a_gateway_that_never_reads_has_a_bounded_inbox(bus):
    red, market, client = bus
    slow, fast = FakeGateway(client, "slow"), FakeGateway(client, "fast")
    uid = fast.call("create_user", "carol", 10 ** 12, False)
    cell = open_cell(client)
    pipe = client.pipeline(transaction=False)
    for i in range(3000):          # one tap per entry: one ack entry each
        slow.rid += 1
        pipe.xadd(K.taps, {b"g": "slow", b"x": int(time.time() * 1000) + 30_000,
                           b"d": encode_taps([(slow.rid, slow.tap(uid, cell), None)])})
    pipe.execute()
    _, rids = fast.send([fast.tap(uid, cell) for _ in range(50)], deadline_ms=30_000)
    assert len(fast.acks(rids, timeout=30)) == 50
    wait_until(lambda: client.xpending(K.taps, K.group)["pending"] == 0
               and client.xinfo_groups(K.taps)[0]["last-delivered-id"]
               == client.xinfo_stream(K.taps)["last-generated-id"],
               timeout=60, what="every tap entry answered")
    # MAXLEN ~ 100: trimmed whole macro-nodes at a time, so a little above.
    assert client.xlen(K.inbox("slow")) <= 300
    assert client.pttl(K.inbox("slow")) > 0      # and it goes when nobody reads it
    assert market.stop() == 0


@pytest.mark.timeout(60)
def test_calls_answer_refuse_and_skip(bus):
    red, market, client = bus
    gw = FakeGateway(client, "gwC")
    uid = gw.call("create_user", "dave", 5000, True)
    assert gw.call("balance", uid) == 5000
    assert gw.call("credit", uid, 700) == 5700
    assert gw.call("create_user", "dave", 0, True)[1][0] == "UserExists"
    assert gw.call("create_user", "dave", 0, False) == uid
    assert gw.call("history", uid, None, 10) == []
    assert gw.call("save_key", uid, b"\x04" + bytes(64), int(time.time() * 1000) + 60_000)
    # A demo top-up: the limit and the credit in the market's one transaction.
    assert gw.call("top_up", uid, 10_000, 6000, 60_000)[:3] == [None, 4300, 10_000]
    assert gw.call("top_up", uid, 10_000, 20_000, 60_000)[0] == "rate_limited"
    assert gw.call("top_up", uid, 10_000, 6000, 0)[0] == "balance_not_low"
    assert gw.call("nope")[1][0] == "error"
    # Past its deadline when read: skipped, never applied (its caller said 503).
    client.xadd(K.calls, {b"g": "gwC", b"i": b"old", b"m": "credit", b"x": 1,
                          b"a": encode_value([uid, 1_000_000])})
    assert gw.call("balance", uid) == 10_000
    assert market.stop() == 0


@pytest.mark.timeout(60)
def test_a_second_market_on_the_same_redis_refuses(bus, tmp_path):
    red, market, client = bus
    import subprocess
    import sys
    from tests.serverproc import ROOT
    out = subprocess.run([sys.executable, "-m", "web.cli", "market", "--redis", red.url,
                          "--db", str(tmp_path / "other.db")], cwd=ROOT, capture_output=True,
                         text=True, timeout=50)
    assert out.returncode == 1 and "another market serves this Redis" in out.stderr
    assert str(market.pid) in out.stderr           # it names the holder
    assert market.alive()


@pytest.mark.timeout(120)
def test_a_players_taps_are_placed_in_stream_order_and_calls_leave_nothing_pending(bus):
    """Many entries waiting at once (read in batches, several per trip, acks
    and reads sharing trips): every tap answered once, a player's bets in
    the order its taps went up, nothing left pending on either stream."""
    red, market, client = bus
    gw = FakeGateway(client, "gwO")
    uid = gw.call("create_user", "olga", 10_000_000, False)
    cell = open_cell(client, ahead_ms=20_000)
    sent = []
    pipe = client.pipeline(transaction=False)
    for _ in range(150):                       # more entries than one read takes
        taps = [gw.tap(uid, cell) for _ in range(3)]
        rows = []
        for t in taps:
            gw.rid += 1
            rows.append((gw.rid, t, None))
            sent.append((gw.rid, t.nonce))
        pipe.xadd(K.taps, {b"g": gw.name, b"x": int(time.time() * 1000) + 30_000,
                           b"d": encode_taps(rows)})
    pipe.execute()
    acks = gw.acks([rid for rid, _ in sent], timeout=60)
    assert all(a[1] is None for a in acks.values()), {a[1] for a in acks.values()}
    by_rid = [acks[rid][2] for rid, _ in sent]
    assert by_rid == sorted(by_rid) and len(set(by_rid)) == len(sent)
    wait_until(lambda: client.xpending(K.taps, K.group)["pending"] == 0, what="the XACKs")
    for _ in range(5):
        assert gw.call("balance", uid) == acks[sent[-1][0]][4]
    assert client.xpending(K.calls, K.group)["pending"] == 0
    assert bets(market.db) == len(sent)
