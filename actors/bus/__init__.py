"""The bus between gateways and the market, over Redis (SPEC section 1):
verified taps up a stream, acks back on each gateway's inbox stream,
calls (request and reply) the same way, settlements on a shared stream,
ticks, grids and market status on pub/sub, encoded once by the market.

    # the market process
    bus = MarketBus(cfg, encoders)
    handle = start_market(system, cfg, sinks=bus.publisher)
    bus.start(handle)

    # each gateway process: the web layer gets this instead of a MarketHandle
    market = RemoteMarket(cfg).start()
"""
from ._codec import Keys, decode_blob, decode_taps, encode_blob, encode_taps
from ._calls import METHODS, decode_value, encode_value
from ._remote import RemoteError, RemoteMarket
from ._redis import Link, entries
from ._service import MarketBus, MarketTaken
from ._watch import RemoteStatus, grid_from_body

__all__ = ["Keys", "MarketBus", "MarketTaken", "RemoteMarket", "RemoteError", "RemoteStatus", "METHODS",
           "encode_taps", "decode_taps", "encode_blob", "decode_blob", "encode_value",
           "decode_value", "grid_from_body", "Link", "entries"]
