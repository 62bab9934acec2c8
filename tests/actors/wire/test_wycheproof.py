"""Wycheproof ECDSA P-256 / SHA-256 in IEEE P1363 form (raw r||s, what
WebCrypto signs): all 262 cases through the project's tap-signature check,
``actors.wire.verify_tap``. Valid cases verify, invalid ones are refused,
none raises."""
import json

from tests.support import VECTORS
from actors.wire import b64url_encode, load_session_key, verify_tap

FILE = VECTORS / "wycheproof" / "ecdsa_secp256r1_sha256_p1363_test.json"


def test_every_p1363_case_gives_the_expected_answer():
    data = json.loads(FILE.read_text())
    assert data["algorithm"] == "ECDSA"
    wrong, seen, valid = [], 0, 0
    for group in data["testGroups"]:
        assert group["sha"] == "SHA-256" and group["publicKey"]["curve"] == "secp256r1"
        key = load_session_key(bytes.fromhex(group["publicKey"]["uncompressed"]))
        for t in group["tests"]:
            seen += 1
            msg, sig = bytes.fromhex(t["msg"]), b64url_encode(bytes.fromhex(t["sig"]))
            got = verify_tap(key, msg, sig)
            want = t["result"] == "valid"
            try:
                text = msg.decode("utf-8")      # the path a tap payload takes
            except UnicodeDecodeError:
                text = None
            if text is not None and verify_tap(key, text, sig) is not got:
                wrong.append((t["tcId"], "str and bytes disagree", got))
            valid += want
            if got is not want:
                wrong.append((t["tcId"], t["comment"], got))
    assert seen == data["numberOfTests"] == 262
    assert (valid, seen - valid) == (173, 89)
    assert not wrong, wrong
    print(f"\nwycheproof p1363: {seen - len(wrong)}/{seen}")
