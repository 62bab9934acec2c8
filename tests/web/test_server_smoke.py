"""The server end to end over the wire: guest sign-in, a tap acked after
commit, a result pushed, history with a verifiable receipt."""
import json

from actors.wire._tapsig import load_session_key, b64url_decode, verify_tap


def test_guest_taps_and_sees_the_ack_and_result(ws_client):
    c = ws_client()
    assert c.user.startswith("guest-") and c.balance == 100_000
    col, lo, mult = c.open_cell(0)
    # Any multiplier (1.01x up): the grid reprices on every tick, so the
    # one drawn may have moved by the time the tap is judged.
    ack = c.tap(col, lo, 500, min_mult=101)
    assert ack["ok"] is True and ack["mult"] >= 101 and ack["balance"] == 99_500
    assert c.wait_for(lambda: any(r["bet"] == ack["bet"] for r in c.results), 20), "no result"
    result = [r for r in c.results if r["bet"] == ack["bet"]][0]
    assert result["outcome"] in ("won", "lost", "void")
    page = c.history(limit=5)
    bet = [b for b in page["bets"] if b["bet"] == ack["bet"]][0]
    assert bet["outcome"] == result["outcome"]
    key = load_session_key(b64url_decode(c.signer.public_b64))
    assert verify_tap(key, bet["payload"], bet["sig"])        # a signed receipt
    assert json.loads(bet["payload"])["stake"] == 500
