"""The Kraken WebSocket v2 ``ticker`` adapter against a local server that
speaks the format: status and subscribe acks, heartbeats, snapshot and
update messages (prices as JSON numbers), malformed messages, a refused
subscription, a dropped connection and the reconnect."""
import json

import pytest
from gevent.queue import Queue

from actors.feeds import KrakenFeed, Tick, make_feed
from tests.actors.feeds.test_feeds import FAST, drop, run_feed, stop_feed
from tests.support import wait_until

SUBSCRIBE = {"method": "subscribe", "req_id": 1,
             "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}


@pytest.fixture
def exchange(local_ws_server):
    return lambda app: local_ws_server(app) + "/v2"


def status(system="online"):
    return json.dumps({"channel": "status", "type": "update", "data": [
        {"api_version": "v2", "connection_id": 12393906104898154338, "system": system,
         "version": "2.0.0"}]})


def ack(success=True, error=None):
    msg = {"method": "subscribe", "req_id": 1, "success": success,
           "time_in": "2024-12-07T18:00:00.100000Z", "time_out": "2024-12-07T18:00:00.100100Z"}
    if success:
        msg["result"] = {"channel": "ticker", "snapshot": True, "symbol": "BTC/USD"}
    else:
        msg["error"] = error
    return json.dumps(msg)


def ticker(last, stamp="2024-12-07T18:00:00.542551Z", kind="update", symbol="BTC/USD"):
    # the price goes out as a JSON number, exactly as written (as Kraken does)
    item = (f'{{"symbol":"{symbol}","bid":{last},"bid_qty":0.5,"ask":{last},"ask_qty":1.25,'
            f'"last":{last},"volume":1234.5,"vwap":{last},"low":{last},"high":{last},'
            f'"change":-12.3,"change_pct":-0.01')
    item += f',"timestamp":"{stamp}"}}' if stamp else "}"
    return f'{{"channel":"ticker","type":"{kind}","data":[{item}]}}'


def test_kraken_ticks_heartbeats_malformed_and_reconnect(exchange):
    subs, conns = Queue(), []

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        conns.append(ws)
        ws.send(status())
        subs.put(json.loads(ws.receive()))
        ws.send(ack())
        if len(conns) == 1:
            ws.send(ticker("99728.83", kind="snapshot"))
            ws.send(json.dumps({"channel": "heartbeat"}))
            ws.send(ticker("3900.1", symbol="ETH/USD"))               # not ours
            ws.send("{not json")
            ws.send(ticker('"abc"'))                                  # price not a number
            ws.send(ticker("1e5"))                                    # not a plain decimal
            ws.send(json.dumps({"channel": "ticker", "type": "update", "data": "x"}))
            ws.send(json.dumps({"channel": "ticker", "type": "update", "data": [7]}))
            ws.send(ticker("99729.5", stamp="yesterday"))
            ws.send(json.dumps({"method": "pong", "req_id": 9}))
            ws.send(json.dumps({"channel": "heartbeat"}))
            ws.send(ticker("99730", stamp="2024-12-07T18:00:01.25Z"))  # an integer price
            drop(ws)
            return []
        ws.send(status("maintenance"))
        ws.send(ticker("99801.004", stamp="2024-12-07T18:00:05.000001Z"))
        while ws.receive() is not None:
            pass
        return []

    feed = KrakenFeed(exchange(app), silence_timeout=5, **FAST)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(ticks) >= 3, what="ticks from both connections")
    assert subs.get(timeout=5) == SUBSCRIBE
    assert subs.get(timeout=5) == SUBSCRIBE        # subscribed again after the drop
    stop_feed(feed, g)
    assert ticks == [Tick(9972883, 1733594400542), Tick(9973000, 1733594401250),
                     Tick(9980100, 1733594405000)]
    s = feed.stats
    assert s.heartbeats == 2 and s.reconnects == 1 and s.errors >= 1
    assert s.malformed == 6 and s.ignored == 2       # ETH/USD and the pong
    assert feed.system == "maintenance"


def test_kraken_without_timestamp_uses_arrival_time(exchange):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.receive()
        ws.send(ack())
        ws.send(ticker("50000.01", stamp=None))
        while ws.receive() is not None:
            pass
        return []

    feed = KrakenFeed(exchange(app), clock=lambda: 1733594400.123, **FAST)
    ticks, g = run_feed(feed)
    wait_until(lambda: ticks, what="a tick")
    stop_feed(feed, g)
    assert ticks == [Tick(5000001, 1733594400123)]


def test_kraken_refused_subscription_reconnects_with_backoff(exchange):
    tries = []

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        tries.append(json.loads(ws.receive()))
        ws.send(ack(False, "Currency pair not supported BTC/USD"))
        while ws.receive() is not None:
            pass
        return []

    feed = KrakenFeed(exchange(app), **FAST)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(tries) >= 2, what="a second subscription attempt")
    stop_feed(feed, g)
    assert ticks == [] and feed.stats.reconnects >= 1
    assert "Currency pair not supported" in feed.stats.last_error


def test_kraken_silence_is_a_dead_connection(exchange):
    conns = []

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        conns.append(ws)
        ws.receive()
        ws.send(ack())
        while ws.receive() is not None:     # subscribed, then not even a heartbeat
            pass
        return []

    feed = KrakenFeed(exchange(app), silence_timeout=0.2, **FAST)
    ticks, g = run_feed(feed)
    wait_until(lambda: len(conns) >= 2, what="a reconnect after silence")
    stop_feed(feed, g)
    assert "no data for 0.2s" in feed.stats.last_error and feed.stats.reconnects >= 1


def test_make_feed_kraken():
    feed = make_feed("kraken")
    assert isinstance(feed, KrakenFeed) and feed.url == "wss://ws.kraken.com/v2"
    assert make_feed("kraken", url="ws://127.0.0.1:1/v2").url == "ws://127.0.0.1:1/v2"
