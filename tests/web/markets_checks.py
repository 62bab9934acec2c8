"""Protocol v1.1 with several markets (SPEC 9), as a player sees it: the
checks shared by the one-process server (tests/web/gateway/
test_markets_protocol.py) and the split (tests/web/test_split_markets.py),
which must answer alike. Each takes Python clients (web/client.py) of a
server started with ``--markets MARKETS``."""
import json
import urllib.error
import urllib.request

import pytest

from actors.wire import load_session_key, verify_tap
from tests.support import wait_until
from web.client import HttpError

MARKETS = "BTC-USD/5s,BTC-USD/15s,ETH-USD/5s:band_cents=100"
IDS = ["BTC-USD/5s", "BTC-USD/15s", "ETH-USD/5s"]
ETH = {"market_id": "ETH-USD/5s", "asset": "ETH-USD", "column_ms": 5000, "band_cents": 100,
       "lock_ms": 3000, "horizon_ms": 60000, "market": "open"}


def check_markets_and_grids(c):
    """``/api/markets`` lists every market, the default first;
    ``/api/grid?market_id=`` is each one's grid; an unknown one is 400."""
    body = wait_until(lambda: _all_open(c.fetch_markets()), timeout=20, what="every market open")
    assert body["default"] == "BTC-USD/5s"
    assert [m["market_id"] for m in body["markets"]] == IDS
    assert body["markets"][2] == ETH
    default = c.fetch_grid()
    assert default["market_id"] == "BTC-USD/5s" and default["column_ms"] == 5000
    g15 = wait_until(lambda: _with_columns(c.fetch_grid("BTC-USD/15s")), timeout=10,
                     what="the 15 s grid")
    assert g15["market_id"] == "BTC-USD/15s" and g15["column_ms"] == 15000
    assert all(col["t0"] % 15000 == 0 for col in g15["columns"])
    eth = wait_until(lambda: _with_columns(c.fetch_grid("ETH-USD/5s")), timeout=10,
                     what="the ETH grid")
    assert eth["band_cents"] == 100 and eth["price"] < 1_000_000     # ETH's price, not BTC's
    with pytest.raises(HttpError) as e:
        c.fetch_grid("DOGE-USD/5s")
    assert e.value.status == 400 and e.value.body["error"] == "bad_request"
    assert e.value.body["detail"]


def _all_open(body):
    return body if all(m["market"] == "open" for m in body["markets"]) else None


def _with_columns(grid):
    return grid if grid["columns"] else None


def check_v1_connection(c):
    """A v1 client sees the default market only, and its tap (no
    ``market_id`` key) is the default market's with a receipt that verifies."""
    seen = []
    c.on_event = seen.append
    wait_until(lambda: sum(1 for m in seen if m["type"] == "grid") >= 2, timeout=10,
               what="grids")
    assert {m.get("market_id") for m in seen if m["type"] in ("grid", "market")} <= \
        {"BTC-USD/5s"}
    assert {m["a"] for m in seen if m["type"] == "tick"} <= {"BTC-USD"}
    grid = next(m for m in seen if m["type"] == "grid")
    assert grid["market_id"] == "BTC-USD/5s" and grid["price"] > 1_000_000
    col, lo, mult = wait_until(lambda: c.open_cell(2), timeout=10, what="an open cell")
    ack = c.tap(col, lo, 100, 101)
    assert ack["ok"], ack
    (bet,) = c.history()["bets"]
    assert bet["market_id"] == "BTC-USD/5s" and bet["payload"].startswith('{"col":')
    assert verify_tap(load_session_key(c.signer.public_raw), bet["payload"], bet["sig"])


def check_subscribe_then_tap(c, watcher=None):
    """``watcher`` (default: ``c``) subscribes to two other markets and
    gets only theirs; ``c`` taps ETH: acked, in the history with its
    market_id, a receipt that verifies, a result with its market_id."""
    watcher = watcher or c
    for who in dict.fromkeys((watcher, c)):
        who.subscribe(["ETH-USD/5s", "BTC-USD/15s"])
        wait_until(lambda who=who: "ETH-USD" in who.ticks, timeout=10, what="an ETH tick")
        assert who.grids["ETH-USD/5s"]["market_id"] == "ETH-USD/5s"
        assert who.markets_seen["ETH-USD/5s"] == {"type": "market", "status": "open",
                                                  "reason": None, "market_id": "ETH-USD/5s"}
    seen = []
    watcher.on_event = seen.append
    wait_until(lambda: sum(1 for m in seen if m["type"] == "grid") >= 3, timeout=10,
               what="grids after subscribing")
    # the default market no longer comes: only what was chosen
    assert {m["market_id"] for m in seen if m["type"] == "grid"} <= {"ETH-USD/5s", "BTC-USD/15s"}
    col, lo, mult = wait_until(lambda: c.open_cell(1, market_id="ETH-USD/5s"), timeout=10,
                               what="an open ETH cell")
    ack = c.tap(col, lo, 100, 101, market_id="ETH-USD/5s")
    assert ack["ok"], ack
    bet = c.history()["bets"][0]
    assert (bet["bet"], bet["market_id"], bet["col"], bet["lo"]) == \
        (ack["bet"], "ETH-USD/5s", col, lo)
    assert bet["payload"].startswith('{"market_id":"ETH-USD/5s","col":')
    assert verify_tap(load_session_key(c.signer.public_raw), bet["payload"], bet["sig"])
    wait_until(lambda: any(r["bet"] == ack["bet"] for r in c.results), timeout=40,
               what="its result")
    result = next(r for r in c.results if r["bet"] == ack["bet"])
    assert result["market_id"] == "ETH-USD/5s" and result["outcome"] in ("won", "lost")


def check_unknown_markets(c):
    """A tap or a subscription naming an unknown market is ``bad_request``;
    the connection stays, on the default market, and taps on."""
    col, lo, mult = wait_until(lambda: c.open_cell(2), timeout=10, what="an open cell")
    ack = c.tap(col, lo, 100, 101, market_id="DOGE-USD/5s")
    assert ack == {"type": "ack", "nonce": ack["nonce"], "ok": False, "reason": "bad_request"}
    c.ws.send_text(json.dumps({"type": "subscribe", "markets": ["DOGE-USD/5s"]}))
    c.ws.send_text(json.dumps({"type": "subscribe", "markets": "BTC-USD/5s"}))
    wait_until(lambda: len(c.errors) >= 2, timeout=5, what="two errors")
    assert [e["reason"] for e in c.errors[-2:]] == ["bad_request", "bad_request"]
    assert c.connected.is_set() and c.reconnects == 0
    cell = wait_until(lambda: c.open_cell(2), timeout=10, what="an open cell")
    assert c.tap(cell[0], cell[1], 100, 101)["ok"]


def check_markets_in_metrics(url):
    """``/metrics`` has every market's state; returns its text."""
    def text():
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            t = r.read().decode()
        return t if all(f'tapgrid_market_state_open{{market_id="{mid}"}} 1.0' in t
                        for mid in IDS) else None
    return wait_until(text, timeout=10, what="every market open in /metrics")


def check_ticks_per_asset(url):
    """``/api/ticks?asset=`` serves each asset's price record; an unknown
    asset is 400 ``bad_request``."""
    def get(q):
        try:
            with urllib.request.urlopen(url + "/api/ticks" + q, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    wait_until(lambda: len(get("?asset=ETH-USD")[1]["ticks"]) > 2, timeout=10, what="ETH ticks")
    status, eth = get("?asset=ETH-USD")
    assert status == 200 and all(p < 1_000_000 for _, p in eth["ticks"])
    status, btc = get("")                               # the default market's asset
    assert status == 200 and all(p > 1_000_000 for _, p in btc["ticks"])
    status, body = get("?asset=DOGE-USD")
    assert status == 400 and body["error"] == "bad_request"
