"""Hot bets in a table per day (``actors/store/_spans.py``): a day's first
bet creates its span, every reader sees all of them through ``bets``, the
archiver drops a whole day at once (checked by the Store in the transaction),
a crash between the file and the drop is completed, and a database from
before spans keeps its bets in ``bet_rows`` and is archived row by row."""

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.archive._job import COMPRESSED, COPIED, DAY_MS, archive_steps
from actors.archive._runner import archive_offline
from actors.archive._files import archive_dir_of
from actors.bus._intake import _find_bets
from actors.store import (DROP_SPAN, BETS_VIEW, SPAN_MS, SpanChanged, bet_tables, quarter_of,
                          span_days, span_ledger, span_of, span_table)
from actors.store._audit import audit
from actors._config import Config
from actors._model import LOST, VOID, WON, Bet, Settlement, payout_for
from actors.store._store import Store, open_readonly
from tests.actors.archive.test_archive import (NOW, _check_exactly_once, archivable, full_history,
                                               hot_ids, make_db)

MIDNIGHT = NOW // DAY_MS * DAY_MS


def _bet(user, col, i, stake=100):
    return Bet(user, col, 9_500_000, stake, 235, 235, col - 4000, f"nonce{i:011d}", bytes(64),
               col - 3990)


def _tables(db):
    conn = open_readonly(db)
    try:
        return bet_tables(conn), [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'ledger*'")]
    finally:
        conn.close()


def test_a_batch_across_midnight_goes_to_two_days_and_reads_as_one(db_path):
    store = Store(db_path)
    alice = store.ensure_user("alice", credit=100_000, now=0)
    before, after = MIDNIGHT - 5000, MIDNIGHT + 5000
    bets = [_bet(alice, before, 0), _bet(alice, after, 1), _bet(alice, before, 2, stake=300)]
    ids, _ = store.write_batch(bets=bets, now=0)
    assert ids == [1, 2, 3]
    day = span_of(after)        # the spans: a quarter of a day each
    assert span_of(before) == day - 1 and DAY_MS // SPAN_MS == 4
    assert span_days(store.conn) == [day - 1, day]
    in_table = {t: [r[0] for r in store.conn.execute(f"SELECT id FROM {t}")]
                for t in bet_tables(store.conn)}
    assert in_table == {"bet_rows": [], span_table(day - 1): [1, 3], span_table(day): [2]}
    assert store.user_balance(alice) == 100_000 - 500
    # a settlement naming a column the bet is not on still finds it (every span is
    # looked in), and pays into the ledger of the bet's day
    wrong_col = Settlement(2, alice, before, 9_500_000, 100, 235, WON, payout_for(100, 235))
    _, applied = store.write_batch(settlements=[
        Settlement(1, alice, before, 9_500_000, 100, 235, VOID, 100), wrong_col,
        Settlement(3, alice, before, 9_500_000, 300, 235, LOST, 0)], now=after + 6000)
    assert applied == [True, True, True]
    paid = {t: store.conn.execute(f"SELECT bet, amount FROM {t} WHERE bet IS NOT NULL"
                                  ).fetchall() for t in (span_ledger(day - 1), span_ledger(day))}
    assert paid == {span_ledger(day - 1): [(1, 100)], span_ledger(day): [(2, 235)]}
    assert store.user_balance(alice) == 100_000 - 500 + 100 + 235
    # a new connection of the Writer picks up the ids after the newest span
    store.close()
    store = Store(db_path)
    assert store.write_batch(bets=[_bet(alice, after, 4)], now=0)[0] == [4]
    nonces = [n for _, n, _ in store.recent_nonces(after - 4000)]
    store.close()
    assert nonces == ["nonce00000000004", "nonce00000000001"]
    conn = open_readonly(db_path)
    try:
        got = conn.execute("SELECT id, outcome, payout FROM bets ORDER BY id").fetchall()
        assert got == [(1, VOID, 100), (2, WON, 235), (3, LOST, 0), (4, 0, 0)]
        assert conn.execute("SELECT count(*) FROM ledger_all WHERE bet IS NOT NULL"
                            ).fetchone() == (2,)
    finally:
        conn.close()
    # history and the gateway's redelivery lookup read every day
    assert [r["bet"] for r in full_history(db_path, "alice")] == [4, 3, 2, 1]
    assert _find_bets(db_path, [(alice, "nonce00000000001"), (alice, "nonce00000000002")]) == {
        (alice, "nonce00000000001"): (2, 235), (alice, "nonce00000000002"): (3, 235)}
    assert audit(db_path) == []


def test_archiving_drops_each_old_day_whole(db_path):
    bets, _ = make_db(db_path, days=10, per_day=400)
    want = full_history(db_path, "u2")
    days_before = span_days(sqlite3.connect(db_path))
    report = archive_offline(Config(db=db_path), now_ms=NOW)
    assert report["errors"] == [] and report["bets"] > 0
    tables, ledgers = _tables(db_path)
    def day_of(span):
        return quarter_of(span) * SPAN_MS // DAY_MS
    cutoff_day = (NOW - 7 * DAY_MS) // DAY_MS
    kept = [d for d in days_before if day_of(d) >= cutoff_day]
    gone = [d for d in days_before if day_of(d) < cutoff_day]
    assert tables == ["bet_rows"] + [span_table(d) for d in kept]
    assert sorted(ledgers) == sorted(["ledger"] + [span_ledger(d) for d in kept])
    adir = archive_dir_of(None, db_path)
    files = _check_exactly_once(db_path, adir, set(bets), final=True)
    assert len(files) == len({day_of(d) for d in gone}) == 3
    came_from_their_days(db_path, gone)
    assert full_history(db_path, "u2") == want


def came_from_their_days(db_path, gone):
    """Every file came from its day's spans (``gone``), and their pages were given back."""
    def day_of(span):
        return quarter_of(span) * SPAN_MS // DAY_MS
    conn = open_readonly(db_path)
    try:
        assert {r[0] for r in conn.execute("SELECT src FROM archive_files")} == {
            ",".join(span_table(d) for d in gone if day_of(d) == day)
            for day in {day_of(d) for d in gone}}
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
    finally:
        conn.close()


def test_the_store_refuses_to_drop_a_day_that_is_not_what_the_file_holds(db_path):
    make_db(db_path, days=9, per_day=200)
    store = Store(db_path)
    try:
        day = span_days(store.conn)[0]
        n = store.conn.execute(f"SELECT count(*) FROM {span_table(day)}").fetchone()[0]
        lmax = store.conn.execute(f"SELECT max(id) FROM {span_ledger(day)}").fetchone()[0]
        for wrong in ((day, n - 1, lmax), (day, n, lmax - 1), (day + 100, 0, None)):
            with pytest.raises(SpanChanged):
                store.write_batch(deletes=[(DROP_SPAN, wrong)])
        assert day in span_days(store.conn) and day in store.days
        # a bet still open on that day: refused too
        store.conn.execute(f"UPDATE {span_table(day)} SET outcome = 0, settled_off = -8388608"
                           f" WHERE id = (SELECT min(id) FROM {span_table(day)})")
        with pytest.raises(SpanChanged):
            store.write_batch(deletes=[(DROP_SPAN, (day, n, lmax))])
        assert day in span_days(store.conn)
    finally:
        store.close()


def test_a_crash_between_the_file_and_the_drop_is_finished_by_the_next_run(tmp_path):
    db, bets, want, adir = archivable(tmp_path, "u1")
    store = Store(db)
    gen = archive_steps(db, adir, NOW, 7)
    result = None
    while True:             # up to the file's record: COPIED, the day still hot
        req = gen.send(result)
        result = None
        if req[0] == "write":
            store.write_batch(deletes=req[1], now=NOW)
            result = True
            if "INSERT INTO archive_files" in req[1][0][0]:
                break
    store.close()
    gen.close()             # the process dies here
    conn = open_readonly(db)
    state, src = conn.execute("SELECT state, src FROM archive_files").fetchone()
    conn.close()
    spans = src.split(",")
    assert state == COPIED and set(spans) <= set(bet_tables(sqlite3.connect(db)))
    files = _check_exactly_once(db, adir, set(bets))        # in both places, audit clean
    assert len(files) == 1
    report = archive_offline(Config(db=db), now_ms=NOW)
    assert report["errors"] == []
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert all(st == COMPRESSED for st, _ in files.values())
    assert not set(spans) & set(bet_tables(sqlite3.connect(db)))
    assert full_history(db, "u1") == want


def _as_schema_3(db):
    """Rewrite a database into what schema 3 kept: every bet in ``bet_rows``,
    every payout and refund in ``ledger``, one view, no ``src``."""
    conn = sqlite3.connect(db, isolation_level=None)
    days = span_days(conn)
    conn.execute("BEGIN")
    for d in days:
        conn.execute(f"INSERT INTO bet_rows SELECT * FROM {span_table(d)}")
        conn.execute(f"INSERT INTO ledger(user, kind, amount, bet, ts) SELECT user, kind,"
                     f" amount, bet, ts FROM {span_ledger(d)} ORDER BY id")
    for trigger in ("bets_insert", "bets_update", "bets_delete"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP VIEW bets")
    conn.execute("DROP VIEW ledger_all")
    for d in days:
        conn.execute(f"DROP TABLE {span_table(d)}")
        conn.execute(f"DROP TABLE {span_ledger(d)}")
    conn.execute("ALTER TABLE archive_files DROP COLUMN src")
    conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
    conn.execute("COMMIT")
    conn.executescript(BETS_VIEW)
    conn.close()


def test_a_schema_3_database_keeps_its_bets_and_archives_them_row_by_row(db_path):
    bets, _ = make_db(db_path, days=9, per_day=300, users=6)
    _as_schema_3(db_path)
    want = full_history(db_path, "u1")
    assert audit(db_path) == []
    store = Store(db_path)      # migrates: bet_rows is the first span
    try:
        assert store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                  ).fetchone() == (4,)
        assert span_days(store.conn) == []
        uid = store.conn.execute("SELECT id FROM users WHERE name = 'u1'").fetchone()[0]
        new_id = store.write_batch(bets=[_bet(uid, NOW + 60_000, 99)], now=NOW)[0][0]
        assert new_id == max(bets) + 1
        assert span_days(store.conn) == [span_of(NOW + 60_000)]
        store.write_batch(settlements=[Settlement(new_id, uid, NOW + 60_000, 9_500_000, 100, 235,
                                                  WON, payout_for(100, 235))], now=NOW + 70_000)
    finally:
        store.close()
    bets[new_id] = None
    assert audit(db_path) == []
    assert [r["bet"] for r in full_history(db_path, "u1")] == [new_id] + [r["bet"] for r in want]
    report = archive_offline(Config(db=db_path), now_ms=NOW)
    assert report["errors"] == [] and report["bets"] > 0
    adir = archive_dir_of(None, db_path)
    files = _check_exactly_once(db_path, adir, set(bets), final=True)
    assert len(files) == 2
    conn = open_readonly(db_path)
    try:
        # the old bets left bet_rows row by row, their payouts left ledger with them
        assert {r[0] for r in conn.execute("SELECT src FROM archive_files")} == {None}
        assert conn.execute("SELECT count(*) FROM bet_rows").fetchone()[0] == \
            len(hot_ids(db_path)) - 1
    finally:
        conn.close()
    assert [r["bet"] for r in full_history(db_path, "u1")][1:] == [r["bet"] for r in want]
