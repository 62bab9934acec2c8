"""Protocol v1.1 with several markets (SPEC 9): /api/markets, /api/grid
with market_id, subscribe, market_id in frames and history, the keyed tap
payload; and every v1 client's view unchanged. A real server with three
markets, the Python client."""
import json
import urllib.error
import urllib.request

import pytest

from actors.wire import load_session_key, verify_tap
from web.client import HttpError, TapgridClient
from tests.support import wait_until

MARKETS = "BTC-USD/5s,BTC-USD/15s,ETH-USD/5s:band_cents=100"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.serverproc import ServerProcess
    db = str(tmp_path_factory.mktemp("markets") / "tapgrid.db")
    s = ServerProcess(db, "--seed", "1", "--markets", MARKETS).start()
    yield s
    s.kill()


def client(server, **kw):
    c = TapgridClient(server.url, **kw)
    c.guest()
    c.connect()
    return c


def test_api_markets_lists_every_market_the_default_first(server):
    body = TapgridClient(server.url).fetch_markets()
    assert body["default"] == "BTC-USD/5s"
    assert [m["market_id"] for m in body["markets"]] == ["BTC-USD/5s", "BTC-USD/15s", "ETH-USD/5s"]
    eth = body["markets"][2]
    assert eth == {"market_id": "ETH-USD/5s", "asset": "ETH-USD", "column_ms": 5000,
                   "band_cents": 100, "lock_ms": 3000, "horizon_ms": 60000, "market": "open"}


def test_api_grid_per_market_and_unknown_is_400(server):
    c = TapgridClient(server.url)
    default = c.fetch_grid()
    assert default["market_id"] == "BTC-USD/5s" and default["column_ms"] == 5000
    g15 = c.fetch_grid("BTC-USD/15s")
    assert g15["market_id"] == "BTC-USD/15s" and g15["column_ms"] == 15000
    assert all(col["t0"] % 15000 == 0 for col in g15["columns"])
    eth = c.fetch_grid("ETH-USD/5s")
    assert eth["band_cents"] == 100 and eth["price"] < 1_000_000
    with pytest.raises(HttpError) as e:
        c.fetch_grid("DOGE-USD/5s")
    assert e.value.status == 400 and e.value.body["error"] == "bad_request"


def test_a_v1_connection_sees_the_default_market_only(server):
    c = client(server)
    try:
        seen = []
        c.on_event = seen.append
        wait_until(lambda: sum(1 for m in seen if m["type"] == "grid") >= 2, timeout=10,
                   what="grids")
        assert {m.get("market_id") for m in seen if m["type"] in ("grid", "market")} == \
            {"BTC-USD/5s"}
        assert {m["a"] for m in seen if m["type"] == "tick"} <= {"BTC-USD"}
        # a v1 tap (no market_id) is the default market's, and its receipt verifies
        col, lo, mult = c.open_cell(2)
        ack = c.tap(col, lo, 100, 101)
        assert ack["ok"], ack
        (bet,) = c.history()["bets"]
        assert bet["market_id"] == "BTC-USD/5s" and bet["payload"].startswith('{"col":')
        assert verify_tap(load_session_key(c.signer.public_raw), bet["payload"], bet["sig"])
    finally:
        c.close()


def test_subscribe_then_tap_another_market(server):
    c = client(server)
    try:
        c.subscribe(["ETH-USD/5s", "BTC-USD/15s"])
        wait_until(lambda: "ETH-USD" in c.ticks, timeout=10, what="an ETH tick")
        assert c.grids["ETH-USD/5s"]["market_id"] == "ETH-USD/5s"
        assert c.markets_seen["ETH-USD/5s"]["status"] == "open"
        seen = []
        c.on_event = seen.append
        wait_until(lambda: sum(1 for m in seen if m["type"] == "grid") >= 3, timeout=10,
                   what="grids")
        # the default market no longer comes: only what was chosen
        assert {m["market_id"] for m in seen if m["type"] == "grid"} <= \
            {"ETH-USD/5s", "BTC-USD/15s"}
        col, lo, mult = c.open_cell(1, market_id="ETH-USD/5s")
        ack = c.tap(col, lo, 100, 101, market_id="ETH-USD/5s")
        assert ack["ok"], ack
        bet = c.history()["bets"][0]
        assert bet["market_id"] == "ETH-USD/5s"
        assert bet["payload"].startswith('{"market_id":"ETH-USD/5s","col":')
        assert verify_tap(load_session_key(c.signer.public_raw), bet["payload"], bet["sig"])
        wait_until(lambda: any(r["bet"] == ack["bet"] for r in c.results), timeout=30,
                   what="its result")
        result = next(r for r in c.results if r["bet"] == ack["bet"])
        assert result["market_id"] == "ETH-USD/5s"
    finally:
        c.close()


def test_unknown_markets_are_bad_request(server):
    c = client(server)
    try:
        col, lo, mult = c.open_cell(2)
        ack = c.tap(col, lo, 100, 101, market_id="DOGE-USD/5s")
        assert ack == {"type": "ack", "nonce": ack["nonce"], "ok": False, "reason": "bad_request"}
        c.ws.send_text(json.dumps({"type": "subscribe", "markets": ["DOGE-USD/5s"]}))
        c.ws.send_text(json.dumps({"type": "subscribe", "markets": "BTC-USD/5s"}))
        wait_until(lambda: len(c.errors) >= 2, timeout=5, what="two errors")
        assert [e["reason"] for e in c.errors[-2:]] == ["bad_request", "bad_request"]
        # the connection stays, still on the default market
        c.ws.send_text(json.dumps({"type": "ping"}))
        assert c.tap(*c.open_cell(2)[:2], 100, 101)["ok"]
    finally:
        c.close()


def test_metrics_show_every_market_and_the_price_age(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for mid in ("BTC-USD/5s", "BTC-USD/15s", "ETH-USD/5s"):
        assert f'tapgrid_market_state_open{{market_id="{mid}"}} 1.0' in text
    assert 'tapgrid_tap_price_age_seconds{quantile="0.99"}' in text


def test_api_ticks_serves_each_assets_record(server):
    def get(q):
        try:
            with urllib.request.urlopen(server.url + "/api/ticks" + q, timeout=10) as r:
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
