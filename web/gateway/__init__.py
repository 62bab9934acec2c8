"""The WebSocket side: the Gateway (admission, taps in, acks out), one
Connection per player with its own writer greenlet, the Hub that fans
market events out, and the fast frame encoder/handler."""
from ._conn import Connection, TokenBucket
from ._gateway import Gateway
from ._hub import Hub, frame, grid2_json, grid_json
from ._taps import TapPipeline
from ._wsfast import FastHandler, FastWebSocket, FrameTooLarge, encode_text_frame, unmask

__all__ = [
    "Gateway", "Connection", "TokenBucket", "Hub", "frame", "grid_json", "grid2_json", "TapPipeline",
    "FastHandler", "FastWebSocket", "FrameTooLarge", "encode_text_frame", "unmask",
]
