"""Price feeds: the sim walk, replay of recorded ticks, and the Coinbase and
Binance adapters against local servers that play the exchange."""
import doctest
import json
import math
import random
import struct
import time
from statistics import pstdev

import gevent
import pytest
from gevent import socket
from gevent.queue import Queue
from geventwebsocket.websocket import WebSocket

from actors.feeds import _local as _feeds
from actors.feeds._local import (SAMPLE_TICKS, BinanceFeed, CoinbaseFeed, ReplayFeed,
                           SimFeed, Tick, iso_to_ms, load_ticks, make_feed,
                           parse_price_cents, ticks_of)
from tests.support import free_port, wait_until

FAST = dict(backoff_base=0.01, backoff_cap=0.05, connect_timeout=5)


@pytest.fixture
def exchange(local_ws_server):
    """exchange(app) -> ws:// URL of a local server playing the exchange."""
    return lambda app: local_ws_server(app) + "/"


def drop(ws):
    """Cut the TCP connection without a close frame, like a dying exchange."""
    ws.handler.socket.shutdown(socket.SHUT_RDWR)


def run_feed(feed, sink=None):
    ticks = [] if sink is None else sink
    return ticks, gevent.spawn(feed.run, ticks.append)


def stop_feed(feed, greenlet):
    feed.stop()
    greenlet.join(timeout=5)
    assert greenlet.dead and greenlet.successful(), greenlet.exception


class RecordingRandom(random.Random):
    """A real Random that also notes the upper bound of each backoff draw."""

    def __init__(self):
        super().__init__(1)
        self.bounds = []

    def uniform(self, a, b):
        self.bounds.append(b)
        return super().uniform(a, b)


def test_module_example_runs():
    assert doctest.testmod(_feeds).failed == 0


# -- parsing --------------------------------------------------------------

@pytest.mark.parametrize("text, cents", [
    ("99728.83", 9972883), ("99728.8", 9972880), ("99728", 9972800),
    ("99728.83000000", 9972883), ("0.01", 1), ("00042.10", 4210),
    # sub-cent digits round half-even (documented in parse_price_cents)
    ("1.005", 100), ("1.015", 102), ("1.0051", 101), ("99728.835", 9972884),
    ("99728.825", 9972882), ("0.015", 2),
])
def test_parse_price_cents(text, cents):
    assert parse_price_cents(text) == cents


@pytest.mark.parametrize("text", [
    "0.005", "0", "0.00", "-1.00", "1e5", "NaN", "Infinity", "", " 1.00",
    "1.", ".5", "1,000.00", "+1.00", 99728.83, None, 9972883,
])
def test_parse_price_cents_rejects(text):
    with pytest.raises(ValueError):
        parse_price_cents(text)


@pytest.mark.parametrize("text, ms", [
    ("2024-12-07T18:00:00.542551Z", 1733594400542),
    ("2024-12-07T18:00:00Z", 1733594400000),
    ("2024-12-07T18:00:00.5Z", 1733594400500),
    ("2024-12-07T18:00:00.999999999Z", 1733594400999),   # truncated, not rounded up
    ("2024-12-07T19:00:00.100+01:00", 1733594400100),
    ("2024-12-07T13:00:00.100-05:00", 1733594400100),
    ("1970-01-01T00:00:00.001Z", 1),
])
def test_iso_to_ms(text, ms):
    assert iso_to_ms(text) == ms


@pytest.mark.parametrize("text", [
    "2024-12-07T18:00:00.542551", "2024-13-07T18:00:00Z", "2024-12-07 18:00:00Z",
    "2024-12-07T18:00:60Z", "yesterday", "", 1733594400542,
])
def test_iso_to_ms_rejects(text):
    with pytest.raises(ValueError):
        iso_to_ms(text)


# -- sim ------------------------------------------------------------------

def test_sim_prices_are_seeded():
    a, b, c = (SimFeed(seed=s) for s in (42, 42, 43))
    pa = [a.next_price() for _ in range(500)]
    assert pa == [b.next_price() for _ in range(500)]
    assert pa != [c.next_price() for _ in range(500)]
    assert pa[0] == 9_500_000
    assert all(type(p) is int and p > 0 for p in pa)
    assert len(set(pa)) > 400


def test_sim_volatility_is_btc_like():
    # 0.6 annualised -> per-step stdev of log returns sigma*sqrt(dt).
    prices = ticks_of(5, 20_001, interval_ms=1000)
    rets = [math.log(b / a) for a, b in zip(prices, prices[1:])]
    expected = 0.6 * math.sqrt(1000 / (365.25 * 24 * 3600 * 1000))
    assert 0.95 * expected < pstdev(rets) < 1.05 * expected


def test_sim_emits_at_roughly_the_configured_rate():
    feed = SimFeed(seed=1, interval_ms=20)
    assert feed.expected_interval_ms == 20
    ticks, g = run_feed(feed)
    t0 = time.monotonic()
    wait_until(lambda: len(ticks) >= 20, timeout=10, what="20 sim ticks")
    elapsed = time.monotonic() - t0
    stop_feed(feed, g)
    # Paced, not bursted: 20 ticks need about 19 intervals.
    assert elapsed > 0.5 * 19 * 0.020
    assert [t.price for t in ticks] == ticks_of(1, len(ticks), interval_ms=20)
    assert all(a.ts <= b.ts for a, b in zip(ticks, ticks[1:]))
    assert feed.stats.ticks == len(ticks) and feed.stats.last_tick == ticks[-1]


def test_sim_ts_comes_from_the_clock():
    feed = SimFeed(seed=1, interval_ms=10, clock=lambda: 1_733_594_400.123)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(ticks) >= 2)
    stop_feed(feed, g)
    assert {t.ts for t in ticks} == {1_733_594_400_123}


def test_sim_pause_and_resume_keep_the_greenlet():
    feed = SimFeed(seed=3, interval_ms=10)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(ticks) >= 3)
    feed.pause()
    n = len(ticks)
    gevent.sleep(0.15)  # under test: fifteen intervals pass with no tick
    assert len(ticks) <= n + 1 and not g.dead and feed.paused
    n = len(ticks)
    feed.resume()
    wait_until(lambda: len(ticks) >= n + 3, what="ticks after resume")
    feed.pause()
    wait_until(lambda: not g.dead)
    stop_feed(feed, g)   # a paused feed still stops


def test_stop_interrupts_a_long_wait():
    feed = SimFeed(interval_ms=60_000)
    ticks, g = run_feed(feed)
    wait_until(lambda: ticks)
    stop_feed(feed, g)
    assert len(ticks) == 1


# -- replay ---------------------------------------------------------------

def test_shipped_sample_is_a_few_minutes_of_btc():
    ticks = load_ticks(SAMPLE_TICKS)
    assert len(ticks) > 300
    assert ticks[-1].ts - ticks[0].ts >= 120_000
    assert all(a.ts <= b.ts for a, b in zip(ticks, ticks[1:]))
    assert all(1_000_000 < t.price < 100_000_000 for t in ticks)


def test_replay_sample_rebased_and_sped_up():
    recorded = load_ticks(SAMPLE_TICKS)
    feed = ReplayFeed(SAMPLE_TICKS, speed=2000, loop=False)
    ticks = []
    before = int(time.time() * 1000)
    feed.run(ticks.append)          # loop=False: returns at the end of the file
    assert [t.price for t in ticks] == [t.price for t in recorded]
    assert before <= ticks[0].ts <= int(time.time() * 1000)
    assert [t.ts - ticks[0].ts for t in ticks] == \
        [round((r.ts - recorded[0].ts) / 2000) for r in recorded]


def write(tmp_path, text):
    path = tmp_path / "ticks.csv"
    path.write_text(text)
    return str(path)


def test_replay_temp_file_order_gaps_and_loop(tmp_path):
    path = write(tmp_path, "ts_ms,price_cents\n# recorded by hand\n"
                           "1000,500000\n\n1100,500100,0.5\n1400,499900\n")
    feed = ReplayFeed(path, speed=10)
    assert feed.expected_interval_ms == 20   # median gap 200 ms / 10
    ticks, g = run_feed(feed)
    t0 = time.monotonic()
    wait_until(lambda: len(ticks) >= 6, what="two passes")
    elapsed = time.monotonic() - t0
    stop_feed(feed, g)
    assert [t.price for t in ticks[:6]] == [500000, 500100, 499900] * 2
    assert all(a.ts < b.ts for a, b in zip(ticks, ticks[1:]))  # rebased across the wrap
    assert ticks[1].ts - ticks[0].ts == 10 and ticks[2].ts - ticks[1].ts == 30
    assert elapsed > 0.5 * (0.040 + 0.020 + 0.040)   # paced by recorded gaps / speed


def test_replay_without_rebase_keeps_recorded_times(tmp_path):
    path = write(tmp_path, "1000,500000\n1001,500100\n1001,500200\n")
    ticks = []
    ReplayFeed(path, speed=100, loop=False, rebase=False).run(ticks.append)
    assert ticks == [Tick(500000, 1000), Tick(500100, 1001), Tick(500200, 1001)]


@pytest.mark.parametrize("text, where", [
    ("ts_ms,price_cents\n1000,500000\n900,500000\n", ":3:"),
    ("1000,500000\n1100,abc\n", ":2:"),
    ("1000,-5\n", ":1:"),
    ("1000\n", ":1:"),
    ("ts_ms,price_cents\n", "no ticks"),
])
def test_replay_rejects_bad_files_with_the_line(tmp_path, text, where):
    with pytest.raises(ValueError, match=where):
        ReplayFeed(write(tmp_path, text))


# -- coinbase -------------------------------------------------------------

SUBSCRIBE = {"type": "subscribe", "product_ids": ["BTC-USD"],
             "channels": ["ticker", "heartbeat"]}


def ticker(price, when, product="BTC-USD"):
    return json.dumps({"type": "ticker", "sequence": 93525999403, "product_id": product,
                       "price": price, "best_bid": "99718.01", "best_ask": price,
                       "side": "buy", "time": when, "trade_id": 734680334,
                       "last_size": "0.000261"})


def heartbeat():
    return json.dumps({"type": "heartbeat", "sequence": 1, "last_trade_id": 2,
                       "product_id": "BTC-USD", "time": "2024-12-07T18:00:00.000000Z"})


def test_coinbase_ticks_then_reconnects_after_a_drop(exchange):
    subs, conns = Queue(), []

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        conns.append(ws)
        subs.put(json.loads(ws.receive()))
        ws.send(json.dumps({"type": "subscriptions", "channels": SUBSCRIBE["channels"]}))
        ws.send(heartbeat())
        if len(conns) == 1:
            ws.send(ticker("99728.83", "2024-12-07T18:00:00.542551Z"))
            ws.send(ticker("3900.10", "2024-12-07T18:00:00.600000Z", product="ETH-USD"))
            ws.send("{not json")
            ws.send(ticker("abc", "2024-12-07T18:00:00.700000Z"))
            ws.send(json.dumps({"type": "ticker", "product_id": "BTC-USD"}))
            ws.send(json.dumps(["a", "list"]))
            ws.send(ticker("99728.8", "2024-12-07T18:00:01Z"))
            ws.send(ticker("99728", "2024-12-07T18:00:01.25Z"))
            drop(ws)
            return []
        ws.send(ticker("99801.00", "2024-12-07T18:00:05.000001Z"))
        while ws.receive() is not None:
            pass
        return []

    rng = RecordingRandom()
    feed = CoinbaseFeed(exchange(app), rng=rng, silence_timeout=5, **FAST)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(ticks) >= 4, what="ticks from both connections")
    assert subs.get(timeout=5) == SUBSCRIBE
    assert subs.get(timeout=5) == SUBSCRIBE        # the adapter subscribed again
    stop_feed(feed, g)
    assert ticks == [Tick(9972883, 1733594400542), Tick(9972880, 1733594401000),
                     Tick(9972800, 1733594401250), Tick(9980100, 1733594405000)]
    s = feed.stats
    assert (s.ticks, s.heartbeats, s.malformed, s.ignored) == (4, 2, 4, 1)
    assert s.reconnects == 1 and s.errors == 1 and s.last_error
    # The first connection delivered ticks, so the backoff started over at base.
    assert rng.bounds == [FAST["backoff_base"]]


def test_coinbase_silence_counts_as_a_dead_connection(exchange):
    subs = Queue()

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        subs.put(json.loads(ws.receive()))
        while ws.receive() is not None:   # subscribed, then nothing at all
            pass
        return []

    feed = CoinbaseFeed(exchange(app), silence_timeout=0.1, **FAST)
    ticks, g = run_feed(feed)
    subs.get(timeout=5)
    subs.get(timeout=5)
    wait_until(lambda: feed.stats.reconnects >= 1)
    stop_feed(feed, g)
    assert "no data for 0.1s" in feed.stats.last_error
    assert ticks == []


def test_backoff_doubles_up_to_the_cap_while_refused():
    rng = RecordingRandom()
    feed = CoinbaseFeed(f"ws://127.0.0.1:{free_port()}/", rng=rng,
                        backoff_base=0.001, backoff_cap=0.004, connect_timeout=5)
    _, g = run_feed(feed)
    wait_until(lambda: len(rng.bounds) >= 5, what="five refused attempts")
    stop_feed(feed, g)
    assert rng.bounds[:5] == [0.001, 0.002, 0.004, 0.004, 0.004]
    assert "ConnectionRefusedError" in feed.stats.last_error


def test_stop_while_connected_returns_promptly(exchange):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        while ws.receive() is not None:
            pass
        return []

    feed = CoinbaseFeed(exchange(app), silence_timeout=60, **FAST)
    _, g = run_feed(feed)
    wait_until(lambda: feed._ws is not None, what="connected")
    stop_feed(feed, g)
    assert feed.stats.errors == 0 and feed.stats.reconnects == 0


# -- binance --------------------------------------------------------------

def trade(price, t, symbol="BTCUSDT"):
    return json.dumps({"e": "trade", "E": t + 3, "s": symbol, "t": 12345, "p": price,
                       "q": "0.001", "T": t, "m": True, "M": True})


def test_binance_trades_pings_and_reconnect(exchange):
    conns, pongs = [], Queue()

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        conns.append(ws)
        if len(conns) == 1:
            ws.send(trade("99728.83000000", 1733594400120))
            ws.send_frame("keepalive", WebSocket.OPCODE_PING)
            header, payload = ws.read_frame()
            pongs.put((header.opcode, bytes(payload)))
            ws.send(json.dumps({"stream": "btcusdt@trade",
                                "data": json.loads(trade("99729.10", 1733594400150))}))
            ws.send(trade("3900.00", 1733594400160, symbol="ETHUSDT"))
            ws.send(json.dumps({"result": None, "id": 1}))
            ws.send(json.dumps({"e": "trade", "s": "BTCUSDT", "p": "1.00", "T": "soon"}))
            ws.send(trade("-3", 1733594400170))
            # Binance says goodbye after 24 h with a proper close frame.
            ws.send_frame(struct.pack("!H", 1001), WebSocket.OPCODE_CLOSE)
            return []
        ws.send(trade("99730.00", 1733594401000))
        while ws.receive() is not None:
            pass
        return []

    feed = BinanceFeed(exchange(app), **FAST)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(ticks) >= 3, what="ticks across the reconnect")
    stop_feed(feed, g)
    assert ticks == [Tick(9972883, 1733594400120), Tick(9972910, 1733594400150),
                     Tick(9973000, 1733594401000)]
    assert pongs.get(timeout=5) == (WebSocket.OPCODE_PONG, b"keepalive")
    assert len(conns) == 2 and feed.stats.reconnects == 1
    assert (feed.stats.malformed, feed.stats.ignored) == (2, 1)
    assert "1001" in feed.stats.last_error


# -- factory --------------------------------------------------------------

def test_make_feed_kinds():
    assert isinstance(make_feed("sim", seed=1), SimFeed)
    assert isinstance(make_feed(" SIM "), SimFeed)
    replay = make_feed("replay")
    assert isinstance(replay, ReplayFeed) and replay.path == SAMPLE_TICKS
    cb = make_feed("coinbase")
    assert isinstance(cb, CoinbaseFeed) and cb.url == "wss://ws-feed.exchange.coinbase.com"
    bn = make_feed("binance", url="ws://127.0.0.1:1/ws")
    assert isinstance(bn, BinanceFeed) and bn.url == "ws://127.0.0.1:1/ws"
    assert make_feed("binance").url == "wss://stream.binance.com:9443/ws/btcusdt@trade"
    for feed in (replay, cb, bn):
        assert feed.expected_interval_ms > 0 and feed.name


def test_make_feed_rejects_unknown_kinds_and_stray_args():
    with pytest.raises(ValueError, match="unknown feed kind 'bitstamp'.*sim, replay, coinbase,"
                                         " binance, kraken"):
        make_feed("bitstamp")
    with pytest.raises(ValueError, match="file="):
        make_feed("sim", file="ticks.csv")
    with pytest.raises(ValueError, match="url="):
        make_feed("replay", url="ws://x")
    assert isinstance(make_feed("coinbase", seed=3), CoinbaseFeed)  # run-wide seed is fine
