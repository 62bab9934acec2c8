"""The per-tap signature (SPEC section 9): canonical payload text, base64url,
and ECDSA P-256/SHA-256 in WebCrypto's raw ``r||s`` format.

A tap's payload ``P`` is the exact text ``JSON.stringify`` gives for
``{col, lo, stake, min_mult, ts, nonce}`` built in that order; a tap for a
market other than the default puts ``market_id`` first (SPEC 9, v1.1). Because only
that one spelling is accepted, the server can rebuild the signed bytes from
the stored integer fields, and a receipt costs just the 64-byte signature.

>>> signer = SessionSigner.generate()
>>> p = encode_tap_payload(1700000005000, 6500000, 100, 235, 1700000001234, "n0nce-abc")
>>> p
'{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"n0nce-abc"}'
>>> parse_tap_payload(p).stake
100
>>> q = encode_tap_payload(1700000015000, 350000, 100, 150, 1700000001234, "n0nce-abc", "ETH-USD/15s")
>>> q[:40], parse_tap_payload(q).market_id
('{"market_id":"ETH-USD/15s","col":1700000', 'ETH-USD/15s')
>>> key = load_session_key(b64url_decode(signer.public_b64))
>>> verify_tap(key, p, signer.sign(p))
True
>>> verify_tap(key, p.replace("100", "999"), signer.sign(p))
False
"""
import base64
import binascii
import json
import re
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "Rejected", "TapTerms", "SessionSigner", "b64url_encode", "b64url_decode",
    "encode_tap_payload", "parse_tap_payload", "load_session_key", "verify_tap", "verify_raw",
    "MAX_PAYLOAD_CHARS",
]

# JavaScript numbers are exact only up to 2**53 - 1; anything larger would be
# signed by the browser as a different integer than the server reads.
_MAX_INT = 2 ** 53 - 1
# Five integers of at most 16 digits, a 64-char nonce, a 40-char market id
# and the keys: ~250.
MAX_PAYLOAD_CHARS = 320
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# The canonical text itself, as one pattern: what encode_tap_payload gives
# for non-negative integers (no sign, no leading zero, no fraction) and a
# nonce of the allowed alphabet. Matching it is parsing and the canonical
# check in one step, without building a dict.
_INT = r"(0|[1-9][0-9]{0,15})"
_CANONICAL = re.compile(r'\{"col":%s,"lo":%s,"stake":%s,"min_mult":%s,"ts":%s,'
                        r'"nonce":"([A-Za-z0-9_-]{8,64})"\}' % ((_INT,) * 5))
# A market id needs no JSON escaping either (JSON.stringify leaves "/" alone).
_MARKET_ID = re.compile(r"[A-Za-z0-9_./-]{1,40}")
_KEYED = re.compile(r'\{"market_id":"([A-Za-z0-9_./-]{1,40})",(.*)', re.S)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Rejected(ValueError):
    """A tap, sign-in or key that cannot be taken; ``code`` is a SPEC
    section 9 reason, ``detail`` a short human hint."""

    def __init__(self, code, detail=""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class TapTerms(NamedTuple):
    col: int
    lo: int
    stake: int
    min_mult: int
    ts: int
    nonce: str
    market_id: str | None = None     # None: no market_id key (the default market)


def encode_tap_payload(col, lo, stake, min_mult, ts, nonce, market_id=None) -> str:
    """The canonical payload text: compact JSON, keys in exactly this order
    (``market_id`` first when given). Integers need no formatting beyond
    ``str``; the nonce and market-id alphabets need no escaping."""
    head = "{" if market_id is None else f'{{"market_id":"{market_id}",'
    return (f'{head}"col":{col},"lo":{lo},"stake":{stake},"min_mult":{min_mult},'
            f'"ts":{ts},"nonce":"{nonce}"}}')


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as every key and signature on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; anything but the one canonical spelling of
    some bytes raises ``Rejected("bad_request")``."""
    if not isinstance(text, str) or len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise Rejected("bad_request", "bad base64url")
    # Unused low bits set in the last char give a second spelling of the same
    # bytes; refusing it keeps keys and signatures one-to-one with their text.
    # Checked on that char (its value's low 4 bits with 2 chars over a full
    # quantum, low 2 with 3), not by encoding the bytes back: once per tap.
    rem = len(text) % 4
    if rem and _B64_VALUE[text[-1]] & _UNUSED_BITS[rem]:
        raise Rejected("bad_request", "non-canonical base64url")
    try:
        return binascii.a2b_base64(text.encode("ascii").translate(_URL_TO_STD)
                                   + _PAD[rem])
    except (binascii.Error, ValueError):   # pragma: no cover - the pattern admits none
        raise Rejected("bad_request", "bad base64url") from None


_B64_VALUE = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_UNUSED_BITS = (0, 0, 0xF, 0x3)
_PAD = (b"", b"", b"==", b"=")
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")


def _check_int(value):
    # type() rather than isinstance(): True is an int to isinstance.
    return type(value) is int and 0 <= value <= _MAX_INT


def parse_tap_payload(p: str) -> TapTerms:
    """Parse and validate ``P``; every deviation from the canonical text
    (key order, whitespace, extra or duplicate keys, floats, bools, escapes)
    raises ``Rejected("bad_request")``."""
    if type(p) is not str or len(p) > MAX_PAYLOAD_CHARS:
        raise Rejected("bad_request", "payload not a short string")
    if p.startswith('{"market_id":'):
        k = _KEYED.fullmatch(p)
        if k is None:
            raise Rejected("bad_request", "market_id must be 1-40 chars of [A-Za-z0-9_./-]")
        if k[2].startswith('"market_id"'):
            raise Rejected("bad_request", "market_id twice")
        return _parse_plain("{" + k[2])._replace(market_id=k[1])
    return _parse_plain(p)


def _parse_plain(p):
    m = _CANONICAL.fullmatch(p)
    if m is not None:
        col, lo, stake, min_mult, ts = int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])
        if col <= _MAX_INT and lo <= _MAX_INT and stake <= _MAX_INT and min_mult <= _MAX_INT \
                and ts <= _MAX_INT:
            return TapTerms(col, lo, stake, min_mult, ts, m.group(6))
        raise Rejected("bad_request", "fields must be non-negative integers")
    # Not canonical: parse it anyway, only to say what is wrong with it.
    try:
        obj = json.loads(p)
        col, lo, stake = obj["col"], obj["lo"], obj["stake"]
        min_mult, ts, nonce = obj["min_mult"], obj["ts"], obj["nonce"]
        if "market_id" in obj:
            raise Rejected("bad_request", "market_id must be the first key")
    except (ValueError, TypeError, KeyError):
        raise Rejected("bad_request", "payload is not the tap object") from None
    if not (_check_int(col) and _check_int(lo) and _check_int(stake)
            and _check_int(min_mult) and _check_int(ts)):
        raise Rejected("bad_request", "fields must be non-negative integers")
    if type(nonce) is not str or not _NONCE.fullmatch(nonce):
        raise Rejected("bad_request", "nonce must be 8-64 chars of [A-Za-z0-9_-]")
    # One comparison catches order, whitespace, extra and duplicate keys.
    if encode_tap_payload(col, lo, stake, min_mult, ts, nonce) != p:
        raise Rejected("bad_request", "payload is not canonical")
    return TapTerms(col, lo, stake, min_mult, ts, nonce)


def load_session_key(raw65: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its 65-byte uncompressed point (WebCrypto
    ``raw`` export); not on the curve or wrong shape -> ``bad_request``."""
    if not isinstance(raw65, (bytes, bytearray)) or len(raw65) != 65 or raw65[0] != 4:
        raise Rejected("bad_request", "session key must be a 65-byte uncompressed point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(raw65))
    except ValueError:
        raise Rejected("bad_request", "session key is not a P-256 point") from None


def verify_tap(public_key, payload, sig_b64: str) -> bool:
    """True when ``sig_b64`` (raw r||s, base64url) signs the UTF-8 bytes of
    ``payload`` (or ``payload`` itself when bytes: the Wycheproof vectors
    sign arbitrary bytes) under ``public_key``; False on any failure, never
    raises."""
    try:
        raw = b64url_decode(sig_b64)
        if len(raw) != 64:
            return False
        r = int.from_bytes(raw[:32], "big")
        s = int.from_bytes(raw[32:], "big")
        if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
            return False
        data = payload if type(payload) is bytes else payload.encode("utf-8")
        public_key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
        return True
    except (InvalidSignature, Rejected, ValueError, TypeError, AttributeError):
        return False


def _der_int(raw):
    raw = raw.lstrip(b"\0") or b"\0"
    if raw[0] & 0x80:
        raw = b"\0" + raw
    return b"\x02" + bytes((len(raw),)) + raw


def verify_raw(public_key, data: bytes, raw64: bytes) -> bool:
    """``verify_tap`` for a signature already decoded to its 64 bytes and a
    payload already encoded: the part worth a native thread (OpenSSL's
    verify releases the GIL; the little DER wrapping here is cheap)."""
    if len(raw64) != 64:
        return False
    r, s = raw64[:32], raw64[32:]
    # 0 < r, s < n: a big-endian compare of equal-length bytes is numeric.
    if r >= _ORDER_BYTES or s >= _ORDER_BYTES or not r.strip(b"\0") or not s.strip(b"\0"):
        return False
    body = _der_int(r) + _der_int(s)
    try:
        public_key.verify(b"\x30" + bytes((len(body),)) + body, data, _ECDSA_SHA256)
        return True
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        return False


_ORDER_BYTES = _P256_ORDER.to_bytes(32, "big")


class SessionSigner:
    """A client-side session key (what the browser keeps in WebCrypto), for
    the Python client, locust and tests."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey):
        self._key = private_key
        self.public_raw = private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint)
        self.public_b64 = b64url_encode(self.public_raw)

    @classmethod
    def generate(cls) -> "SessionSigner":
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def sign(self, payload: str) -> str:
        der = self._key.sign(payload.encode("utf-8"), _ECDSA_SHA256)
        r, s = decode_dss_signature(der)
        return b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
