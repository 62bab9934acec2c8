"""The audit passes a clean database written through Store, and for each kind
of damage (made with a direct sqlite3 connection) names that damage first."""
import hashlib
import os

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.store._audit import audit
from actors._model import LOST, VOID, WON, Bet, Settlement, payout_for
from actors.store._spans import span_ledger, span_of
from actors.store._store import KIND_CREDIT, KIND_PAYOUT, KIND_REFUND, Store

COL = 1_700_000_005_000
#: where the payouts and refunds of these bets are (their day's ledger)
LEDGER = span_ledger(span_of(COL))


def _bet(user, i, stake=100, mult=235):
    return Bet(user=user, col=COL + 5000 * (i % 4), lo=9_500_000 + 1000 * (i % 7), stake=stake,
               mult=mult, min_mult=mult, ts=COL - 4000, nonce=f"nonce{i:012d}",
               sig=bytes([i % 256]) * 64, placed=COL - 3900)


def _settle(bet_id, b, outcome):
    payout = {WON: payout_for(b.stake, b.mult), LOST: 0, VOID: b.stake}[outcome]
    return Settlement(bet_id, b.user, b.col, b.lo, b.stake, b.mult, outcome, payout)


@pytest.fixture
def clean(db_path):
    """A small but complete history: credits, bets in all four states."""
    store = Store(db_path)
    alice = store.ensure_user("alice", credit=10_000, now=1)
    bob = store.ensure_user("bob", credit=5_000, now=2)
    carol = store.ensure_user("carol", now=3)
    store.write_batch(credits=[(carol, 700), (alice, 300)], now=4)
    bets = [_bet(alice, 0), _bet(alice, 1, stake=250, mult=410), _bet(bob, 2, stake=999, mult=101),
            _bet(bob, 3), _bet(carol, 4, stake=70), _bet(alice, 5)]
    ids, _ = store.write_batch(bets=bets, now=5)
    won, lost, void = ids[0], ids[1], ids[2]
    store.write_batch(settlements=[_settle(won, bets[0], WON), _settle(lost, bets[1], LOST),
                                   _settle(void, bets[2], VOID), _settle(ids[4], bets[4], WON)],
                      now=6)
    # A second settlement of the same bet is refused by the store: still clean.
    _, applied = store.write_batch(settlements=[_settle(won, bets[0], VOID)], now=7)
    assert applied == [False]
    store.close()
    return {"path": db_path, "alice": alice, "bob": bob, "carol": carol, "won": won,
            "lost": lost, "void": void, "open": ids[3], "won_payout": payout_for(100, 235)}


def _exec(path, *statements):
    conn = sqlite3.connect(path, isolation_level=None)
    for sql, params in statements:
        conn.execute(sql, params)
    conn.close()


def test_clean_database_passes(clean):
    assert audit(clean["path"]) == []


def test_audit_reads_while_the_writer_is_open(clean):
    store = Store(clean["path"])
    store.write_batch(bets=[_bet(clean["bob"], 9)], now=8)   # still in the WAL
    assert audit(clean["path"]) == []
    _exec(clean["path"], ("UPDATE users SET balance = balance - 1 WHERE id = ?", (clean["bob"],)))
    assert audit(clean["path"])[0].startswith(f"balance: user {clean['bob']} (bob)")
    store.close()


def test_audit_does_not_change_the_file(clean):
    before = hashlib.sha256(open(clean["path"], "rb").read()).hexdigest()
    assert audit(clean["path"]) == []
    assert hashlib.sha256(open(clean["path"], "rb").read()).hexdigest() == before
    assert not os.path.exists(clean["path"] + "-wal") or os.path.getsize(clean["path"] + "-wal") == 0


def test_balance_off_by_one(clean):
    _exec(clean["path"], ("UPDATE users SET balance = balance + 1 WHERE id = ?", (clean["alice"],)))
    problems = audit(clean["path"])
    assert problems[0].startswith(f"balance: user {clean['alice']} (alice) balance")
    assert "!=" in problems[0]
    assert problems[-1].startswith("balance: sum of balances")


@pytest.mark.parametrize("balance_forged_too", [False, True])
def test_second_payout_row(clean, balance_forged_too):
    s = [("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,?,?,9)",
          (clean["alice"], KIND_PAYOUT, clean["won_payout"], clean["won"]))]
    if balance_forged_too:
        s.append(("UPDATE users SET balance = balance + ? WHERE id = ?",
                  (clean["won_payout"], clean["alice"])))
    _exec(clean["path"], *s)
    problems = audit(clean["path"])
    assert problems[0].startswith(f"settlement: bet {clean['won']} settled 2 times")
    assert any(p.startswith("balance:") for p in problems) != balance_forged_too


def test_payout_on_a_lost_bet(clean):
    _exec(clean["path"],
          ("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,?,?,9)",
           (clean["alice"], KIND_PAYOUT, 500, clean["lost"])),
          ("UPDATE users SET balance = balance + 500 WHERE id = ?", (clean["alice"],)))
    problems = audit(clean["path"])
    assert problems[0].startswith("settlement: payout row")
    assert f"on lost bet {clean['lost']}" in problems[0]


def test_refund_on_an_open_bet(clean):
    _exec(clean["path"],
          ("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,?,?,9)",
           (clean["bob"], KIND_REFUND, 100, clean["open"])),
          ("UPDATE users SET balance = balance + 100 WHERE id = ?", (clean["bob"],)))
    assert f"on open bet {clean['open']}" in audit(clean["path"])[0]


def test_won_bet_without_its_payout_row(clean):
    _exec(clean["path"],
          (f"DELETE FROM {LEDGER} WHERE bet = ?", (clean["won"],)),
          ("UPDATE users SET balance = balance - ? WHERE id = ?",
           (clean["won_payout"], clean["alice"])))
    problems = audit(clean["path"])
    assert problems == [f"settlement: won bet {clean['won']} has no payout row"
                        f" (payout {clean['won_payout']})"]


def test_payout_of_the_wrong_amount(clean):
    _exec(clean["path"], (f"UPDATE {LEDGER} SET amount = amount + 5 WHERE bet = ?", (clean["won"],)),
          ("UPDATE users SET balance = balance + 5 WHERE id = ?", (clean["alice"],)))
    assert audit(clean["path"])[0].startswith("settlement: payout row")


def test_outcome_seven(clean):
    _exec(clean["path"], ("UPDATE bets SET outcome = 7 WHERE id = ?", (clean["lost"],)))
    problems = audit(clean["path"])
    assert problems[0].startswith(f"bet-state: bet {clean['lost']} in main.bets: invalid outcome")
    assert "outcome=7" in problems[0]


@pytest.mark.parametrize("sql, why", [
    ("UPDATE bets SET settled = NULL WHERE id = {won}", "settled without settled time"),
    ("UPDATE bets SET payout = 5 WHERE id = {open}", "open but has payout"),
    ("UPDATE bets SET settled = 9 WHERE id = {open}", "open but has payout or settled time"),
    ("UPDATE bets SET payout = payout + 1 WHERE id = {won}", "won payout != stake*mult//100"),
    ("UPDATE bets SET payout = 3 WHERE id = {lost}", "lost with a payout"),
    ("UPDATE bets SET payout = 1 WHERE id = {void}", "void payout != stake"),
])
def test_inconsistent_bet_fields(clean, sql, why):
    _exec(clean["path"], (sql.format(**clean), ()))
    assert why in audit(clean["path"])[0]
    assert audit(clean["path"])[0].startswith("bet-state:")


def test_ledger_row_for_a_missing_user(clean):
    _exec(clean["path"], ("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (999,?,50,NULL,9)",
                          (KIND_CREDIT,)))
    problems = audit(clean["path"])
    assert problems[0].startswith("ledger-ref: ledger row")
    assert "references missing user 999" in problems[0]
    # Per-user sums cannot see it; the grand total does.
    assert problems[-1].startswith("balance: sum of balances")


def test_payout_row_for_a_missing_bet(clean):
    _exec(clean["path"], ("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,50,424242,9)",
                          (clean["bob"], KIND_PAYOUT)))
    first = audit(clean["path"])[0]
    assert first.startswith("ledger-ref: payout row")
    assert first.endswith("references missing bet 424242")


def test_negative_balance_even_when_the_sums_agree(clean):
    store = Store(clean["path"])
    bal = store.user_balance(clean["carol"])
    store.write_batch(bets=[_bet(clean["carol"], 11, stake=bal + 1)], now=9)
    store.close()
    assert audit(clean["path"]) == [f"negative: user {clean['carol']} (carol) has balance -1"]


@pytest.mark.parametrize("damage", ["page_header", "index_entry"])
def test_damaged_file(clean, damage):
    conn = sqlite3.connect(clean["path"])
    # the history index of the day the bets are on (``_spans``)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                        (f"bets_user_{span_of(COL)}",)).fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(clean["path"], "r+b") as f:
        if damage == "page_header":
            # Queries touching the page fail: "database disk image is malformed".
            f.seek((root - 1) * page_size)
            f.write(b"\xa5" * 64)
        else:
            # The page's last byte is the bet id of its first index entry: the
            # file still reads, only integrity_check sees the index is wrong.
            f.seek(root * page_size - 1)
            last = f.read(1)[0]
            f.seek(root * page_size - 1)
            f.write(bytes([last ^ 0x40]))
    problems = audit(clean["path"])
    assert problems and all(p.startswith("integrity:") for p in problems), problems
    if damage == "index_entry":
        assert f"missing from index bets_user_{span_of(COL)}" in problems[0]


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(os.urandom(8192))
    assert audit(str(path))[0].startswith("integrity:")


def test_report_is_bounded(clean):
    _exec(clean["path"], ("UPDATE users SET balance = balance + 1", ()))   # all three users
    problems = audit(clean["path"], max_per_check=2)
    assert [p.split(" balance")[0] for p in problems] == [
        f"balance: user {clean['alice']} (alice)", f"balance: user {clean['bob']} (bob)",
        "balance: sum of"]
