"""Spans cut by size as well as time (``span_max_bets``, ``store._spans``):
a quarter's newest table full, its next bets go to a new one, in the
Writer's transaction; readers see every one; a day of many spans is
archived whole, also after a crash halfway through its drops."""
import os

import pysqlite3.dbapi2 as sqlite3

from actors.archive._files import archive_dir_of
from actors.archive._job import COMPRESSED, DAY_MS, archive_steps
from actors.archive._runner import archive_offline
from actors.bus._intake import _find_bets
from actors.store import (DROP_SPAN, SPAN_MS, bet_tables, quarter_of, span_days, span_of,
                          span_table, tables_of)
from actors.store._audit import audit
from actors.store._spans import SUB_BASE, next_span, span_limit
from actors._config import Config
from actors._model import LOST, WON, Settlement, payout_for
from actors.store._store import Store, open_readonly
from tests.actors.archive.test_archive import NOW, _check_exactly_once, full_history, make_db
from tests.actors.archive.test_spans import _bet, came_from_their_days

COL = NOW // SPAN_MS * SPAN_MS + 60_000


def _ids(conn):
    return {t: [r[0] for r in conn.execute(f"SELECT id FROM {t} ORDER BY id")]
            for t in bet_tables(conn)}


def test_a_full_span_rolls_over_mid_quarter_and_a_batch_across_the_limit_splits(db_path):
    store = Store(db_path, span_max_bets=4)
    alice = store.ensure_user("alice", credit=100_000, now=0)
    q = span_of(COL)
    assert store.write_batch(bets=[_bet(alice, COL, i) for i in range(3)], now=0)[0] == [1, 2, 3]
    # 6 more, one on the next quarter: the first fills span q, the rest go on
    batch = [_bet(alice, COL + 5000 * i, 3 + i) for i in range(5)] + [_bet(alice, COL + SPAN_MS, 8)]
    assert store.write_batch(bets=batch, now=0)[0] == [4, 5, 6, 7, 8, 9]
    sub1, sub2 = next_span(q), next_span(next_span(q))
    assert sub1 == q * 1000 + 1 and sub1 >= SUB_BASE and quarter_of(sub1) == q
    assert _ids(store.conn) == {"bet_rows": [], span_table(q): [1, 2, 3, 4],
                                span_table(sub1): [5, 6, 7, 8], span_table(q + 1): [9]}
    assert store.user_balance(alice) == 100_000 - 900
    # settled wherever they are, paid into each span's own ledger
    _, applied = store.write_batch(settlements=[
        Settlement(i, alice, COL, 9_500_000, 100, 235, WON if i % 2 else LOST,
                   payout_for(100, 235) if i % 2 else 0) for i in (2, 5, 7)], now=COL + 10_000)
    assert applied == [True, True, True]
    assert store.conn.execute(f"SELECT bet FROM ledger_{sub1} ORDER BY bet").fetchall() == [
        (5,), (7,)]
    assert store.user_balance(alice) == 100_000 - 900 + 2 * 235
    store.close()
    # a new Writer counts the newest span again: it is full, so the next is cut
    store = Store(db_path, span_max_bets=4)
    ids, _ = store.write_batch(bets=[_bet(alice, COL, 9 + i) for i in range(2)], now=0)
    assert _ids(store.conn)[span_table(sub1)] == [5, 6, 7, 8]
    assert _ids(store.conn)[span_table(sub2)] == ids == [10, 11]
    users, open_bets = store.load_state()
    nonces = [n for _, n, _ in store.recent_nonces(COL - 4000)]
    store.close()
    assert sorted(b[0] for b in open_bets) == [1, 3, 4, 6, 8, 9, 10, 11]
    assert sorted(nonces) == [f"nonce{i:011d}" for i in range(11)]
    conn = open_readonly(db_path)
    try:
        assert span_days(conn) == [q, sub1, sub2, q + 1]
        assert tables_of(conn, COL) == [span_table(d) for d in (q, sub1, sub2)]
        assert conn.execute("SELECT count(*), sum(stake) FROM bets").fetchone() == (11, 1100)
    finally:
        conn.close()
    assert [r["bet"] for r in full_history(db_path, "alice", limit=3)] == list(range(11, 0, -1))
    assert _find_bets(db_path, [(alice, "nonce00000000004"), (alice, "nonce00000000010")]) == {
        (alice, "nonce00000000004"): (5, 235), (alice, "nonce00000000010"): (11, 235)}
    assert audit(db_path) == []


def test_a_busy_quarter_takes_a_bounded_number_of_spans(db_path):
    # sizes: four of span_max_bets, then doubling, the fifteenth unbounded
    sizes, span = [], 80_000
    for _ in range(15):
        sizes.append(span_limit(span, 40_000))
        span = next_span(span)
    assert sizes[:6] == [40_000] * 4 + [80_000, 160_000] and sizes[-1] is None
    # 3,000 taps/s for six hours fit in 14, seven days of them under SQLite's
    # 500 arms of a UNION ALL (the views)
    assert sum(sizes[:13]) < 3_000 * SPAN_MS // 1000 <= sum(sizes[:14])
    assert 29 * 15 + 1 < 500
    # the same with span_max_bets=1: 2,100 bets of one quarter make 15 tables, and read as one
    store = Store(db_path, span_max_bets=1)
    alice = store.ensure_user("alice", credit=10 ** 9, now=0)
    q = span_of(COL)
    for k in range(0, 2100, 700):
        store.write_batch(bets=[_bet(alice, COL, k + i) for i in range(700)], now=0)
    try:
        assert len(span_days(store.conn)) == 15
        assert store.conn.execute("SELECT count(*) FROM bets").fetchone() == (2100,)
        assert store.conn.execute("SELECT count(*) FROM ledger_all").fetchone() == (1,)
        # and past max_spans tables in all, nothing more is cut by size (a
        # new quarter still gets its table: quarters never mix)
        store.max_spans = 17
        for k in range(3):
            store.write_batch(bets=[_bet(alice, COL + (k + 1) * SPAN_MS, 3000 + i)
                                    for i in range(5)], now=0)
        assert [quarter_of(d) for d in span_days(store.conn)[15:]] == [q + 1, q + 1, q + 2, q + 3]
        assert store.conn.execute(f"SELECT count(*) FROM {span_table(q + 2)}").fetchone() == (5,)
    finally:
        store.close()


def test_a_day_of_many_spans_is_archived_whole(db_path):
    bets, _ = make_db(db_path, days=10, per_day=400, span_max_bets=30)
    want = full_history(db_path, "u2")
    before = span_days(sqlite3.connect(db_path))
    assert len(before) > 3 * 10 * 4          # about four tables a quarter
    report = archive_offline(Config(db=db_path), now_ms=NOW)
    assert report["errors"] == []
    cutoff_day = (NOW - 7 * DAY_MS) // DAY_MS

    def day_of(span):
        return quarter_of(span) * SPAN_MS // DAY_MS
    gone = [d for d in before if day_of(d) < cutoff_day]
    kept = [d for d in before if day_of(d) >= cutoff_day]
    assert bet_tables(open_readonly(db_path)) == ["bet_rows"] + [span_table(d) for d in kept]
    files = _check_exactly_once(db_path, archive_dir_of(None, db_path), set(bets), final=True)
    assert len(files) == 3
    came_from_their_days(db_path, gone)
    assert full_history(db_path, "u2") == want
    assert audit(db_path) == []


def test_a_crash_halfway_through_a_days_drops_is_finished_by_the_next_run(tmp_path):
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=9, per_day=300, users=5, span_max_bets=25)
    want = full_history(db, "u1")
    adir = archive_dir_of(None, db)
    os.makedirs(adir)
    store = Store(db)
    gen = archive_steps(db, adir, NOW, 7)
    result, drops = None, 0
    while drops < 3:        # the file recorded, three of the day's spans taken
        req = gen.send(result)
        result = None
        if req[0] == "write":
            store.write_batch(deletes=req[1], now=NOW)
            result = True
            drops += any(st[0] == DROP_SPAN for st in req[1])
    store.close()
    gen.close()             # the process dies here
    conn = open_readonly(db)
    src = conn.execute("SELECT src FROM archive_files").fetchone()[0].split(",")
    # taken spans are emptied, not dropped (no schema change beside taps)
    assert set(src) <= set(bet_tables(conn))
    left = {t for t in src if conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()}
    conn.close()
    assert len(src) - len(left) == 3 and left
    _check_exactly_once(db, adir, set(bets))             # each bet once, the audit clean
    assert audit(db) == []
    report = archive_offline(Config(db=db), now_ms=NOW)
    assert report["errors"] == []
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert all(st == COMPRESSED for st, _ in files.values())
    assert not set(src) & set(bet_tables(open_readonly(db)))
    assert full_history(db, "u1") == want
    assert audit(db) == []
