"""The WebSocket side: the Gateway (admission, taps in, acks out), one
Connection per player with its own writer greenlet, the Hub that fans
market events out, and the fast frame encoder/handler."""
from ._conn import Connection, TokenBucket
from ._feed import PlayerFeed
from ._gateway import Gateway
from ._hub import Hub, frame, grid_json
from ._wsfast import FastHandler, FastWebSocket, FrameTooLarge, encode_text_frame, unmask

__all__ = [
    "Gateway", "Connection", "TokenBucket", "PlayerFeed", "Hub", "frame", "grid_json",
    "FastHandler", "FastWebSocket", "FrameTooLarge", "encode_text_frame", "unmask",
]
