"""The v1.1 tap payload: an optional leading ``market_id`` key, under the
same canonical-JSON rule as every other key (SPEC 9)."""
import json

import pytest

from actors.wire import Rejected, encode_tap_payload, parse_tap_payload

FIELDS = dict(col=1_800_000_015_000, lo=350_000, stake=100, min_mult=150, ts=1_800_000_001_000,
              nonce="n0nce-abcdef")


def js_stringify(obj):
    """What JSON.stringify gives for an object built in this key order."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def test_a_keyed_payload_is_what_json_stringify_gives():
    p = encode_tap_payload(**FIELDS, market_id="ETH-USD/15s")
    assert p == js_stringify({"market_id": "ETH-USD/15s", **FIELDS})
    parsed = parse_tap_payload(p)
    assert parsed.market_id == "ETH-USD/15s" and parsed.col == FIELDS["col"]
    assert parsed.nonce == FIELDS["nonce"]


def test_a_v1_payload_has_no_market():
    p = encode_tap_payload(**FIELDS)
    assert p == js_stringify(FIELDS) and parse_tap_payload(p).market_id is None


@pytest.mark.parametrize("payload", [
    js_stringify({**FIELDS, "market_id": "ETH-USD/5s"}),                # not first
    js_stringify({"col": 1, "market_id": "ETH-USD/5s", **FIELDS}),       # in the middle
    js_stringify({"market_id": "ETH USD/5s", **FIELDS}),                  # a space
    js_stringify({"market_id": "", **FIELDS}),                            # empty
    js_stringify({"market_id": "E" * 41, **FIELDS}),                      # too long
    js_stringify({"market_id": 5, **FIELDS}),                             # not a string
    '{"market_id":"ETH-USD/5s","market_id":"ETH-USD/5s",'
    + js_stringify(FIELDS)[1:],                                           # twice
    '{"market_id":"ETH-USD/5s", ' + js_stringify(FIELDS)[1:],             # whitespace
    '{"market_id":"ETH\\u002dUSD/5s",' + js_stringify(FIELDS)[1:],        # an escape
    '{"market_id":"ETH-USD/5s"}',                                         # nothing else
])
def test_anything_but_the_canonical_keyed_text_is_bad_request(payload):
    with pytest.raises(Rejected) as e:
        parse_tap_payload(payload)
    assert e.value.code == "bad_request"
