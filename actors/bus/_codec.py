"""The bus's keys and messages: what a gateway and the market put in Redis.

Taps go up in batches, one stream entry per gateway batch, so the market
reads (and acknowledges) a few hundred taps as one entry; acks come back
the same way on the gateway's own inbox stream. Everything is JSON of
lists (the C codec, no per-field dicts); a signature travels as base64url.
An optional ``market_id`` rides at the end of a tap, untouched when absent.

    >>> from actors import Tap
    >>> t = Tap(7, 1_000_000, 9_500_000, 500, 101, 999_000, "n1", bytes(64))
    >>> rid, back, market_id = decode_taps(encode_taps([(3, t, None)]))[0]
    >>> (rid, back == t, market_id)
    (3, True, None)
    >>> decode_acks(encode_acks([(3, None, 12, 176, 9500), (4, "replay", 0, 0, 0)]))
    [[3, None, 12, 176, 9500], [4, 'replay', 0, 0, 0]]
    >>> frame = encode_blob(b"t", {"p": 9_500_000, "t": 999_000}, b"\\x81\\x02{}")
    >>> decode_blob(frame)
    (b't', {'p': 9500000, 't': 999000}, [b'\\x81\\x02{}'])
"""
import base64
import json
import struct
from binascii import a2b_base64

from .._model import Tap

__all__ = ["Keys", "encode_taps", "decode_taps", "encode_acks", "decode_acks",
           "encode_blob", "decode_blob", "dumps", "loads"]

_dumps = json.JSONEncoder(separators=(",", ":")).encode
loads = json.loads


def dumps(obj):
    return _dumps(obj).encode()


class Keys:
    """Redis key names, all under one prefix (an ACL can grant ``tapgrid:*``)."""

    def __init__(self, prefix="tapgrid:bus:"):
        self.prefix = prefix
        self.taps = prefix + "taps"          # stream: gateways -> market, verified taps
        self.calls = prefix + "calls"        # stream: gateways -> market, request/reply
        self.results = prefix + "results"    # stream: market -> every gateway, settlements
        self.broadcast = prefix + "bcast"    # pub/sub: ticks, grids, market status
        self.state = prefix + "state"        # hash: the last broadcast of each kind
        self.alive = prefix + "market"       # the market's heartbeat (expires)
        self.group = "market"                # the consumer group on taps and calls

    # Fields of ``state``: the market list, and the latest status and grid of
    # each market, tick of each asset (``Publisher``).
    markets_field = b"k"

    @staticmethod
    def status_field(market_id):
        return b"m:" + market_id.encode()

    @staticmethod
    def grid_field(market_id):
        return b"g:" + market_id.encode()

    @staticmethod
    def tick_field(asset):
        return b"t:" + asset.encode() if asset else b"t"

    def inbox(self, gateway):
        """One gateway's stream of acks and call replies."""
        return self.prefix + "gw:" + gateway


def _b64(raw):
    return base64.urlsafe_b64encode(raw).decode("ascii")


def encode_taps(items):
    """``items``: (request id, Tap, market_id or None)."""
    out = []
    for rid, t, market_id in items:
        row = [rid, t.user, t.col, t.lo, t.stake, t.min_mult, t.ts, t.nonce, _b64(t.sig)]
        if market_id is not None:
            row.append(market_id)
        out.append(row)
    return dumps(out)


_tuple_new = tuple.__new__
_URLSAFE = bytes.maketrans(b"-_", b"+/")


def decode_taps(data):
    """[(request id, Tap, market_id or None)], the Tap carrying its
    market_id already; raises ValueError on garbage. The market's hottest
    per-tap Python (a gateway batch of a few hundred taps per entry), so:
    one chained type test, the Tap made without its ``__new__``'s frame,
    the signature through binascii as ``urlsafe_b64decode`` would (its
    checks and translation, without its three calls)."""
    out = []
    append = out.append
    for row in loads(data):
        rid, user, col, lo, stake, min_mult, ts, nonce, sig = row[:9]
        if not (type(rid) is type(user) is type(col) is type(lo) is type(stake)
                is type(min_mult) is type(ts) is int):
            raise ValueError("tap fields are integers")
        if type(nonce) is not str or type(sig) is not str:
            raise ValueError("nonce and sig are strings")
        market_id = row[9] if len(row) > 9 else None
        if market_id is not None and type(market_id) is not str:
            raise ValueError("market_id is a string")
        append((rid, _tuple_new(Tap, (user, col, lo, stake, min_mult, ts, nonce,
                                      a2b_base64(sig.encode("ascii").translate(_URLSAFE)),
                                      market_id)), market_id))
    return out


def encode_acks(rows):
    """``rows``: [request id, reason or None, bet, mult, balance]."""
    return dumps(rows)


def decode_acks(data):
    return loads(data)


def encode_blob(kind, head, *parts):
    """A broadcast: one kind byte, a JSON head, then length-prefixed byte
    strings (WebSocket frames encoded once, relayed as they are)."""
    h = dumps(head)
    out = [kind, struct.pack(">HI", len(parts), len(h)), h]
    for p in parts:
        out.append(struct.pack(">I", len(p)))
        out.append(p)
    return b"".join(out)


def decode_blob(data):
    kind = data[:1]
    n, hlen = struct.unpack_from(">HI", data, 1)
    pos = 7
    head = loads(data[pos:pos + hlen])
    pos += hlen
    parts = []
    for _ in range(n):
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4
        parts.append(bytes(data[pos:pos + size]))
        pos += size
    return kind, head, parts
