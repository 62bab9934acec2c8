"""The split under failure (issue 10): a market, two gateways and Redis as
real processes, players tapping through both gateways all along.

- the market killed (-9) and restarted: players stay connected, taps in
  the gap are answered (``overloaded``, or acked once it is back), the new
  market resumes from the stream, 0 acked bets lost, the audit is clean;
- one gateway killed (-9): the other's players see nothing; the dead
  one's players sign back in through the other with the same session;
- Redis restarted: market and gateways reconnect by themselves, 0 acked
  lost, and no replay of an acked tap is taken;
- a slow gateway (stopped, SIGSTOP) cannot slow the market: the other
  gateway's players keep being acked; Redis cuts the slow one's broadcast
  feed (it drops ticks) but every ack waits for it in its inbox.
"""
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from actors.store import audit
from tests.serverproc import ROOT, GatewayProcess
from tests.support import wait_until
from tests.web.splitrig import Rig

GAP_REASONS = {"overloaded", "market_suspended", "column_closed"}


@pytest.fixture
def rig(tmp_path):
    rigs = []

    def make(**kw):
        r = Rig(tmp_path, **kw)
        rigs.append(r)
        return r.start()
    yield make
    for r in rigs:
        r.close()


def metrics(gw):
    with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("wait_ms", [1500, 15000])
def test_market_killed_and_restarted_under_two_gateways(rig, wait_ms):
    """With a short wait the gap's taps are refused; with one longer than
    the restart they wait in the stream and the new market takes them."""
    r = rig(gateways=2, env={"TAPGRID_BUS_TAP_WAIT_MS": str(wait_ms)})
    r.players(3)
    r.tapping()
    r.wait_acked(30, "up")
    r.kill9(r.market)
    r.phase("gap")
    if wait_ms < 5000:
        wait_until(lambda: sum(1 for a in r.answers("gap") if a.get("reason") == "overloaded")
                   >= 6, timeout=30, what="taps in the gap answered overloaded")
    else:
        wait_until(lambda: sum(1 for e in r.log if e[0] == "gap") >= 30, timeout=30,
                   what="taps sent in the gap")
    r.start_market()
    r.phase("after")
    for gw in (0, 1):
        r.wait_acked(10, "after", gw=gw)
    r.stop_tapping()

    assert all(p.c.reconnects == 0 and p.c.connected.is_set() for p in r.players_), \
        "a player was disconnected"
    gap = r.answers("gap")
    assert all(a["ok"] or a.get("reason") in GAP_REASONS for a in gap), gap
    if wait_ms > 5000:
        assert any(a["ok"] for a in gap), "no tap of the gap was taken by the new market"
    assert not [a for a in r.answers() if a.get("reason") == "lost"]
    acked = r.check_nothing_acked_was_lost()
    assert r.market.stop() == 0
    assert audit(r.db) == []
    # Taps the market may have committed as it died waited for its restart:
    # none was called overloaded while its bet stands.
    late = sum(metrics(gw).get("tapgrid_bus_late_acks_total", 0) for gw in r.gateways)
    assert late == 0
    print(f"\nmarket kill -9: {len(r.log)} taps, {acked} acked, {len(gap)} in the gap"
          f" ({sum(1 for a in gap if a['ok'])} acked after the restart); late acks {late:.0f}")


@pytest.mark.timeout(180)
def test_gateway_killed_the_other_gateways_players_see_nothing(rig):
    r = rig(gateways=2)
    r.players(3)
    r.tapping()
    r.wait_acked(20, "up")
    r.kill9(r.gateways[0])
    r.phase("one-gateway")
    r.wait_acked(30, "one-gateway", gw=1)
    # The dead gateway's players come back through the other one, with the
    # sessions they had (sessions live in Redis, not in a gateway).
    moved = [p for p in r.players_ if p.gw == 0]
    for p in moved:
        p.c.ws_url = r.gateways[1].url.replace("http", "ws") + "/ws"
        p.c.base_url = r.gateways[1].url
        p.c.port = r.gateways[1].port
    wait_until(lambda: all(p.c.connected.is_set() for p in moved), timeout=20,
               what="the dead gateway's players back through the other")
    r.phase("moved")
    r.wait_acked(10, "moved", gw=0)
    r.stop_tapping()

    others = [p for p in r.players_ if p.gw == 1]
    assert all(p.c.reconnects == 0 for p in others), "the other gateway's players were disturbed"
    bad = [a for a in r.answers(gw=1) if not a["ok"]]
    assert not bad, bad[:5]
    assert all(p.c.reconnects >= 1 for p in moved)
    r.check_nothing_acked_was_lost()
    assert r.market.stop() == 0
    assert audit(r.db) == []


@pytest.mark.timeout(240)
def test_redis_restarted_everyone_reconnects_and_no_replay_is_taken(rig):
    r = rig(gateways=2)
    r.players(2)
    r.tapping()
    r.wait_acked(20, "up")
    r.redis.kill()
    r.phase("down")
    wait_until(lambda: len(r.answers("down")) >= 10, timeout=30, what="answers while Redis is down")
    r.redis.start()
    r.phase("back")
    for gw in (0, 1):
        r.wait_acked(10, "back", gw=gw, timeout=40)
    r.stop_tapping()

    assert all(p.c.reconnects == 0 for p in r.players_), "players were disconnected"
    down = r.answers("down")
    assert any(a.get("reason") == "overloaded" for a in down), down[:5]
    assert all(a["ok"] or a.get("reason") in GAP_REASONS | {"expired"} for a in down), down
    r.check_nothing_acked_was_lost()
    before = len(r.stored())
    # A gateway started after Redis came back empty finds the market's state
    # (its start waits for /healthz: the market open, as this gateway hears it).
    late = GatewayProcess(str(r.tmp / "late-gateway.db"), "--redis", r.redis.url, env=r.env)
    r.gateways.append(late.start())

    # Every acked frame again, after one more restart: none is taken.
    r.redis.kill()
    r.redis.start()
    replies = []
    acked = [e for e in r.log if e[4]["ok"]]
    for p in r.players_:
        p.c.on_event = lambda msg: replies.append(msg) if msg.get("type") == "ack" else None
    for e in acked:
        r.players_[e[1]].c.send_raw(e[2])
    wait_until(lambda: len(replies) >= len(acked), timeout=60, what="answers to the replays")
    assert not [m for m in replies if m["ok"]], "a replay was taken"
    assert {m.get("reason") for m in replies} <= {"replay", "expired", "overloaded"}
    assert len(r.stored()) == before
    assert r.market.stop() == 0
    assert audit(r.db) == []
    print(f"\nredis restart: {len(r.log)} taps, {len(acked)} acked, {len(replies)} replays refused")


def healthz(gw):
    try:
        with urllib.request.urlopen(gw.url + "/healthz", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.timeout(120)
def test_a_gateway_that_read_an_empty_state_still_hears_the_market(rig):
    """Redis back empty, a gateway started before the market wrote its state
    again: a status (and the market list) is published only when it changes,
    so pub/sub alone would never bring it; the gateway reads the state again
    until it has them, and becomes healthy."""
    r = rig(gateways=1)
    os.kill(r.market.pid, signal.SIGSTOP)       # it writes nothing meanwhile
    try:
        r.redis.kill()
        r.redis.start()
        late = GatewayProcess(str(r.tmp / "late-gateway.db"), "--redis", r.redis.url, env=r.env)
        r.gateways.append(late.start(wait_open=False))
        assert healthz(late) == 503             # nothing heard: the market is away
    finally:
        os.kill(r.market.pid, signal.SIGCONT)
    wait_until(lambda: healthz(late) == 200, timeout=30, what="the late gateway healthy")
    from web.client import TapgridClient
    c = TapgridClient(late.url)
    c.guest()
    c.connect()
    try:
        assert c.wait_for(lambda: c.grid is not None, 10)
        col, lo, mult = wait_until(lambda: c.open_cell(2), timeout=10, what="an open cell")
        assert c.tap(col, lo, 100, 101)["ok"]
    finally:
        c.close()


@pytest.mark.timeout(180)
def test_a_slow_gateway_drops_ticks_never_acks(rig):
    r = rig(gateways=2)
    # A small pub/sub budget: a subscriber this far behind is cut off by Redis.
    red = r.redis.client()
    red.config_set("client-output-buffer-limit", "pubsub 32kb 16kb 1")
    r.players(2)
    r.tapping()
    r.wait_acked(20, "up")
    slow = r.gateways[1]
    before = metrics(slow).get("tapgrid_bus_resubscribes_total", 0)
    os.kill(slow.pid, signal.SIGSTOP)
    try:
        r.phase("stalled")
        # The market is not slowed: the other gateway's players keep being acked.
        r.wait_acked(40, "stalled", gw=0, timeout=20)
        inbox = red.xlen("tapgrid:bus:gw:gw1")
        wait_until(lambda: red.xlen("tapgrid:bus:gw:gw1") > inbox or inbox > 0, timeout=10,
                   what="acks waiting in the stalled gateway's inbox")
    finally:
        os.kill(slow.pid, signal.SIGCONT)
    r.phase("resumed")
    r.wait_acked(10, "resumed", gw=1)
    r.stop_tapping()

    assert not [a for a in r.answers(gw=0) if not a["ok"]], "the fast gateway's taps suffered"
    stalled = r.answers("stalled", gw=1)
    # Its taps were read by the market while it slept: the acks waited for it.
    assert stalled and all(a["ok"] for a in stalled), stalled[:5]
    r.check_nothing_acked_was_lost()
    wait_until(lambda: metrics(slow).get("tapgrid_bus_resubscribes_total", 0) > before,
               timeout=10, what="the slow gateway's broadcast feed cut off and resubscribed")
    assert all(p.c.reconnects == 0 for p in r.players_)
    assert r.market.stop() == 0
    assert audit(r.db) == []


def test_a_gateway_holds_no_database_and_needs_redis(tmp_path, rig):
    r = rig(gateways=1)
    gw = r.gateways[0]
    r.players(1)
    c = r.players_[0].c
    col, lo, mult = c.open_cell()
    assert c.tap(col, lo, 500)["ok"]
    assert c.me()["balance"] == c.balance
    assert c.history()["bets"][0]["stake"] == 500
    ticks = c.request("GET", "/api/ticks", auth=False)
    assert ticks["ticks"], "the price record comes through the market"
    assert not os.path.exists(gw.db), "a gateway opened a database"
    out = subprocess.run([sys.executable, "-m", "web.cli", "gateway", "--port", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--redis" in out.stderr
    assert json.loads(urllib.request.urlopen(gw.url + "/healthz").read())["status"] == "ok"


def test_the_market_serves_its_own_health_and_metrics(tmp_path):
    from tests.serverproc import free_port
    port = free_port()
    r = Rig(tmp_path, gateways=1, env={"TAPGRID_MARKET_PORT": str(port)})
    try:
        r.start()
        r.players(1)
        c = r.players_[0].c
        col, lo, mult = c.open_cell()
        assert c.tap(col, lo, 500)["ok"]
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: json.loads(urllib.request.urlopen(url + "/healthz").read())["status"]
                   == "ok", timeout=10, what="the market's /healthz")
        text = urllib.request.urlopen(url + "/metrics").read().decode()
        assert "tapgrid_writer_batch_size_count" in text and "tapgrid_market_open 1.0" in text
        assert 'tapgrid_mailbox_depth{actor="writer"}' in text
    finally:
        r.close()


@pytest.mark.timeout(120)
def test_a_player_new_to_a_gateway_while_the_market_is_away_is_told_to_retry(rig):
    r = rig(gateways=2)
    first = r.players(1)[0].c           # on gateway 0; gateway 1 never heard of them
    r.kill9(r.market)
    from web.client import TapgridClient
    other = TapgridClient(r.gateways[1].url, signer=first.signer, backoff_base=0.2,
                          backoff_cap=1.0)
    other.token = first.token
    other.connect(wait=False)
    # Its balance is the market's to tell: closed 1013 (try again later), and
    # the client keeps trying by itself.
    assert not other.connected.wait(6)
    r.start_market()
    assert other.connected.wait(30), "the player got in once the market was back"
    assert other.wait_for(lambda: other.grid is not None, 10)
    seen = []

    def tapped():
        # The market just started: suspended until its first grid is priced.
        cell = other.open_cell()
        seen.append(other.tap(cell[0], cell[1], 100) if cell else {"ok": False})
        return seen[-1]["ok"]
    wait_until(tapped, timeout=30, interval=0.2, what="a tap acked through the new gateway")
    assert all(a.get("reason") in (None, "market_suspended", "column_closed") for a in seen), seen
    other.close()
    assert "Traceback" not in r.gateways[1].log()



@pytest.mark.timeout(120)
def test_both_gateways_show_the_markets_board(rig):
    """The wins-and-leaders board is the market's (``actors.Board``),
    published once and relayed: both gateways show the same one."""
    r = rig(gateways=2, env={"TAPGRID_FEED_EVERY_MS": "250"})
    r.players(1)
    r.tapping()

    def board(gw):
        with urllib.request.urlopen(r.gateways[gw].url + "/api/feed", timeout=10) as resp:
            return json.loads(resp.read())

    wait_until(lambda: board(0)["wins"] and board(0) == board(1), timeout=60,
               what="the same board, with a win, on both gateways")
    r.stop_tapping()


@pytest.mark.timeout(120)
def test_a_top_up_limit_holds_whichever_gateway_asks(rig):
    """A demo top-up is the market's one transaction: after one through
    gateway 0, the same guest asking through gateway 1 is refused."""
    from tests.web.http.test_player_api import post, spend_down
    from web.client import TapgridClient
    r = rig(gateways=2, env={"TAPGRID_GUEST_CREDIT": "1500", "TAPGRID_TOPUP_EVERY_MS": "600000"})
    c = TapgridClient(r.gateways[0].url)
    c.guest()
    c.connect()
    assert c.wait_for(lambda: c.grid is not None, 10)
    spend_down(c)
    status, body, _ = post(r.gateways[0].url, "/api/topup", c.token)
    assert status == 200 and body["balance"] == 1500, body
    spend_down(c)
    status, body, headers = post(r.gateways[1].url, "/api/topup", c.token)
    assert (status, body["error"]) == (429, "rate_limited"), body
    c.close()
