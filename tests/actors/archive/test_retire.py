"""Taking an archived span without changing the schema (``store.Spans``):
the Writer empties the span's tables (SQLite's truncate) instead of
dropping them, so the views and every connection's prepared statements
stay; the empty tables go with the next schema change the Store makes
anyway (a new span, its open, the end of an offline archive). A kill -9
between the truncate and the bookkeeping loses and doubles nothing."""
import os
import subprocess
import sys

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.archive._job import COMPRESSED, COPIED, archive_steps
from actors.archive._runner import archive_offline
from actors.store import DROP_SPAN, SPAN_MS, bet_tables, span_days, span_ledger, span_table
from actors.store._audit import audit
from actors.store._store import Store, open_readonly
from actors._config import Config
from tests.actors.archive.test_archive import (NOW, _check_exactly_once, archivable, full_history,
                                              make_db)
from tests.actors.archive.test_spans import _bet
from tests.support import ROOT


def _cookie(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA schema_version").fetchone()[0]
    finally:
        conn.close()


def _rows(db, table):
    conn = open_readonly(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def _archive_through(store, db, adir, stop=None):
    """The job with ``store`` as its writer (as the server's Writer runs
    it); ``stop(statements)`` true ends it after that write. The writes."""
    gen = archive_steps(db, adir, NOW, 7)
    result, writes = None, []
    try:
        while True:
            try:
                req = gen.send(result)
            except StopIteration:
                return writes
            result = None
            if req[0] == "write":
                store.write_batch(deletes=req[1], now=NOW)
                writes.append(req[1])
                result = True
                if stop is not None and stop(req[1]):
                    return writes
    finally:
        gen.close()


def test_the_writer_takes_spans_without_a_schema_change_and_drops_them_with_the_next_span(
        tmp_path):
    db, bets, want, adir = archivable(tmp_path, "u1")
    store = Store(db)
    try:
        before = span_days(store.conn)
        cookie = _cookie(db)
        # up to the day's last span taken: the schema is untouched by every drop
        writes = _archive_through(store, db, adir, stop=lambda w: any(
            s[0] == DROP_SPAN for s in w) and any(s[0].startswith("UPDATE archive_files")
                                                  for s in w))
        drops = [s[1][0] for w in writes for s in w if s[0] == DROP_SPAN]
        assert len(drops) == 4 and set(drops) <= set(before)
        assert _cookie(db) == cookie
        assert span_days(store.conn) == before          # emptied, still there
        assert all(_rows(db, span_table(d)) == 0 == _rows(db, span_ledger(d)) for d in drops)
        assert store.spans.retired == set(drops)
        _check_exactly_once(db, adir, set(bets))        # each bet once, audit clean
        # the next span the Store makes (a tap on a new quarter) drops them in
        # its transaction, as many as RETIRED_PER_CREATE (4) at a time
        uid = store.conn.execute("SELECT id FROM users WHERE name = 'u1'").fetchone()[0]
        col = (NOW // SPAN_MS + 1) * SPAN_MS + 5000
        new_id = store.write_batch(bets=[_bet(uid, col, 0)], now=NOW)[0][0]
        assert _cookie(db) != cookie
        assert set(span_days(store.conn)) == set(before) - set(drops) | {col // SPAN_MS}
        assert store.spans.retired == set()
    finally:
        store.close()
    bets[new_id] = None
    assert audit(db) == []
    report = archive_offline(Config(db=db), now_ms=NOW)     # the rest of the job
    assert report["errors"] == []
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert all(st == COMPRESSED for st, _ in files.values())
    assert full_history(db, "u1")[1:] == want


def test_an_emptied_span_that_took_a_bet_again_is_not_dropped(tmp_path):
    db = str(tmp_path / "hot.db")
    make_db(db, days=9, per_day=200, users=3)
    store = Store(db)
    try:
        day = span_days(store.conn)[0]
        t = span_table(day)
        n = store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        lmax = store.conn.execute(f"SELECT max(id) FROM {span_ledger(day)}").fetchone()[0]
        store.write_batch(deletes=[(DROP_SPAN, (day, n, lmax))], now=NOW)
        assert store.spans.retired == {day} and _rows(db, t) == 0
        # a bet on that old quarter (the Store routes it to its newest span)
        uid = store.conn.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
        again = store.write_batch(bets=[_bet(uid, day * SPAN_MS + 5000, 0)], now=NOW)[0][0]
        store.write_batch(bets=[_bet(uid, (NOW // SPAN_MS + 1) * SPAN_MS, 1)], now=NOW)
        assert day in span_days(store.conn) and _rows(db, t) == 1
        assert store.spans.retired == set()
    finally:
        store.close()
    # (no archive totals were written for the emptied bets: no audit here)
    conn = open_readonly(db)
    try:
        assert conn.execute(f"SELECT id FROM {t}").fetchall() == [(again,)]
        assert conn.execute("SELECT count(*) FROM bets WHERE id = ?", (again,)).fetchone() == (1,)
    finally:
        conn.close()


def test_a_store_opened_on_emptied_spans_drops_them(tmp_path):
    db = str(tmp_path / "hot.db")
    make_db(db, days=9, per_day=200, users=3)
    store = Store(db)
    day = span_days(store.conn)[0]
    n = store.conn.execute(f"SELECT count(*) FROM {span_table(day)}").fetchone()[0]
    lmax = store.conn.execute(f"SELECT max(id) FROM {span_ledger(day)}").fetchone()[0]
    store.write_batch(deletes=[(DROP_SPAN, (day, n, lmax))], now=NOW)
    store.close()
    assert span_table(day) in bet_tables(open_readonly(db))
    store = Store(db)
    try:
        assert day not in span_days(store.conn) and store.spans.retired == set()
    finally:
        store.close()


# A real kill -9 of the process writing (the Writer's), inside the
# transaction that empties a span: once its truncate has run, at the next
# statement (``COMMIT``, or the file's state when it is the day's last span).
CRASH = """
import os, sys
from actors.archive._job import archive_steps
from actors.archive._child import run_steps
from actors.store._store import Store
db, adir, now, at = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = Store(db)
seen = {"truncated": 0}
def trace(sql):
    if sql.startswith("DELETE FROM ledger_"):
        seen["truncated"] += 1
    elif seen["truncated"] and sql.startswith(at):
        os._exit(9)
store.conn.set_trace_callback(trace)
run_steps(archive_steps(db, adir, now, 7), lambda st: store.write_batch(deletes=st, now=now))
print("finished without the crash", flush=True)
"""


@pytest.mark.parametrize("at", ["COMMIT", "UPDATE archive_files"])
def test_a_kill_between_the_truncate_and_its_bookkeeping_loses_nothing(tmp_path, at):
    db, bets, want, adir = archivable(tmp_path, "u2")
    before = span_days(sqlite3.connect(db))
    proc = subprocess.run([sys.executable, "-c", CRASH, db, adir, str(NOW), at], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 9, proc.stdout + proc.stderr
    conn = open_readonly(db)
    try:
        state, src = conn.execute("SELECT state, src FROM archive_files").fetchone()
        held = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in src.split(",")}
    finally:
        conn.close()
    # the transaction never happened: its span still holds its bets, and
    # every bet is in exactly one place, the audit clean
    assert state == COPIED and span_days(sqlite3.connect(db)) == before
    if at == "COMMIT":
        assert list(held.values())[0] > 0
    else:       # the day's last span: the three before it were taken
        assert list(held.values())[:3] == [0, 0, 0] and list(held.values())[3] > 0
    _check_exactly_once(db, adir, set(bets))
    report = archive_offline(Config(db=db), now_ms=NOW)
    assert report["errors"] == []
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert all(st == COMPRESSED for st, _ in files.values())
    assert not set(src.split(",")) & set(bet_tables(open_readonly(db)))
    assert full_history(db, "u2") == want
