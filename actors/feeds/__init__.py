"""Price feeds: the feed interface, the local sim and replay feeds, the
exchange adapters (Coinbase, Binance, Kraken) and the gevent WebSocket client they
ride on. A feed emits ``Tick(price_cents, ts_ms)``; the Watchdog consumes it.

    >>> feed = make_feed("sim", seed=1)
    >>> type(feed).__name__
    'SimFeed'
"""
from ._base import Feed, FeedStats, Tick
from ._exchange import BinanceFeed, CoinbaseFeed, KrakenFeed, iso_to_ms, parse_price_cents
from ._local import (FEED_KINDS, SAMPLE_TICKS, SIM_ASSETS, ReplayFeed, SimFeed, load_ticks,
                     make_feed, make_sources, ticks_of)
from ._wsclient import (Headers, WSClient, WSClosedError, WSError, WSHandshakeError,
                        WSProtocolError)

__all__ = [
    "Tick", "Feed", "FeedStats", "SimFeed", "ReplayFeed", "CoinbaseFeed", "BinanceFeed",
    "KrakenFeed", "make_feed", "make_sources", "load_ticks", "ticks_of", "parse_price_cents",
    "iso_to_ms", "SAMPLE_TICKS", "FEED_KINDS", "SIM_ASSETS",
    "WSClient", "WSError", "WSHandshakeError", "WSProtocolError", "WSClosedError", "Headers",
]
