"""Taking an archived part's bets out of the hot DB (state COPIED ->
DELETED of ``_job``), through the Writer: each of the day's spans taken
whole (``store._spans``: the Store checks inside the transaction that the
span is what the file holds, and empties it), else, for ``bet_rows`` (bets from before
spans) and a span with a bet still open, deleted in small chunks compared
with the file first; then the freed pages are given back in small steps.
Every transaction adds what it removes to the per-user ``archived`` totals,
so balances stay provable at every commit."""
import json
import logging
import os
import time

from ._files import DELETED, attach_hot, uri_of
from ._verify import DIFFERS, ArchiveError, explain
from ..store import (DROP_SPAN, KIND_PAYOUT, KIND_REFUND, SPAN_MS, ledger_for, open_index,
                     quarter_of, span_days, span_ledger, span_table)

__all__ = ["DAY_MS", "set_state", "drop_spans", "delete_rows", "vacuum_steps", "check_moved",
           "drop_empty_spans"]

log = logging.getLogger("tapgrid.archive")

DAY_MS = 86_400_000
CHUNK = 1_000               # bets in the first delete transaction; then sized by time:
CHUNK_MS = 12.0             # the Writer round trip aimed at (the batch's fsync dominates)
CHUNK_MIN, CHUNK_MAX = 200, 4_000
VACUUM_PAGES = 64           # pages reclaimed per incremental_vacuum step

_IDS = "(SELECT value FROM json_each(?))"
_DELETE_CHUNK = [
    # What leaves the hot DB is added to the user's totals in the same
    # transaction: stakes from the bets, payouts/refunds from the ledger rows.
    f"""INSERT INTO archived(user, file, n, stakes, payouts, refunds)
        SELECT user, ?, count(*), sum(stake), 0, 0 FROM {{t}}
        WHERE id IN {_IDS} AND outcome != 0 GROUP BY user
        ON CONFLICT(user, file) DO UPDATE SET n = n + excluded.n,
                                              stakes = stakes + excluded.stakes""",
    f"""INSERT INTO archived(user, file, n, stakes, payouts, refunds)
        SELECT user, ?, 0, 0, sum(CASE kind WHEN {KIND_PAYOUT} THEN amount ELSE 0 END),
               sum(CASE kind WHEN {KIND_REFUND} THEN amount ELSE 0 END) FROM {{lt}}
        WHERE bet IN {_IDS} AND bet IS NOT NULL AND kind IN ({KIND_PAYOUT},{KIND_REFUND})
        GROUP BY user
        ON CONFLICT(user, file) DO UPDATE SET payouts = payouts + excluded.payouts,
                                              refunds = refunds + excluded.refunds""",
    f"""DELETE FROM {{lt}} WHERE bet IN {_IDS} AND bet IS NOT NULL
        AND kind IN ({KIND_PAYOUT},{KIND_REFUND})""",
    f"DELETE FROM {{t}} WHERE id IN {_IDS} AND outcome != 0",
]
# A whole span leaving at once: its per-user totals (``[user, n, stakes,
# payouts, refunds]`` rows, from the file and the span's ledger), then the
# Store's checked DROP_SPAN, then the state: one transaction.
_ADD_TOTALS = """INSERT INTO archived(user, file, n, stakes, payouts, refunds)
    SELECT value ->> 0, ?, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?)
    WHERE true
    ON CONFLICT(user, file) DO UPDATE SET n = n + excluded.n, stakes = stakes + excluded.stakes,
        payouts = payouts + excluded.payouts, refunds = refunds + excluded.refunds"""
_VACUUM = (f"PRAGMA incremental_vacuum({VACUUM_PAGES})", ())


def set_state(fid, state, **cols):
    sets = "".join(f", {k} = ?" for k in cols)
    return [(f"UPDATE archive_files SET state = ?{sets} WHERE id = ?",
             (state, *cols.values(), fid))]


def drop_empty_spans(ro, now_ms, hot_days):
    """Old spans left with no bet but ledger rows: emptied, so the Store
    drops them (``store.Spans``) and the views do not keep growing."""
    for day in span_days(ro):
        if (quarter_of(day) + 1) * SPAN_MS > now_ms - hot_days * DAY_MS:
            break
        if ro.execute(f"SELECT 1 FROM {span_table(day)} LIMIT 1").fetchone() is None:
            lmax = ro.execute(f"SELECT max(id) FROM {span_ledger(day)}").fetchone()[0]
            if lmax is not None:        # else emptied already: the Store drops it
                yield ("write", [(DROP_SPAN, (day, 0, lmax))])


def drop_spans(ro, plain, fid, name, tables, report):
    """Drop each of the part's spans that is whole (every bet of it in the
    file, none open), each in a transaction of its own with the totals that
    leave (the Store checks it unchanged), the last with the state. Returns
    the tables whose bets must still be deleted row by row (``bet_rows``, a
    span with a bet still open)."""
    import pysqlite3.dbapi2 as sqlite3
    if tables == ["bet_rows"]:
        return tables
    if not os.path.exists(plain):
        raise ArchiveError(f"{name}: the file is missing (state copied)")
    spans = [int(t[len("bet_rows_"):]) for t in tables]
    fconn = sqlite3.connect(uri_of(plain, "ro"), uri=True, isolation_level=None)
    ro.execute("BEGIN")         # one snapshot: the spans, their ledgers
    try:
        existing = set(span_days(ro))
        whole, rest = [], []
        for span in spans:
            if span not in existing:
                continue            # dropped by an earlier run, with its totals
            t = span_table(span)
            lo, hi = quarter_of(span) * SPAN_MS, (quarter_of(span) + 1) * SPAN_MS
            have, first, last, lmax = ro.execute(
                f"SELECT count(*), min(id), max(id), (SELECT max(id) FROM {span_ledger(span)})"
                f" FROM {t}").fetchone()
            if have == 0 and lmax is None:
                continue            # emptied by an earlier run, with its totals
            still_open = ro.execute(f"SELECT count(*) FROM {t} INDEXED BY {open_index(t)}"
                                    " WHERE outcome = 0").fetchone()[0]
            # a quarter cut by size: each of its spans holds a run of ids
            # the others do not (cut in the order the Store numbers bets)
            bets = fconn.execute("SELECT user, count(*), sum(stake) FROM bet_rows"
                                 " WHERE col >= ? AND col < ? AND id >= ? AND id <= ?"
                                 " GROUP BY user", (lo, hi, first or 0, last or 0)).fetchall()
            if still_open or have != sum(k for _, k, _ in bets):
                log.info("%s: %s holds %d bets (%d open): deleting row by row", name, t, have,
                         still_open)
                rest.append(t)
                continue
            lt = span_ledger(span)
            money = {u: (p, r) for u, p, r in ro.execute(
                f"SELECT user, sum(CASE kind WHEN {KIND_PAYOUT} THEN amount ELSE 0 END),"
                f" sum(CASE kind WHEN {KIND_REFUND} THEN amount ELSE 0 END) FROM {lt}"
                f" WHERE kind IN ({KIND_PAYOUT},{KIND_REFUND}) GROUP BY user")}
            totals = [[u, k, st, *money.pop(u, (0, 0))] for u, k, st in bets]
            totals += [[u, 0, 0, p, r] for u, (p, r) in money.items()]
            whole.append((span, have, lmax, totals))
    finally:
        ro.execute("COMMIT")
        fconn.close()
    for i, (span, n, lmax, totals) in enumerate(whole):
        last = i == len(whole) - 1 and not rest
        yield ("write", [(_ADD_TOTALS, (fid, json.dumps(totals))), (DROP_SPAN, (span, n, lmax))]
               + (set_state(fid, DELETED) if last else []))
        report["bets"] += n
        yield ("pause",)
    if not whole and not rest:
        yield ("write", set_state(fid, DELETED))
    return rest


def delete_rows(ro, db_path, plain, fid, name, tables, report):
    """Remove the file's bets from the hot DB, chunk by chunk, each chunk
    compared column by column with the file first (in C; a difference is
    looked at row by row and stops the job)."""
    import pysqlite3.dbapi2 as sqlite3
    if not os.path.exists(plain):
        raise ArchiveError(f"{name}: the file is missing (state copied)")
    fconn = sqlite3.connect(uri_of(plain, "ro"), uri=True, isolation_level=None,
                            check_same_thread=False)
    attach_hot(fconn, db_path)
    after = 0
    chunk = CHUNK
    try:
        while True:
            hi = fconn.execute("SELECT max(id) FROM (SELECT id FROM main.bet_rows WHERE id > ?"
                               " ORDER BY id LIMIT ?)", (after, chunk)).fetchone()[0]
            if hi is None:
                break
            found = [(table, *fconn.execute(
                f"SELECT json_group_array(h.id), count(*), sum(CASE WHEN {DIFFERS} THEN 1"
                f" ELSE 0 END) FROM main.bet_rows f JOIN hot.{table} h ON h.id = f.id"
                " WHERE f.id > ? AND f.id <= ?", (after, hi)).fetchone()) for table in tables]
            lo, after = after, hi
            found = [f for f in found if f[2]]
            if not found:
                continue            # already deleted by an earlier (interrupted) run
            if any(bad for _, _, _, bad in found):
                explain(fconn, name, lo, hi, tables)
            t = time.perf_counter()
            yield ("write", [(sql.format(t=table, lt=ledger_for(table)),
                              (fid, ids) if sql.startswith("INSERT") else (ids,))
                             for table, ids, _, _ in found for sql in _DELETE_CHUNK] + [_VACUUM])
            report["bets"] += sum(k for _, _, k, _ in found)
            # chunks sized by time: the round trip (mostly the batch's fsync,
            # which the taps beside it wait on anyway) steers toward CHUNK_MS
            took = (time.perf_counter() - t) * 1000
            chunk = max(CHUNK_MIN, min(CHUNK_MAX, int(chunk * CHUNK_MS / max(took, 0.5))))
            yield ("pause",)
    finally:
        fconn.close()


def vacuum_steps(ro):
    """Give the freed pages back, a few at a time (each step is a Writer round trip)."""
    for _ in range(100000):
        if ro.execute("PRAGMA freelist_count").fetchone()[0] == 0:
            break
        yield ("write", [_VACUUM])
        yield ("pause",)


def check_moved(ro, fid, name, report):
    """The totals that left the hot DB for the file are the file's."""
    n, stakes, payouts, refunds = ro.execute(
        "SELECT coalesce(sum(n), 0), coalesce(sum(stakes), 0), coalesce(sum(payouts), 0),"
        " coalesce(sum(refunds), 0) FROM archived WHERE file = ?", (fid,)).fetchone()
    want = ro.execute("SELECT n, stakes, payouts, refunds FROM archive_files WHERE id = ?",
                      (fid,)).fetchone()
    if (n, stakes, payouts, refunds) != tuple(want):
        msg = (f"{name}: moved totals {(n, stakes, payouts, refunds)} != file {tuple(want)}"
               " (see tapgrid audit)")
        report["errors"].append(msg)
        log.error(msg)
