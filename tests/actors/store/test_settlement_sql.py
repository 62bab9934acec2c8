"""Set-based settlement (``Store._settle``): one batch of settlements applied
by a few statements over a temp table. Its outcomes must be exactly those
of settling one bet at a time: first settlement of a bet wins, a settled or
missing bet pays nothing, payouts and refunds become ledger rows, balances
move by the sum, and the audit stays clean. A real SQLite file throughout.
"""
import random

from actors.store._audit import audit
from actors._model import LOST, VOID, WON, Bet, Settlement, payout_for
from actors.store._spans import span_of, span_table
from actors.store._store import KIND_PAYOUT, KIND_REFUND, Store, open_readonly

COL = 1_800_000_000_000
LO = 9_500_000
TABLE = span_table(span_of(COL))        # the bets' day table (``_spans``)


def rows(db, sql, params=()):
    conn = open_readonly(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def place(store, users, n, seed=1):
    rnd = random.Random(seed)
    bets = [Bet(rnd.choice(users), COL, LO + 1000 * rnd.randrange(5), rnd.randrange(100, 900),
                rnd.randrange(150, 400), 101, COL - 5000 + i, f"nonce-{i:06d}", bytes(64),
                COL - 4990 + i) for i in range(n)]
    ids, _ = store.write_batch(bets=bets, now=COL - 4000)
    return list(zip(ids, bets))


def verdicts(placed, seed=2):
    rnd = random.Random(seed)
    out = []
    for bid, b in placed:
        outcome = rnd.choice((WON, LOST, VOID))
        payout = {WON: payout_for(b.stake, b.mult), LOST: 0, VOID: b.stake}[outcome]
        out.append(Settlement(bid, b.user, b.col, b.lo, b.stake, b.mult, outcome, payout))
    return out


def test_a_mixed_batch_settles_like_one_at_a_time(tmp_path):
    db = str(tmp_path / "s.db")
    store = Store(db)
    users = [store.ensure_user(f"u{i}", credit=10**9, now=0) for i in range(7)]
    placed = place(store, users, 300)
    settle = verdicts(placed)
    # Duplicates inside one batch: a second verdict for the same bet, and
    # an exact repeat; plus a bet that is not there (archived, or never was).
    dup = settle[10]._replace(outcome=VOID, payout=settle[10].stake)
    ghost = Settlement(10**9, users[0], COL, LO, 100, 200, WON, 200)
    batch = settle[:150] + [dup, settle[20], ghost] + settle[150:]
    _, applied = store.write_batch(settlements=batch, now=COL + 61_000)
    assert applied == [True] * 150 + [False, False, False] + [True] * 150

    # Each bet carries its first verdict, with the derived payout and time.
    got = {bid: (o, p, s) for bid, o, p, s in rows(db, "SELECT id, outcome, payout, settled FROM bets")}
    for s in settle:
        assert got[s.bet] == (s.outcome, s.payout, COL + 61_000)
    assert rows(db, f"SELECT count(*) FROM {TABLE} WHERE pay_adj != 0") == [(0,)]
    # One ledger row per payout or refund, none for a loss, in batch order.
    want = [(s.bet, KIND_PAYOUT if s.outcome == WON else KIND_REFUND, s.payout)
            for s in settle if s.payout]
    assert rows(db, "SELECT bet, kind, amount FROM ledger_all WHERE bet IS NOT NULL ORDER BY id") == want
    # Balances: credit - stakes + what came back.
    for u in users:
        stakes = sum(b.stake for _, b in placed if b.user == u)
        back = sum(s.payout for s in settle if s.user == u)
        assert store.user_balance(u) == 10**9 - stakes + back
    assert audit(db) == []

    # The same batch again applies nothing and moves no money.
    before = rows(db, "SELECT id, balance FROM users ORDER BY id")
    _, again = store.write_batch(settlements=batch, now=COL + 70_000)
    assert again == [False] * len(batch)
    assert rows(db, "SELECT id, balance FROM users ORDER BY id") == before
    assert rows(db, "SELECT count(*) FROM ledger_all WHERE bet IS NOT NULL") == [(len(want),)]
    # The open-bets index no longer lists any of them.
    assert store.load_state()[1] == []
    store.close()


def test_a_payout_that_differs_from_the_derived_one_is_kept_for_the_audit(tmp_path):
    db = str(tmp_path / "s.db")
    store = Store(db)
    u = store.ensure_user("u", credit=10_000, now=0)
    (bid, b), = place(store, [u], 1)
    wrong = Settlement(bid, u, b.col, b.lo, b.stake, b.mult, WON, payout_for(b.stake, b.mult) + 7)
    _, applied = store.write_batch(settlements=[wrong], now=COL + 61_000)
    assert applied == [True]
    assert rows(db, "SELECT payout FROM bets WHERE id=?", (bid,)) == [(wrong.payout,)]
    assert rows(db, f"SELECT pay_adj FROM {TABLE} WHERE id=?", (bid,)) == [(7,)]
    assert audit(db) != []          # the view shows it, so the audit can see it
    store.close()


def test_a_failed_batch_leaves_nothing_behind(tmp_path):
    db = str(tmp_path / "s.db")
    store = Store(db)
    u = store.ensure_user("u", credit=10_000, now=0)
    placed = place(store, [u], 5)
    settle = verdicts(placed)
    try:
        store.write_batch(settlements=settle, deletes=[("SELECT no_such_function()", ())],
                          now=COL + 61_000)
    except Exception:
        pass
    else:
        raise AssertionError("the bad statement should have failed the batch")
    assert rows(db, "SELECT count(*) FROM bets WHERE outcome != 0") == [(0,)]
    # and the temp table is empty for the next batch, which settles normally
    _, applied = store.write_batch(settlements=settle, now=COL + 61_000)
    assert applied == [True] * 5
    assert audit(db) == []
    store.close()
