"""SIWE login checked against real wallet signatures made by eth-account."""
from datetime import datetime, timezone

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from web.auth._siwe import (
    ChallengeStore, build_message, checksum_address, parse_message,
    recover_address, verify_login)
from actors.wire import Rejected, SessionSigner, b64url_decode

DOMAIN = "tapgrid.example:8080"
URI = "https://tapgrid.example:8080"
CHAIN = 1
NOW = 1_700_000_000_000
KEY = "0x" + "4c" * 32
OTHER_KEY = "0x" + "5d" * 32


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_message(store, *, address=None, nonce=None, issued_ms=NOW, exp_ms=NOW + 3_600_000,
                 domain=DOMAIN, uri=URI, chain_id=CHAIN, session_key_b64=None):
    session_key_b64 = session_key_b64 or SessionSigner.generate().public_b64
    return build_message(
        domain=domain, address=address or Account.from_key(KEY).address, uri=uri,
        chain_id=chain_id, nonce=nonce or store.issue(), issued_at=iso(issued_ms),
        expiration_time=iso(exp_ms), session_key_b64=session_key_b64)


def sign(text, key=KEY):
    return "0x" + Account.sign_message(encode_defunct(text=text), key).signature.hex().removeprefix("0x")


def login(store, text, sig, now_ms=NOW):
    return verify_login(text, sig, domain=DOMAIN, uri=URI, chain_id=CHAIN, now_ms=now_ms,
                        consume_nonce=store.consume)


def code_of(store, text, sig, now_ms=NOW):
    return refusal_of(store, text, sig, now_ms).code


def refusal_of(store, text, sig, now_ms=NOW):
    with pytest.raises(Rejected) as err:
        login(store, text, sig, now_ms)
    return err.value


@pytest.fixture
def store():
    return ChallengeStore()


def test_successful_login_returns_address_key_and_expiry(store):
    signer = SessionSigner.generate()
    text = make_message(store, session_key_b64=signer.public_b64)
    result = login(store, text, sign(text))
    assert result.address == Account.from_key(KEY).address
    assert result.session_key == b64url_decode(signer.public_b64)
    assert result.expiration_ms == NOW + 3_600_000


def test_message_layout_is_eip4361():
    text = build_message(domain=DOMAIN, address="0x" + "ab" * 20, uri=URI, chain_id=CHAIN,
                         nonce="abcdef0123456789", issued_at="2023-11-14T22:13:20Z",
                         expiration_time="2023-11-14T23:13:20Z", session_key_b64="KEY")
    assert text.split("\n") == [
        f"{DOMAIN} wants you to sign in with your Ethereum account:",
        "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB",
        "",
        "Sign in to tapgrid. This authorises a session key to place bets.",
        "",
        f"URI: {URI}",
        "Version: 1",
        "Chain ID: 1",
        "Nonce: abcdef0123456789",
        "Issued At: 2023-11-14T22:13:20Z",
        "Expiration Time: 2023-11-14T23:13:20Z",
        "Resources:",
        "- urn:tapgrid:session-key:KEY",
    ]
    m = parse_message(text)
    assert (m.domain, m.uri, m.chain_id, m.nonce, m.version) == (DOMAIN, URI, 1, "abcdef0123456789", "1")
    assert m.issued_at_ms == NOW and m.expiration_ms == NOW + 3_600_000
    assert m.resources == ["urn:tapgrid:session-key:KEY"]


def test_parse_accepts_scheme_and_optional_fields():
    text = (f"https://{DOMAIN} wants you to sign in with your Ethereum account:\n"
            f"{'0x' + 'ab' * 20}\n\n\nURI: {URI}\nVersion: 1\nChain ID: 10\n"
            "Nonce: abcdef0123456789\nIssued At: 2023-11-14T23:13:20.5+01:00\n"
            "Not Before: 2023-11-14T22:13:20Z\nRequest ID: r-1")
    m = parse_message(text)
    assert (m.scheme, m.domain, m.statement, m.chain_id) == ("https", DOMAIN, None, 10)
    assert m.issued_at_ms == NOW + 500 and m.not_before_ms == NOW
    assert m.expiration_ms is None and m.request_id == "r-1" and m.resources == []


def test_checksum_address_matches_eip55_vectors():
    # Vectors from the EIP-55 text.
    for addr in ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                 "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                 "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"]:
        assert checksum_address(addr.lower()) == addr


def test_wrong_domain_uri_chain_are_refused_saying_which(store):
    for kwargs, which in [(dict(domain="evil.example"), "another domain"),
                          (dict(uri="https://evil.example"), "another URI"), (dict(chain_id=5), "another chain")]:
        text = make_message(store, **kwargs)
        e = refusal_of(store, text, sign(text))
        assert (e.code, e.detail) == ("bad_request", f"message is for {which}")


def test_expired_message(store):
    text = make_message(store, issued_ms=NOW - 10_000, exp_ms=NOW - 1)
    assert code_of(store, text, sign(text)) == "expired"


def test_issued_at_too_old_or_in_future(store):
    text = make_message(store, issued_ms=NOW - 30_001)
    assert code_of(store, text, sign(text)) == "expired"
    text = make_message(store, issued_ms=NOW + 30_001)
    assert code_of(store, text, sign(text)) == "expired"
    # Just inside the window on both sides is fine.
    for issued in (NOW - 30_000, NOW + 30_000):
        text = make_message(store, issued_ms=issued, exp_ms=NOW + 60_000)
        assert login(store, text, sign(text)).expiration_ms == NOW + 60_000


def test_session_longer_than_24h_is_refused(store):
    text = make_message(store, exp_ms=NOW + 86_400_001)
    assert code_of(store, text, sign(text)) == "bad_request"
    text = make_message(store, exp_ms=NOW + 86_400_000)
    assert login(store, text, sign(text))


def test_missing_expiration_is_refused(store):
    text = make_message(store)
    text = "\n".join(l for l in text.split("\n") if not l.startswith("Expiration Time:"))
    assert code_of(store, text, sign(text)) == "bad_request"


def test_not_before_in_future_is_refused(store):
    text = make_message(store).replace("\nResources:", f"\nNot Before: {iso(NOW + 5_000)}\nResources:")
    assert code_of(store, text, sign(text)) == "expired"


def test_reused_nonce_is_replay(store):
    text = make_message(store)
    sig = sign(text)
    assert login(store, text, sig)
    assert code_of(store, text, sig) == "replay"


def test_unknown_nonce_is_replay(store):
    text = make_message(store, nonce="neverIssued12345")
    assert code_of(store, text, sign(text)) == "replay"


def test_another_addresss_signature_is_bad_signature_and_keeps_nonce(store):
    nonce = store.issue()
    text = make_message(store, nonce=nonce)
    assert code_of(store, text, sign(text, OTHER_KEY)) == "bad_signature"
    # The failed attempt did not burn the challenge.
    assert login(store, text, sign(text)).address == Account.from_key(KEY).address


def test_tampered_message_is_bad_signature(store):
    text = make_message(store, exp_ms=NOW + 60_000)
    sig = sign(text)
    tampered = text.replace(f"Expiration Time: {iso(NOW + 60_000)}",
                            f"Expiration Time: {iso(NOW + 3_600_000)}")
    assert tampered != text
    assert code_of(store, tampered, sig) == "bad_signature"


@pytest.mark.parametrize("bad", ["", "0x", "0x1234", "0x" + "zz" * 65, "0x" + "00" * 66, None, 12])
def test_malformed_signature_hex_is_bad_request(store, bad):
    text = make_message(store)
    assert code_of(store, text, bad) == "bad_request"


def test_unrecoverable_signature_is_bad_signature(store):
    text = make_message(store)
    sig = bytes.fromhex(sign(text)[2:])
    for broken in (bytes(64) + b"\x1b", sig[:64] + b"\x05", b"\xff" * 64 + b"\x1c"):
        assert code_of(store, text, "0x" + broken.hex()) == "bad_signature"


def test_v_as_0_or_1_and_no_prefix_accepted(store):
    text = make_message(store)
    sig = bytes.fromhex(sign(text)[2:])
    raw = sig[:64] + bytes([sig[64] - 27])
    assert recover_address(text, raw.hex()) == Account.from_key(KEY).address
    assert recover_address(text, "0x" + sig.hex()) == Account.from_key(KEY).address


@pytest.mark.parametrize("resource_lines", [
    [],                                                       # no session key
    ["- https://tapgrid.example/terms"],                      # no session key
    ["- urn:tapgrid:session-key:" + SessionSigner.generate().public_b64] * 2,  # two
    ["- urn:tapgrid:session-key:AAAA"],                       # not a point
    ["- urn:tapgrid:session-key:" + "A" * 87],                # 65 zero bytes
])
def test_bad_or_missing_session_key_resource_is_bad_request(store, resource_lines):
    text = make_message(store)
    head = text.split("\nResources:")[0]
    text = head + ("\nResources:\n" + "\n".join(resource_lines) if resource_lines else "")
    assert code_of(store, text, sign(text)) == "bad_request"


@pytest.mark.parametrize("mutate", [
    lambda t: t.replace(" wants you to sign in", " would like you to sign in"),
    lambda t: t.replace("Version: 1", "Version: 2"),
    lambda t: t.replace("Chain ID: 1", "Chain ID: one"),
    lambda t: t.replace("\nURI: ", "\nUri: "),
    lambda t: t.replace("Issued At: ", "Issued At: yesterday "),
    lambda t: t + "\nextra line",
    lambda t: t.replace("\n", "\r\n"),
    lambda t: t.replace("Nonce: ", "Nonce: !"),
    lambda t: t.split("\n", 1)[0] + "\n0xnothex\n" + t.split("\n", 2)[2],
])
def test_malformed_messages_are_bad_request(store, mutate):
    text = mutate(make_message(store))
    assert code_of(store, text, sign(text)) == "bad_request"


def test_bad_checksum_address_is_bad_request(store):
    addr = Account.from_key(KEY).address
    flipped = addr[:2] + "".join(c.swapcase() if c.isalpha() else c for c in addr[2:])
    text = make_message(store).replace(addr, flipped)
    assert flipped != addr
    assert code_of(store, text, sign(text)) == "bad_request"


def test_lowercase_address_in_message_is_accepted(store):
    addr = Account.from_key(KEY).address
    text = make_message(store).replace(addr, addr.lower())
    assert login(store, text, sign(text)).address == addr


def test_challenge_store_nonces_are_single_use_expire_and_bounded():
    clock = [0]
    store = ChallengeStore(ttl_ms=1_000, max_size=3, clock=lambda: clock[0])
    a, b = store.issue(), store.issue()
    assert a != b and a.isalnum() and len(a) >= 16
    assert store.consume(a) and not store.consume(a)
    clock[0] = 1_000
    assert not store.consume(b)                       # timed out
    nonces = [store.issue() for _ in range(5)]
    assert len(store) == 3                            # oldest pushed out
    assert not store.consume(nonces[0]) and store.consume(nonces[-1])
    assert not store.consume("anything-else")


def test_a_scheme_on_the_domain_line_must_match_the_site(store):
    scheme = URI.partition("://")[0]
    other = "http" if scheme == "https" else "https"
    text = make_message(store, domain=f"{other}://{DOMAIN}")
    e = refusal_of(store, text, sign(text))
    assert (e.code, e.detail) == ("bad_request", "message is for another scheme")
    text = make_message(store, domain=f"{scheme}://{DOMAIN}")
    assert login(store, text, sign(text)).address
