"""The outer tap frame's regex parser (web/gateway/_tapframe.py) against
``json.loads``: whatever it accepts, ``json.loads`` reads as the same
``{"type": "tap", "payload": P, "sig": S}``; what it refuses goes to
``json.loads`` unchanged, so the pipeline's accept/reject set is JSON's."""
import json
import random

from actors.wire import SessionSigner, encode_tap_payload
from web.gateway._tapframe import parse_tap_frame

SIGNER = SessionSigner.generate()
PAYLOAD = encode_tap_payload(1700000005000, 6500000, 100, 235, 1700000001234, "n0nce-abc_XYZ")
SIG = SIGNER.sign(PAYLOAD)
TAP = {"type": "tap", "payload": PAYLOAD, "sig": SIG}


def agrees(text):
    """The fast parser either declines or says what json.loads says."""
    got = parse_tap_frame(text)
    if got is None:
        return True
    try:
        obj = json.loads(text)
    except ValueError:
        return False
    return obj == {"type": "tap", "payload": got[0], "sig": got[1]} and list(obj) == ["type", "payload", "sig"]


def test_the_spellings_clients_write_take_the_fast_path():
    spellings = [
        json.dumps(TAP),                                  # Python, default separators
        json.dumps(TAP, separators=(",", ":")),           # JavaScript's JSON.stringify
        json.dumps(TAP, indent=2),                        # newlines and indents
        " \t\r\n" + json.dumps(TAP) + "\n",               # JSON whitespace around it
    ]
    for text in spellings:
        assert parse_tap_frame(text) == (PAYLOAD, SIG), text
        assert agrees(text)


def test_other_spellings_fall_back_to_json():
    other = [
        json.dumps({"payload": PAYLOAD, "type": "tap", "sig": SIG}),   # key order
        json.dumps({**TAP, "extra": 1}),                                # extra key
        json.dumps(TAP)[:-1] + ', "sig": "AAAA"}',                      # duplicate key
        json.dumps(TAP, ensure_ascii=True).replace('\\"', '\\u0022'),   # another escape
        json.dumps({**TAP, "payload": json.loads(PAYLOAD)}),            # not a string
        json.dumps({**TAP, "sig": 5}),
        json.dumps({**TAP, "type": "ping"}),
        json.dumps({**TAP, "payload": "a\\b"}),                         # backslash escape
        json.dumps(TAP).replace(" ", "\u00a0", 1),                      # not JSON whitespace
        json.dumps(TAP).replace(" ", "\f", 1),
        '{"type":"tap","payload":"a\x01b","sig":"x"}',                   # raw control char
        '{"type":"tap","payload":"a\\\\","sig":"x"}',                   # an escaped backslash
        json.dumps({**TAP, "sig": SIG + "="}),                          # padding: not base64url
        json.dumps(TAP) + "x",
        "[" + json.dumps(TAP) + "]",
    ]
    for text in other:
        assert parse_tap_frame(text) is None, text


def test_a_mutation_corpus_never_disagrees_with_json_loads():
    rng = random.Random(16)
    base = [json.dumps(TAP), json.dumps(TAP, separators=(",", ":"))]
    alphabet = ['"', "\\", " ", "\n", "\t", "\f", ",", ":", "{", "}", "[", "]", "a", "0", "-",
                "\x00", "\x1f", "\u00e9", "\u00a0", "u", "/", "="]
    fast = 0
    for i in range(20000):
        chars = list(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            op, at = rng.random(), rng.randrange(len(chars))
            if op < 0.4:
                chars.insert(at, rng.choice(alphabet))
            elif op < 0.7:
                del chars[at]
            else:
                chars[at] = rng.choice(alphabet)
        text = "".join(chars)
        assert agrees(text), repr(text)
        fast += parse_tap_frame(text) is not None
    # Some mutations (whitespace, payload characters) keep the fast path: the
    # comparison above was made on real matches, not only on refusals.
    assert fast > 100, fast
