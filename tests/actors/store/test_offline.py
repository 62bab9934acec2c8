"""Offline credit and history (the CLI with the server stopped), and receipts
that anyone can verify: the payload rebuilt byte for byte, the signature
bytes unchanged."""
import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.store._audit import audit
from actors._model import LOST, VOID, WON, Bet, Settlement, payout_for
from actors.store._offline import credit_offline, history_offline
from actors.store._receipt import MAX_HISTORY_LIMIT, b64url, encode_tap_payload, next_cursor
from actors.store._store import KIND_CREDIT, Store
from actors.wire._tapsig import SessionSigner, b64url_decode, load_session_key, parse_tap_payload
from actors.wire._tapsig import encode_tap_payload as web_encode
from actors.wire._tapsig import verify_tap

COL = 1_700_000_005_000


def test_credit_creates_the_user_then_adds(db_path):
    assert credit_offline(db_path, "alice", 500, now=1) == 500
    assert credit_offline(db_path, "alice", 250, now=2) == 750
    assert credit_offline(db_path, "bob", 40, now=3) == 40
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT u.name, l.kind, l.amount, l.bet, l.ts FROM ledger l"
                        " JOIN users u ON u.id = l.user ORDER BY l.id").fetchall()
    balances = dict(conn.execute("SELECT name, balance FROM users"))
    conn.close()
    assert rows == [("alice", KIND_CREDIT, 500, None, 1), ("alice", KIND_CREDIT, 250, None, 2),
                    ("bob", KIND_CREDIT, 40, None, 3)]
    assert balances == {"alice": 750, "bob": 40}
    assert audit(db_path) == []


@pytest.mark.parametrize("amount", [0, -5, 1.5, True, "10"])
def test_credit_refuses_what_is_not_a_positive_integer(db_path, amount):
    credit_offline(db_path, "alice", 10)
    with pytest.raises(ValueError):
        credit_offline(db_path, "alice", amount)
    assert history_offline(db_path, "alice") == []
    store = Store(db_path)
    assert store.user_balance(1) == 10
    store.close()


def test_encoder_matches_the_web_layer_byte_for_byte():
    cases = [(COL, 9_500_000, 100, 235, COL - 4000, "n0nce-abc"),
             (0, 0, 1, 101, 0, "A_-zZ09a" * 8),
             (2 ** 53 - 1, 123_000, 10 ** 12, 10_000, 1, "abcdefgh")]
    for c in cases:
        p = encode_tap_payload(*c)
        assert p == web_encode(*c)
        assert tuple(parse_tap_payload(p)) == c + (None,)        # no market_id: a v1 tap


@pytest.fixture
def played(db_path):
    """alice places 7 signed bets (settled in every way) and bob one."""
    signer = SessionSigner.generate()
    credit_offline(db_path, "alice", 100_000, now=1)
    credit_offline(db_path, "bob", 100_000, now=1)
    store = Store(db_path)
    alice, bob = 1, 2
    taps = []
    for i in range(7):
        col, lo, stake, mult = COL + 5000 * i, 9_500_000 + 1000 * i, 100 + i, 150 + 10 * i
        ts, nonce = col - 4000, f"nonce-{i:010d}"
        sig = b64url_decode(signer.sign(web_encode(col, lo, stake, mult - 5, ts, nonce)))
        taps.append(Bet(alice, col, lo, stake, mult, mult - 5, ts, nonce, sig, ts + 7))
    ids, _ = store.write_batch(bets=taps[:3], now=2)
    ids += store.write_batch(bets=[taps[3]._replace(user=bob)], now=3)[0]
    ids += store.write_batch(bets=taps[3:], now=4)[0]
    outcomes = {ids[0]: WON, ids[1]: LOST, ids[2]: VOID, ids[5]: WON}
    store.write_batch(settlements=[
        Settlement(b, alice, 0, 0, 0, 0, o,
                   {WON: payout_for(t.stake, t.mult), LOST: 0, VOID: t.stake}[o])
        for b, o, t in [(ids[0], WON, taps[0]), (ids[1], LOST, taps[1]), (ids[2], VOID, taps[2]),
                        (ids[5], WON, taps[4])]], now=5)
    store.close()
    alice_ids = ids[:3] + ids[4:]
    return {"path": db_path, "signer": signer, "taps": dict(zip(alice_ids, taps)),
            "alice_ids": alice_ids, "bob_bet": ids[3], "outcomes": outcomes}


def test_history_is_newest_first_and_complete(played):
    bets = history_offline(played["path"], "alice")
    assert [b["bet"] for b in bets] == sorted(played["alice_ids"], reverse=True)
    assert played["bob_bet"] not in [b["bet"] for b in bets]
    names = {WON: "won", LOST: "lost", VOID: "void"}
    for b in bets:
        t = played["taps"][b["bet"]]
        outcome = played["outcomes"].get(b["bet"])
        assert set(b) == {"bet", "col", "lo", "stake", "mult", "outcome", "payout", "placed_at",
                          "payload", "sig"}
        assert (b["col"], b["lo"], b["stake"], b["mult"], b["placed_at"]) == \
            (t.col, t.lo, t.stake, t.mult, t.placed)
        assert b["outcome"] == names.get(outcome, "open")
        assert b["payout"] == {WON: payout_for(t.stake, t.mult), VOID: t.stake}.get(outcome, 0)
    assert audit(played["path"]) == []


def test_receipts_verify_with_the_session_key(played):
    key = load_session_key(played["signer"].public_raw)
    for b in history_offline(played["path"], "alice"):
        t = played["taps"][b["bet"]]
        assert b["payload"] == web_encode(t.col, t.lo, t.stake, t.min_mult, t.ts, t.nonce)
        assert b64url_decode(b["sig"]) == t.sig       # the 64 stored bytes, unchanged
        assert b["sig"] == b64url(t.sig) and "=" not in b["sig"]
        assert verify_tap(key, b["payload"], b["sig"])
        # A receipt with a changed stake no longer verifies.
        forged = web_encode(t.col, t.lo, t.stake + 1, t.min_mult, t.ts, t.nonce)
        assert not verify_tap(key, forged, b["sig"])


def test_history_pages_by_cursor(played):
    seen, cursor = [], None
    while True:
        page = history_offline(played["path"], "alice", limit=3, before_bet=cursor)
        assert len(page) <= 3
        seen += [b["bet"] for b in page]
        cursor = next_cursor(page, 3)
        if cursor is None:
            break
    assert seen == sorted(played["alice_ids"], reverse=True)
    assert len(set(seen)) == len(seen) == 7
    assert history_offline(played["path"], "alice", before_bet=min(seen)) == []


def test_next_cursor_with_an_oversized_limit():
    page = [{"bet": i} for i in range(MAX_HISTORY_LIMIT, 0, -1)]
    assert next_cursor(page, MAX_HISTORY_LIMIT * 10) == 1
    assert next_cursor(page[:-1], MAX_HISTORY_LIMIT) is None
    assert next_cursor([], 50) is None


def test_history_of_nobody(played, tmp_path):
    with pytest.raises(LookupError):
        history_offline(played["path"], "mallory")
    with pytest.raises(FileNotFoundError):
        history_offline(str(tmp_path / "absent.db"), "alice")
    assert not (tmp_path / "absent.db").exists()
