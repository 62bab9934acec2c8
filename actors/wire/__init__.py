"""The wire format every side shares (SPEC section 9): the canonical tap
payload, base64url, and tap signing and checking. The gateway checks taps
with it, the store rebuilds receipts with it, the Python client signs with it.

    >>> encode_tap_payload(1700000005000, 6500000, 100, 235, 1700000001234, "n0nce-abc")
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"n0nce-abc"}'
    >>> b64url_encode(b"\\xff\\xfe"), b64url_decode("__4")
    ('__4', b'\\xff\\xfe')
"""
from ._tapsig import (MAX_PAYLOAD_CHARS, SessionSigner, Rejected, TapTerms, b64url_decode,
                      b64url_encode, encode_tap_payload, load_session_key, parse_tap_payload,
                      verify_raw, verify_tap)

__all__ = [
    "Rejected", "TapTerms", "SessionSigner", "b64url_encode", "b64url_decode",
    "encode_tap_payload", "parse_tap_payload", "load_session_key", "verify_tap",
    "verify_raw", "MAX_PAYLOAD_CHARS",
]
