"""Sign-In with Ethereum (EIP-4361) over ``personal_sign`` (EIP-191): build
and parse the message, recover the signer with coincurve + Keccak-256, and
check a login that authorises a P-256 session key (SPEC sections 4 and 9).

>>> from actors.wire import SessionSigner
>>> msg = build_message(domain="localhost:8080", uri="http://localhost:8080",
...     address="0x" + "ab" * 20, chain_id=1, nonce="a1b2c3d4e5f6a7b8",
...     issued_at="2024-01-01T00:00:00Z", expiration_time="2024-01-01T01:00:00Z",
...     session_key_b64=SessionSigner.generate().public_b64)
>>> m = parse_message(msg)
>>> (m.address, m.chain_id, m.expiration_ms - m.issued_at_ms)
('0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB', 1, 3600000)
>>> store = ChallengeStore(); n = store.issue()
>>> store.consume(n), store.consume(n)
(True, False)

Error codes (``Rejected.code``), a deliberately small set:
- ``bad_request``: not a well-formed EIP-4361 message or signature hex; no
  expiration, a session longer than allowed, no usable session key; made
  for another domain, URI, scheme or chain (the message says which);
- ``expired``: issued-at outside the allowed skew, past its expiration, or
  before its not-before;
- ``bad_signature``: the signature does not recover the message's address;
- ``replay``: the nonce was never issued, already used, or timed out.
"""
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional

import coincurve
from Crypto.Hash import keccak

from actors.wire import Rejected, b64url_decode, load_session_key

__all__ = [
    "SiweMessage", "SiweLogin", "ChallengeStore", "RedisChallengeStore",
    "build_message",
    "parse_message", "recover_address", "checksum_address", "verify_login",
    "SESSION_KEY_URN", "DEFAULT_STATEMENT",
]

SESSION_KEY_URN = "urn:tapgrid:session-key:"
DEFAULT_STATEMENT = "Sign in to tapgrid. This authorises a session key to place bets."

_HEADER = " wants you to sign in with your Ethereum account:"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# RFC 3339 date-time, as EIP-4361 requires; fromisoformat alone is looser.
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,17}")
_SIG_HEX = re.compile(r"(0x)?[0-9a-fA-F]{130}")
# EIP-4361's authority: host (no spaces, no slash) with optional port.
_DOMAIN = re.compile(r"(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://)?(?P<domain>[^\s/?#]+)")
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+")


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    statement: Optional[str]
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at_ms: int
    expiration_ms: Optional[int] = None
    not_before_ms: Optional[int] = None
    resources: list = field(default_factory=list)
    request_id: Optional[str] = None
    scheme: Optional[str] = None


@dataclass(frozen=True)
class SiweLogin:
    address: str
    session_key: bytes
    expiration_ms: int


def _keccak(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def checksum_address(address: str) -> str:
    """EIP-55 mixed-case spelling of a 20-byte hex address."""
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise Rejected("bad_request", "address must be 0x + 40 hex digits")
    lower = address[2:].lower()
    digest = _keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c
                          for c, h in zip(lower, digest))


def _rfc3339_ms(text: str, what: str) -> int:
    if not _DATETIME.fullmatch(text):
        raise Rejected("bad_request", f"{what} is not an RFC 3339 date-time")
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        whole = int(stamp.replace(microsecond=0).timestamp())
    except (ValueError, OverflowError):
        raise Rejected("bad_request", f"{what} is not a valid date") from None
    # Whole seconds plus integer ms, so sub-ms digits never pass a float.
    return whole * 1000 + stamp.microsecond // 1000


def build_message(*, domain, address, uri, chain_id, nonce, issued_at: str,
                  expiration_time: str, session_key_b64: str,
                  statement=DEFAULT_STATEMENT) -> str:
    """The EIP-4361 text the wallet shows and signs (the browser builds the
    same lines). ``address`` is written EIP-55 checksummed."""
    lines = [f"{domain}{_HEADER}", checksum_address(address), ""]
    if statement:
        lines += [statement, ""]
    else:
        lines += [""]
    lines += [
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {issued_at}",
        f"Expiration Time: {expiration_time}",
        "Resources:",
        f"- {SESSION_KEY_URN}{session_key_b64}",
    ]
    return "\n".join(lines)


def _field(lines, i, label):
    """Value of the optional line ``label: value`` at ``lines[i]``."""
    if i < len(lines) and lines[i].startswith(label + ": "):
        return lines[i][len(label) + 2:], i + 1
    return None, i


def parse_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly (line order and labels as in the
    ABNF); anything else raises ``Rejected("bad_request")``."""
    if not isinstance(text, str) or len(text) > 8192 or "\r" in text:
        raise Rejected("bad_request", "message must be LF-separated text")
    lines = text.split("\n")
    # 9 lines without a statement (the spruceid vectors have such), 8 in
    # the pre-2022 layout; 10 was too strict and refused valid messages.
    if len(lines) < 8 or not lines[0].endswith(_HEADER):
        raise Rejected("bad_request", "not a Sign-In with Ethereum message")
    m = _DOMAIN.fullmatch(lines[0][:-len(_HEADER)])
    if not m:
        raise Rejected("bad_request", "bad domain")
    address = lines[1]
    if not _ADDRESS.fullmatch(address):
        raise Rejected("bad_request", "bad address")
    body = address[2:]
    # EIP-55: a mixed-case address must carry a valid checksum.
    if body != body.lower() and body != body.upper() and checksum_address(address) != address:
        raise Rejected("bad_request", "address checksum is wrong")
    if lines[2] != "":
        raise Rejected("bad_request", "expected a blank line after the address")
    i = 3
    statement = None
    if lines[i] == "":
        i += 1
    elif not lines[i].startswith("URI: "):
        statement = lines[i]
        if i + 1 >= len(lines) or lines[i + 1] != "":
            raise Rejected("bad_request", "statement must be one line")
        i += 2
    # else: the pre-2022 layout without a statement (one blank line) - accept.

    required = {}
    for label in ("URI", "Version", "Chain ID", "Nonce", "Issued At"):
        value, i = _field(lines, i, label)
        if value is None:
            raise Rejected("bad_request", f"missing {label}")
        required[label] = value
    expiration, i = _field(lines, i, "Expiration Time")
    not_before, i = _field(lines, i, "Not Before")
    request_id, i = _field(lines, i, "Request ID")
    resources = []
    if i < len(lines) and lines[i] == "Resources:":
        i += 1
        while i < len(lines) and lines[i].startswith("- "):
            resources.append(lines[i][2:])
            i += 1
    if i != len(lines):
        raise Rejected("bad_request", f"unexpected line {i + 1}")

    if not _URI.fullmatch(required["URI"]):
        raise Rejected("bad_request", "bad URI")
    if required["Version"] != "1":
        raise Rejected("bad_request", "unsupported version")
    if not _CHAIN_ID.fullmatch(required["Chain ID"]):
        raise Rejected("bad_request", "bad chain id")
    if not _NONCE.fullmatch(required["Nonce"]):
        raise Rejected("bad_request", "bad nonce")
    for res in resources:
        if not _URI.fullmatch(res):
            raise Rejected("bad_request", "bad resource")
    return SiweMessage(
        domain=m.group("domain"), scheme=m.group("scheme"), address=address,
        statement=statement, uri=required["URI"], version="1",
        chain_id=int(required["Chain ID"]), nonce=required["Nonce"],
        issued_at_ms=_rfc3339_ms(required["Issued At"], "Issued At"),
        expiration_ms=None if expiration is None else _rfc3339_ms(expiration, "Expiration Time"),
        not_before_ms=None if not_before is None else _rfc3339_ms(not_before, "Not Before"),
        resources=resources, request_id=request_id)


def _personal_sign_hash(message_text: str) -> bytes:
    data = message_text.encode("utf-8")
    return _keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode("ascii") + data)


def recover_address(message_text: str, signature_hex: str) -> str:
    """The checksummed address whose key made this ``personal_sign``
    signature (65 bytes r||s||v as hex, v in 27/28 or 0/1)."""
    if not isinstance(signature_hex, str) or not _SIG_HEX.fullmatch(signature_hex):
        raise Rejected("bad_request", "signature must be 65 bytes of hex")
    sig = bytes.fromhex(signature_hex[2:] if signature_hex.startswith("0x") else signature_hex)
    v = sig[64]
    if v in (27, 28):
        v -= 27
    if v not in (0, 1):
        raise Rejected("bad_signature", "bad recovery id")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            sig[:64] + bytes([v]), _personal_sign_hash(message_text), hasher=None)
    except Exception:
        # coincurve raises plain Exception/ValueError for r or s out of range.
        raise Rejected("bad_signature", "signature does not recover a key") from None
    return checksum_address("0x" + _keccak(pub.format(compressed=False)[1:])[-20:].hex())


def _session_key(resources) -> bytes:
    keys = [r[len(SESSION_KEY_URN):] for r in resources if r.startswith(SESSION_KEY_URN)]
    if len(keys) != 1:
        raise Rejected("bad_request", "resources must list exactly one session key")
    try:
        raw = b64url_decode(keys[0])
        load_session_key(raw)
    except Rejected:
        raise Rejected("bad_request", "session key is not a P-256 point") from None
    return raw


def verify_login(message_text, signature_hex, *, domain, uri, chain_id, now_ms,
                 consume_nonce: Callable[[str], bool], max_age_ms=30_000,
                 max_session_ms=86_400_000) -> SiweLogin:
    """Check a login; return who signed and which session key they allow.

    The nonce is consumed last, only once everything else holds: someone who
    sees a challenge nonce in flight cannot burn it with a forged or garbled
    message, and a player whose wallet produced a slightly wrong message can
    retry with the same challenge. A nonce still cannot be used twice, since
    every successful login consumes it, and an unused one times out.
    """
    msg = parse_message(message_text)
    if msg.domain != domain:
        raise Rejected("bad_request", "message is for another domain")
    if msg.uri != uri:
        raise Rejected("bad_request", "message is for another URI")
    if msg.scheme is not None and msg.scheme.lower() != uri.partition("://")[0].lower():
        # EIP-4361: a scheme on the domain line must be the one the site is
        # served over (an http:// page must not reuse an https:// login).
        raise Rejected("bad_request", "message is for another scheme")
    if msg.chain_id != chain_id:
        raise Rejected("bad_request", "message is for another chain")
    if abs(now_ms - msg.issued_at_ms) > max_age_ms:
        raise Rejected("expired", "issued-at is too far from now")
    if msg.expiration_ms is None:
        raise Rejected("bad_request", "an expiration time is required")
    if msg.expiration_ms <= now_ms:
        raise Rejected("expired", "message has expired")
    if msg.expiration_ms - msg.issued_at_ms > max_session_ms:
        raise Rejected("bad_request", "session is longer than allowed")
    if msg.not_before_ms is not None and now_ms < msg.not_before_ms:
        raise Rejected("expired", "message is not valid yet")
    session_key = _session_key(msg.resources)
    signer = recover_address(message_text, signature_hex)
    if signer.lower() != msg.address.lower():
        raise Rejected("bad_signature", "signature is from another address")
    if not consume_nonce(msg.nonce):
        raise Rejected("replay", "nonce unknown, used or timed out")
    return SiweLogin(address=signer, session_key=session_key,
                     expiration_ms=msg.expiration_ms)


class ChallengeStore:
    """Login challenge nonces issued by this process: single use, expire
    after ``ttl_ms``, at most ``max_size`` outstanding (the oldest go first;
    the challenge endpoint's rate limit keeps honest ones from being pushed
    out). ``clock`` returns ms and is there for tests."""

    def __init__(self, ttl_ms=300_000, max_size=100_000, clock=None):
        self.ttl_ms = ttl_ms
        self.max_size = max_size
        self._clock = clock or (lambda: time.monotonic_ns() // 1_000_000)
        self._issued = OrderedDict()   # nonce -> deadline ms, oldest first
        # Login handlers may run in native threads; pops stay atomic anyway.
        self._lock = threading.Lock()

    def _sweep(self, now):
        issued = self._issued
        while issued:
            nonce, deadline = next(iter(issued.items()))
            if deadline > now and len(issued) <= self.max_size:
                break
            issued.popitem(last=False)

    def issue(self) -> str:
        # 128 random bits as 32 hex chars: alphanumeric, as EIP-4361 wants.
        nonce = secrets.token_hex(16)
        with self._lock:
            now = self._clock()
            self._issued[nonce] = now + self.ttl_ms
            self._sweep(now)
        return nonce

    def consume(self, nonce: str) -> bool:
        with self._lock:
            deadline = self._issued.pop(nonce, None)
            return deadline is not None and deadline > self._clock()

    def __len__(self):
        return len(self._issued)


class RedisChallengeStore:
    """The same contract as ``ChallengeStore``, in Redis (``--redis``), so a
    challenge issued by one process (or before a restart) can be redeemed
    by another, still exactly once: ``DEL`` answers 1 to one caller only."""

    def __init__(self, url, ttl_ms=300_000, prefix="tapgrid:c:", client=None):
        import redis
        self.ttl_ms = ttl_ms
        self.prefix = prefix
        self._redis = client or redis.Redis.from_url(url)

    def issue(self) -> str:
        nonce = secrets.token_hex(16)
        self._redis.set(self.prefix + nonce, 1, px=self.ttl_ms)
        return nonce

    def consume(self, nonce: str) -> bool:
        if not isinstance(nonce, str) or not nonce.isalnum() or len(nonce) > 64:
            return False
        return self._redis.delete(self.prefix + nonce) == 1

    def close(self):
        self._redis.close()
