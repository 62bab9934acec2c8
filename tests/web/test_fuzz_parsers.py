"""Property-based fuzzing (Hypothesis, fixed budgets) of the parsers that
take client bytes: the WebSocket frame reader, the JSON reader, the tap
payload parser and the SIWE parser/verifier. Nothing escapes but the
parser's own refusal, and every refusal carries a SPEC section 9 reason or
an RFC 6455 close code."""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import REASONS
from tests.web.gateway.autobahn_cases import frame
from web._safejson import loads as safe_loads
from web.auth import build_message, parse_message, verify_login
from actors.wire import Rejected, encode_tap_payload, parse_tap_payload
from web.gateway._wsframes import FrameReader

CLOSE_CODES = {1002, 1007, 1009}
EVENTS = {"text", "binary", "ping", "pong", "close", "fail"}


def check_events(events):
    for i, ev in enumerate(events):
        assert ev[0] in EVENTS
        if ev[0] in ("close", "fail"):
            assert i == len(events) - 1, "nothing after a close or a failure"
        if ev[0] == "fail":
            assert ev[1] in CLOSE_CODES
        if ev[0] == "text":
            assert isinstance(ev[1], str) and len(ev[1].encode()) <= 4096


# --- frames -------------------------------------------------------------------------------

@settings(max_examples=400)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_frame_reader_on_arbitrary_bytes(data, cuts):
    r = FrameReader(limit=4096)
    events, pos = [], 0
    for n in cuts + [len(data)]:
        events += r.feed(data[pos:pos + n])
        pos += n
    check_events(events)


frames = st.one_of(
    st.builds(lambda p, fin: frame(1, p, fin=fin), st.binary(max_size=200), st.booleans()),
    st.builds(lambda p, fin: frame(0, p, fin=fin), st.binary(max_size=200), st.booleans()),
    st.builds(lambda p: frame(2, p), st.binary(max_size=200)),
    st.builds(lambda p: frame(9, p), st.binary(max_size=130)),
    st.builds(lambda p: frame(10, p), st.binary(max_size=20)),
    st.builds(lambda c, r: frame(8, struct.pack("!H", c) + r), st.integers(0, 65535),
              st.binary(max_size=20)),
    st.builds(lambda op, rsv, p: frame(op, p, rsv=rsv), st.integers(0, 15), st.integers(0, 7),
              st.binary(max_size=50)),
    st.builds(lambda n: bytes((0x81, 0xFE)) + struct.pack("!H", n), st.integers(0, 65535)),
)


@settings(max_examples=400)
@given(st.lists(frames, max_size=12), st.integers(1, 50))
def test_frame_sequences_give_the_same_events_however_they_are_split(seq, size):
    data = b"".join(seq)
    whole = FrameReader(limit=4096).feed(data)
    check_events(whole)
    r = FrameReader(limit=4096)
    pieces = []
    for i in range(0, len(data), size):
        pieces += r.feed(data[i:i + size])
    assert pieces == whole


# --- JSON -----------------------------------------------------------------------------------

json_like = st.text(alphabet='[]{}":,0123456789.eE-+ aA\\tnulrsf', max_size=3000)


@settings(max_examples=300)
@given(st.one_of(json_like, st.text(max_size=300), st.binary(max_size=300)))
def test_json_reader_only_ever_refuses_with_value_error(text):
    try:
        safe_loads(text)
    except ValueError:
        pass


@settings(max_examples=50)
@given(st.integers(33, 2000), st.sampled_from(["[", '{"a":']))
def test_deep_json_is_refused_cheaply(depth, opener):
    closer = "]" if opener == "[" else "}"
    try:
        safe_loads(opener * depth + "1" + closer * depth)
        raise AssertionError("deeper than the limit was parsed")
    except ValueError:
        pass


# --- tap payloads ---------------------------------------------------------------------------

ints = st.one_of(st.integers(0, 2 ** 53 - 1), st.integers(-10, 2 ** 64))
nonces = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True), st.text(max_size=70))


@settings(max_examples=300)
@given(ints, ints, ints, ints, ints, nonces)
def test_tap_payload_round_trip_or_bad_request(col, lo, stake, mm, ts, nonce):
    text = encode_tap_payload(col, lo, stake, mm, ts, nonce)
    try:
        p = parse_tap_payload(text)
    except Rejected as e:
        assert e.code in REASONS
        return
    assert (p.col, p.lo, p.stake, p.min_mult, p.ts, p.nonce) == (col, lo, stake, mm, ts, nonce)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), json_like, st.none(), st.integers(), st.binary()))
def test_tap_payload_parser_refuses_garbage_with_a_reason(text):
    try:
        parse_tap_payload(text)
    except Rejected as e:
        assert e.code in REASONS


# --- SIWE -----------------------------------------------------------------------------------

GOOD = build_message(domain="127.0.0.1:8080", address="0x" + "ab" * 20, uri="http://127.0.0.1:8080",
                     chain_id=1, nonce="abcdefgh1234", issued_at="2026-01-01T00:00:00.000Z",
                     expiration_time="2026-01-01T01:00:00.000Z",
                     session_key_b64="B" + "A" * 86)


@st.composite
def mutated_messages(draw):
    text = GOOD
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 20)))
        text = text[:i] + draw(st.text(max_size=12)) + text[j:]
    return text


@settings(max_examples=300)
@given(st.one_of(mutated_messages(), st.text(max_size=500)), st.text(max_size=140))
def test_siwe_parser_and_verifier_refuse_with_a_reason(text, signature):
    try:
        parse_message(text)
    except Rejected as e:
        assert e.code in REASONS
    try:
        verify_login(text, signature, domain="127.0.0.1:8080", uri="http://127.0.0.1:8080",
                     chain_id=1, now_ms=1_767_225_600_000, consume_nonce=lambda n: True)
    except Rejected as e:
        assert e.code in REASONS
