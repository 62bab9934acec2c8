"""Several markets (SPEC 3, v1.1): the market list in the Config, and a
server running several markets over one ledger and one Writer, each with its
own Columns, pricer, status and Resolver, settled from its asset's record."""
import pytest

from actors._config import Config
from actors._markets import market_specs, parse_market_id
from actors._model import WON
from actors._runtime import start_market
from actors.store import audit, open_readonly
from tests.actors.test_resolver import PushFeed
from tests.support import wait_until

THREE = ["BTC-USD/5s", "BTC-USD/15s", "ETH-USD/5s"]


# --- the configuration --------------------------------------------------------------------


def test_default_is_one_btc_market_with_the_top_level_grid():
    (spec,) = market_specs(Config())
    assert spec.market_id == "BTC-USD/5s" and spec.asset == "BTC-USD"
    assert (spec.column_ms, spec.lock_ms, spec.horizon_ms, spec.band_cents, spec.max_bands,
            spec.cell_liability_cap) == (5000, 3000, 60000, 1000, 50, 10_000_000)
    # a v1 config that changed the column keeps working: its one market follows it
    assert market_specs(Config(column_ms=10000))[0].market_id == "BTC-USD/10s"


def test_market_list_from_env_with_overrides():
    cfg = Config.load(env={"TAPGRID_MARKETS": "BTC-USD/5s, ETH-USD/15s:lock_ms=4000:band_cents=50",
                           "TAPGRID_HORIZON_MS": "90000"})
    btc, eth = cfg.market_specs()
    assert btc.market_id == "BTC-USD/5s" and btc.horizon_ms == 90000
    assert (eth.market_id, eth.asset, eth.column_ms, eth.lock_ms, eth.band_cents,
            eth.horizon_ms) == ("ETH-USD/15s", "ETH-USD", 15000, 4000, 50, 90000)


def test_market_tables_from_toml(tmp_path):
    path = tmp_path / "markets.toml"
    path.write_text('[tapgrid]\nmarkets = ["BTC-USD/5s", {market_id = "BTC-USD/30s",'
                    ' horizon_ms = 120000, cell_liability_cap = 5000000}]\n')
    cfg = Config.load(path=str(path), env={})
    assert [(s.market_id, s.horizon_ms, s.cell_liability_cap) for s in cfg.market_specs()] == \
        [("BTC-USD/5s", 60000, 10_000_000), ("BTC-USD/30s", 120000, 5_000_000)]


def test_the_sample_markets_file_loads():
    cfg = Config.load(path="actors/data/markets.toml", env={})
    ids = [s.market_id for s in cfg.market_specs()]
    assert ids[0] == "BTC-USD/5s" and len(ids) == 4 and "ETH-USD/5s" in ids


@pytest.mark.parametrize("markets, message", [
    (["BTC-USD"], "bad market id"),
    (["BTC-USD/0s"], "positive"),
    (["BTC-USD/5s", "BTC-USD/5000ms"], "listed twice"),
    (["BTC-USD/5s:lock_ms=x"], "integer"),
    (["BTC-USD/5s:colour=3"], "unknown settings"),
    (["BTC-USD/5s:horizon_ms=6000"], "horizon_ms"),
    ([{"lock_ms": 1}], "needs market_id"),
])
def test_bad_market_lists_are_refused_at_load(markets, message):
    with pytest.raises(ValueError, match=message):
        Config.load(env={}, overrides={"markets": markets})


def test_market_ids_are_canonical():
    assert parse_market_id("eth-usd/15s") == ("ETH-USD", 15000)
    assert market_specs(Config(markets=["btc-usd/5000ms"]))[0].market_id == "BTC-USD/5s"


# --- a server with several markets ----------------------------------------------------------------

BTC = 9_500_500
ETH = 350_050


def three_markets(system, db_path, **kw):
    feeds = {"BTC-USD": PushFeed(BTC, interval_ms=50), "ETH-USD": PushFeed(ETH, interval_ms=50)}
    cfg = Config(db=db_path, markets=THREE, tick_interval_ms=100, **kw)
    market = start_market(system, cfg, feed=feeds)
    assert market.wait_ready(10, "*")
    return market, feeds


def test_every_market_takes_taps_from_one_balance(system, db_path):
    market, _ = three_markets(system, db_path)
    alice = market.create_user("alice", 10_000)
    acks = []
    for mid in (None, "BTC-USD/15s", "ETH-USD/5s"):
        col, lo, mult = market.pick_cell(market_id=mid)
        acks.append(market.tap(alice, col, lo, 1000, mult, market_id=mid).get(5))
    assert [a.reason for a in acks] == [None, None, None]
    assert [a.balance for a in acks] == [9000, 8000, 7000]      # one ledger
    rows = open_readonly(db_path).execute("SELECT b.id, m.name, b.mkt & 1 FROM bets b"
                                          " JOIN markets m ON m.id = b.mkt >> 1 ORDER BY b.id")
    # the v1 tap (no market_id) is the default market's, unkeyed
    assert rows.fetchall() == [(1, "BTC-USD/5s", 0), (2, "BTC-USD/15s", 1), (3, "ETH-USD/5s", 1)]
    # its grid is its own: ETH's bands are ETH's prices, 15 s columns are 15 s apart
    eth = market.unit("ETH-USD/5s").ctx.grid
    assert eth.market_id == "ETH-USD/5s" and abs(eth.price - ETH) < 1000
    cols15 = sorted(market.unit("BTC-USD/15s").ctx.grid.columns)
    assert all(b - a == 15000 for a, b in zip(cols15, cols15[1:]))


def test_an_unknown_market_is_bad_request(system, db_path):
    market, _ = three_markets(system, db_path)
    alice = market.create_user("alice", 10_000)
    col, lo, mult = market.pick_cell()
    assert market.tap(alice, col, lo, 1000, market_id="DOGE-USD/5s").get(5).reason == \
        "bad_request"
    assert market.balance(alice) == 10_000


def test_each_market_settles_from_its_asset_record(system, db_path):
    market, feeds = three_markets(system, db_path)
    alice = market.create_user("alice", 100_000)
    # a band that holds the price wins at once, in each market
    ids = {}
    for mid, price, band in (("BTC-USD/5s", BTC, 1000), ("BTC-USD/15s", BTC, 1000),
                             ("ETH-USD/5s", ETH, 100)):
        unit = market.unit(mid)
        grid = unit.ctx.grid
        lo = grid.price // band * band
        col = min(c for c in grid.columns if lo in grid.columns[c]
                  and market.ctx.now() < c - unit.spec.lock_ms - 500)
        ack = market.tap(alice, col, lo, 500, grid.columns[col][lo], market_id=mid).get(5)
        assert ack.reason is None, (mid, ack)
        ids[mid] = ack.bet
    settled = {mid: market.wait_settled(bet, 40) for mid, bet in ids.items()}
    assert {mid: r["outcome"] for mid, r in settled.items()} == dict.fromkeys(ids, "won")
    assert {mid: r["market_id"] for mid, r in settled.items()} == {m: m for m in ids}
    conn = open_readonly(db_path)
    # each asset's record in its own table
    assert conn.execute("SELECT count(*) FROM ticks WHERE price > 1000000").fetchone()[0] > 0
    assert conn.execute("SELECT max(price) FROM ticks_eth_usd").fetchone()[0] < 1_000_000
    assert audit(db_path) == []


def test_a_stale_asset_suspends_only_its_markets(system, db_path):
    market, feeds = three_markets(system, db_path)
    alice = market.create_user("alice", 100_000)
    eth = market.unit("ETH-USD/5s")
    col, lo, mult = market.pick_cell(market_id="ETH-USD/5s")
    feeds["ETH-USD"].pause()
    wait_until(lambda: not eth.ctx.status.is_open, what="ETH suspended")
    assert eth.ctx.status.reason == "stale_price"
    assert market.status.is_open and market.unit("BTC-USD/15s").ctx.status.is_open
    assert market.tap(alice, col, lo, 500, market_id="ETH-USD/5s").get(5).reason == \
        "market_suspended"
    c2 = market.pick_cell(market_id="BTC-USD/15s")
    assert market.tap(alice, *c2[:2], 500, market_id="BTC-USD/15s").get(5).reason is None
    assert [m["market"] for m in market.markets()["markets"]] == ["open", "open", "suspended"]
    feeds["ETH-USD"].resume()
    wait_until(lambda: eth.ctx.status.is_open, what="ETH reopened")


def test_disk_low_suspends_every_market(system, db_path):
    market, _ = three_markets(system, db_path)
    market.root.status.set("disk_low", True)
    assert all(u.ctx.status.reason == "disk_low" for u in market.units)
    market.root.status.set("disk_low", False)
    assert all(u.ctx.status.is_open for u in market.units)


def test_liability_is_per_market(system, db_path):
    # the same column time and band in two BTC markets: separate caps
    market, _ = three_markets(system, db_path, cell_liability_cap=2000)
    alice = market.create_user("alice", 100_000)
    a5 = market.unit("BTC-USD/5s").ctx
    a15 = market.unit("BTC-USD/15s").ctx
    now = market.ctx.now()
    col = min(c for c in set(a5.grid.columns) & set(a15.grid.columns) if now < c - 3500)
    lo = a5.grid.price // 1000 * 1000 + 2000
    m5, m15 = a5.grid.columns[col][lo], a15.grid.columns[col][lo]
    stake = 2000 * 100 // max(m5, m15)         # one bet fills most of a cap
    assert market.tap(alice, col, lo, stake, 101).get(5).reason is None
    assert market.tap(alice, col, lo, stake, 101).get(5).reason == "limit"
    assert market.tap(alice, col, lo, stake, 101, market_id="BTC-USD/15s").get(5).reason is None


def test_restart_reloads_open_bets_per_market(system, db_path):
    market, _ = three_markets(system, db_path, cell_liability_cap=2000)
    alice = market.create_user("alice", 100_000)
    a15 = market.unit("BTC-USD/15s").ctx
    col = max(a15.grid.columns)
    lo = a15.grid.price // 1000 * 1000 + 3000
    mult = a15.grid.columns[col][lo]
    stake = 2000 * 100 // mult
    assert market.tap(alice, col, lo, stake, market_id="BTC-USD/15s").get(5).reason is None
    system.stop()
    from engine import ActorSystem
    again = ActorSystem()
    try:
        market2, _ = three_markets(again, db_path, cell_liability_cap=2000)
        ctx15 = market2.unit("BTC-USD/15s").ctx
        # the open bet's liability came back under its market's key, not the default's
        assert ctx15.ledger.liability((col, lo, ctx15.number)) == stake * mult // 100
        assert ctx15.ledger.liability((col, lo)) == 0
    finally:
        again.stop()


def test_v1_outcomes_unchanged_by_the_market_filter(system, db_path):
    # one market, the v1 configuration: the Resolver settles exactly as before
    feed = PushFeed(BTC, interval_ms=50)
    market = start_market(system, Config(db=db_path, tick_interval_ms=100), feed=feed)
    assert market.wait_ready(10)
    alice = market.create_user("alice", 10_000)
    grid = market.grid
    lo = grid.price // 1000 * 1000
    col = min(c for c in grid.columns if lo in grid.columns[c] and market.ctx.now() < c - 3500)
    ack = market.tap(alice, col, lo, 500, grid.columns[col][lo]).get(5)
    settled = market.wait_settled(ack.bet, 30)
    assert settled["outcome"] == "won" and settled["payload"].startswith('{"col":')
    row = open_readonly(db_path).execute("SELECT outcome, mkt FROM bets").fetchone()
    assert row == (WON, 0)
