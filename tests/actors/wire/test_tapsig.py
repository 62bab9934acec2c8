"""Tap payload canonical form and P-256 raw-signature verification."""
import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from actors.wire._tapsig import (
    SessionSigner, Rejected, TapTerms, b64url_decode, b64url_encode,
    encode_tap_payload, load_session_key, parse_tap_payload, verify_tap)

CANON = ('{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,'
         '"ts":1700000001234,"nonce":"Ab_-09xyz"}')


def test_canonical_payload_is_accepted_and_round_trips():
    tap = parse_tap_payload(CANON)
    assert tap == TapTerms(1700000005000, 6500000, 100, 235, 1700000001234, "Ab_-09xyz")
    assert tap.min_mult == 235 and tap.nonce == "Ab_-09xyz"
    assert encode_tap_payload(*tap) == CANON


def test_encode_matches_json_stringify_shape():
    import json
    fields = dict(col=5000, lo=0, stake=1, min_mult=101, ts=1, nonce="abcdefgh")
    assert encode_tap_payload(**fields) == json.dumps(fields, separators=(",", ":"))


@pytest.mark.parametrize("bad", [
    # key order
    '{"lo":6500000,"col":1700000005000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # whitespace
    '{"col": 1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    CANON + " ",
    # floats
    '{"col":1700000005000,"lo":6500000,"stake":100.0,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    '{"col":1700000005000,"lo":6500000,"stake":1e2,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # bools
    '{"col":1700000005000,"lo":6500000,"stake":true,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # negative, negative zero
    '{"col":1700000005000,"lo":-6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    '{"col":1700000005000,"lo":-0,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # beyond what a JS number holds exactly
    '{"col":1700000005000,"lo":6500000,"stake":9007199254740992,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # strings for numbers, null
    '{"col":"1700000005000","lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    '{"col":1700000005000,"lo":6500000,"stake":null,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # nonce: bad chars, too short, too long, escaped, not a string
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab+/09xyz"}',
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"short7_"}',
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"' + "a" * 65 + '"}',
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xy\\u007a"}',
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":123456789}',
    # extra key, missing key, duplicate key
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz","x":1}',
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234}',
    '{"col":1700000005000,"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"Ab_-09xyz"}',
    # not an object, not JSON, empty, huge
    '[1,2,3]', 'not json', '', '"' + "a" * 300 + '"',
])
def test_non_canonical_payloads_are_bad_request(bad):
    with pytest.raises(Rejected) as err:
        parse_tap_payload(bad)
    assert err.value.code == "bad_request"


@pytest.mark.parametrize("bad", [None, b"{}", 42])
def test_payload_that_is_not_a_string_is_bad_request(bad):
    with pytest.raises(Rejected) as err:
        parse_tap_payload(bad)
    assert err.value.code == "bad_request"


def test_b64url_round_trip_and_strictness():
    for n in range(0, 70):
        data = bytes(range(n))
        text = b64url_encode(data)
        assert "=" not in text and b64url_decode(text) == data
    for bad in ["ab=", "a+b/", "a b", "abcde", "AB", "é"]:
        # "AB" has non-zero unused bits: a second spelling of b"\x00".
        with pytest.raises(Rejected) as err:
            b64url_decode(bad)
        assert err.value.code == "bad_request"
    assert b64url_decode("AA") == b"\x00"


def test_sign_verify_round_trip():
    signer = SessionSigner.generate()
    key = load_session_key(b64url_decode(signer.public_b64))
    sig = signer.sign(CANON)
    assert len(b64url_decode(sig)) == 64
    assert verify_tap(key, CANON, sig)
    other = CANON.replace('"stake":100', '"stake":101')
    assert not verify_tap(key, other, sig)
    # Another key's signature over the same payload fails.
    assert not verify_tap(key, CANON, SessionSigner.generate().sign(CANON))


def test_independent_signature_in_raw_format_verifies():
    """Sign with cryptography directly (DER), convert by hand to r||s the way
    WebCrypto emits it, and check the verifier reads that format."""
    private = ec.generate_private_key(ec.SECP256R1())
    raw_pub = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    der = private.sign(CANON.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw_sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    sig = base64.urlsafe_b64encode(raw_sig).decode().rstrip("=")
    key = load_session_key(raw_pub)
    assert verify_tap(key, CANON, sig)
    # DER itself is not the wire format.
    assert not verify_tap(key, CANON, b64url_encode(der))
    # s and r swapped is not a signature.
    assert not verify_tap(key, CANON, b64url_encode(raw_sig[32:] + raw_sig[:32]))


@pytest.mark.parametrize("sig", [
    "", "!!!!", b64url_encode(bytes(63)), b64url_encode(bytes(65)), b64url_encode(bytes(64)),
    b64url_encode(b"\xff" * 64), None, 123,
])
def test_malformed_signatures_are_false_not_errors(sig):
    key = load_session_key(b64url_decode(SessionSigner.generate().public_b64))
    assert verify_tap(key, CANON, sig) is False


@pytest.mark.parametrize("raw", [
    b"", bytes(65), b"\x04" + bytes(64), b"\x02" + bytes(32),
    b"\x04" + b"\x01" * 64, "not bytes",
])
def test_invalid_session_keys_are_bad_request(raw):
    with pytest.raises(Rejected) as err:
        load_session_key(raw)
    assert err.value.code == "bad_request"


def test_session_key_from_compressed_point_is_refused():
    signer = SessionSigner.generate()
    compressed = signer._key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    with pytest.raises(Rejected):
        load_session_key(compressed)
    assert load_session_key(signer.public_raw).public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint) == signer.public_raw
