"""The WebSocket side: the Gateway (admission, taps in, acks out), one
Connection per player with its own writer greenlet, the Fanout that fans
market events out, and the fast frame encoder/handler."""
from ._conn import Connection, TokenBucket
from ._feed import PlayerFeed
from ._gateway import Gateway
from ._gridframes import frame, grid2_json, grid_json
from ._hub import Fanout
from ._relay import Encoders, RelayFanout
from ._taps import TapPipeline
from ._wsfast import FastHandler, FastWebSocket, encode_frame, encode_text_frame, unmask
from ._wsframes import FrameReader, valid_close_code

__all__ = [
    "Gateway", "Connection", "TokenBucket", "PlayerFeed", "Fanout", "RelayFanout", "Encoders", "frame", "grid_json", "grid2_json",
    "TapPipeline", "FastHandler", "FastWebSocket", "encode_frame", "encode_text_frame", "unmask",
    "FrameReader", "valid_close_code",
]
