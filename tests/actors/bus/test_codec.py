"""The tap stream's codec (actors/bus/_codec.py), as the market decodes a
gateway's batch: each Tap comes out equal to the one sent, its market_id
inside it (the intake places it as it is), and a malformed row is a
ValueError, which the intake turns into a dropped entry, never a crash."""
import json
import os

import pytest

from actors import Tap
from actors.bus import decode_taps, encode_taps

SIG = os.urandom(64)


@pytest.mark.parametrize("market_id", [None, "ETH-USD/15s"])
def test_taps_come_back_whole_with_their_market_id(market_id):
    sent = [Tap(7 + i, 1_700_000_005_000, 9_500_000, 500, 101, 1_700_000_000_000 + i,
                f"nonce-{i}", SIG) for i in range(3)]
    got = decode_taps(encode_taps([(40 + i, t, market_id) for i, t in enumerate(sent)]))
    assert [rid for rid, _, _ in got] == [40, 41, 42]
    assert [t for _, t, _ in got] == [t._replace(market_id=market_id) for t in sent]
    assert all(type(t) is Tap and t.market_id == m == market_id for _, t, m in got)


GOOD = [1, 7, 1_700_000_005_000, 9_500_000, 500, 101, 1_700_000_000_000, "n1",
        encode_taps([(1, Tap(7, 0, 0, 0, 0, 0, "n", SIG), None)]).decode().split('"')[3]]


@pytest.mark.parametrize("row", [
    GOOD[:6] + [True] + GOOD[7:],            # a bool is not a timestamp
    GOOD[:4] + [5.0] + GOOD[5:],             # nor a float a stake
    GOOD[:7] + [8] + GOOD[8:],               # a nonce is a string
    GOOD[:8] + ["é" * 88],                   # a signature is base64url
    GOOD[:8] + ["AAA"],                      # ... of whole bytes
    GOOD + [["BTC-USD/5s"]],                 # a market_id is a string
    GOOD[:5],                                # too short
])
def test_a_malformed_row_is_a_value_error(row):
    assert decode_taps(json.dumps([GOOD]).encode())[0][1].sig == SIG
    with pytest.raises(ValueError):
        decode_taps(json.dumps([row]).encode())
