"""EIP-191 personal_sign vectors (eth-account): the project's hash, its
signer (web.client.Wallet) and its address recovery (web.auth)."""
import json

import pytest

from tests.support import VECTORS
from actors.wire import Rejected
from web.auth import recover_address
from web.auth._siwe import _personal_sign_hash
from web.client import Wallet

VECTORS_191 = json.loads((VECTORS / "eip191" / "eth_account_personal_sign.json").read_text())["vectors"]


@pytest.mark.parametrize("v", VECTORS_191, ids=[v["id"] for v in VECTORS_191])
def test_personal_sign_vector(v):
    msg = v["message_utf8"]
    assert "0x" + _personal_sign_hash(msg).hex() == v["message_hash"]
    assert recover_address(msg, v["signature"]) == v["address"]
    wallet = Wallet(bytes.fromhex(v["private_key"][2:]))
    assert wallet.address == v["address"]
    assert wallet.personal_sign(msg) == v["signature"]          # RFC 6979: deterministic
    # v as 0/1 instead of 27/28 recovers the same address
    sig = bytes.fromhex(v["signature"][2:])
    assert recover_address(msg, "0x" + (sig[:64] + bytes([sig[64] - 27])).hex()) == v["address"]
    # and another message does not
    assert recover_address(msg + ".", v["signature"]) != v["address"]
    # a recovery id outside 0/1/27/28 is refused, not raised through
    with pytest.raises(Rejected):
        recover_address(msg, "0x" + (sig[:64] + bytes([29])).hex())


def test_all_vectors_present():
    assert len(VECTORS_191) == 3
