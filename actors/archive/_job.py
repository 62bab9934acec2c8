"""The archiver: settled bets older than ``hot_days`` leave the hot DB for
per-day archive files, so history is kept forever on a bounded hot DB.

One part (usually one UTC day of columns) goes through these states, each
recorded in the hot DB's ``archive_files`` only once it is true on disk:

1. COPIED     the file holds every settled bet of the part; its row count and
              checksum were verified by reading the file back;
2. DELETED    those bets (and their payout/refund ledger rows) are gone from
              the hot DB, in small transactions through the Writer, each of
              which also adds what it removed to the per-user ``archived``
              totals, so balances stay provable at every commit;
3. COMPRESSED the file is lzma-compressed (``<name>.xz``);
4. SHIPPED    ``archive_cmd`` succeeded on it;
5. REMOVED    and ``archive_delete_shipped`` deleted the local copy.

A crash anywhere (kill -9) leaves a state the next run completes: an
unrecorded file is thrown away and made again; a delete chunk is one
transaction and is retried by id, so nothing is lost or counted twice.

The job is a generator of requests (``write`` statements for the Writer,
``pause``, ``run`` a shell command) so the same steps run inside the server
and offline (``_runner``: the Archiver actor and ``archive_offline``).

    >>> import tempfile, os
    >>> from actors.store import Store
    >>> db = os.path.join(tempfile.mkdtemp(), "t.db"); Store(db).close()
    >>> adir = os.path.join(os.path.dirname(db), "archive"); os.makedirs(adir)
    >>> steps = archive_steps(db, adir, now_ms=0, hot_days=7)
    >>> next(steps)[0]                  # first, the archive dir is recorded through the writer
    'write'
"""
import datetime
import json
import logging
import os
import shlex
import time

from ._files import (COMPRESSED, COPIED, DELETED, INSERT_LOGICAL, LOGICAL_COLUMNS,
                             REMOVED, SHIPPED, STATE_NAMES, Checksum,
                             compress_steps, create_file, fsync_dir, fsync_path, to_stored)
from .._model import VOID, WON
from ..store import KIND_PAYOUT, KIND_REFUND, nonce_text, open_readonly
from ..store import copy_record_steps, prune_record_steps

__all__ = ["archive_steps", "new_report", "ArchiveError", "STATE_NAMES", "COPIED", "DELETED",
           "COMPRESSED", "SHIPPED", "REMOVED", "DAY_MS"]

log = logging.getLogger("tapgrid.archive")

DAY_MS = 86_400_000
# Step sizes: each bounds how long taps can wait on the archiver, through
# the GIL (a copy step's Python work) or behind a Writer transaction.
SCAN_ROWS = 250             # rows copied per step (~1-2 ms of Python)
CHUNK = 64                  # bets deleted per Writer transaction
VACUUM_PAGES = 32           # pages reclaimed per incremental_vacuum step
SYNC_STEPS = 4              # copy steps between fsyncs of the file being built
XZ_PRESET = 6               # lzma: ~5% smaller than preset 0, ~5x the CPU (in a niced thread)
STOP_SLACK_MS = 3_600_000   # scan this far past the part's end (ids are only roughly time-ordered)

_IDS = "(SELECT value FROM json_each(?))"
_DELETE_CHUNK = [
    # What leaves the hot DB is added to the user's totals in the same
    # transaction: stakes from the bets, payouts/refunds from the ledger rows.
    f"""INSERT INTO archived(user, file, n, stakes, payouts, refunds)
        SELECT user, ?, count(*), sum(stake), 0, 0 FROM bet_rows
        WHERE id IN {_IDS} AND outcome != 0 GROUP BY user
        ON CONFLICT(user, file) DO UPDATE SET n = n + excluded.n,
                                              stakes = stakes + excluded.stakes""",
    f"""INSERT INTO archived(user, file, n, stakes, payouts, refunds)
        SELECT user, ?, 0, 0, sum(CASE kind WHEN {KIND_PAYOUT} THEN amount ELSE 0 END),
               sum(CASE kind WHEN {KIND_REFUND} THEN amount ELSE 0 END) FROM ledger
        WHERE bet IN {_IDS} AND bet IS NOT NULL AND kind IN ({KIND_PAYOUT},{KIND_REFUND})
        GROUP BY user
        ON CONFLICT(user, file) DO UPDATE SET payouts = payouts + excluded.payouts,
                                              refunds = refunds + excluded.refunds""",
    f"""DELETE FROM ledger WHERE bet IN {_IDS} AND bet IS NOT NULL
        AND kind IN ({KIND_PAYOUT},{KIND_REFUND})""",
    f"DELETE FROM bet_rows WHERE id IN {_IDS} AND outcome != 0",
]
_VACUUM = (f"PRAGMA incremental_vacuum({VACUUM_PAGES})", ())


class ArchiveError(RuntimeError):
    """The archiver refuses to go on (nothing was deleted that is not archived)."""


def new_report():
    return {"files": [], "bets": 0, "shipped": 0, "removed": 0, "errors": [], "seconds": 0.0,
            "phase_s": {"copy": 0.0, "delete": 0.0, "compress": 0.0}}


def _timed(report, phase, gen):
    """``yield from gen``, adding its wall time to ``report["phase_s"][phase]``."""
    t = time.monotonic()
    try:
        return (yield from gen)
    finally:
        ph = report.setdefault("phase_s", {})
        ph[phase] = round(ph.get(phase, 0.0) + time.monotonic() - t, 3)


def _canon(row):
    return row[:8] + (nonce_text(row[8]), bytes(row[9])) + tuple(row[10:])


def _set_state(fid, state, **cols):
    sets = "".join(f", {k} = ?" for k in cols)
    return [(f"UPDATE archive_files SET state = ?{sets} WHERE id = ?",
             (state, *cols.values(), fid))]


def archive_steps(db_path, adir, now_ms, hot_days, archive_cmd=None, delete_shipped=False,
                  report=None):
    """The job, as a generator of requests (see the module docstring)."""
    report = new_report() if report is None else report
    ro = open_readonly(db_path)
    try:
        yield ("write", [("INSERT INTO meta VALUES ('archive_dir', ?) ON CONFLICT(key)"
                          " DO UPDATE SET value = excluded.value", (adir,))])
        _cleanup(ro, adir)
        opts = (archive_cmd, delete_shipped, report)
        for fid, name, state in ro.execute("SELECT id, name, state FROM archive_files"
                                           " WHERE state < ? ORDER BY id", (REMOVED,)).fetchall():
            yield from _advance(ro, adir, fid, name, state, *opts)
        while True:
            part = yield from _timed(report, "copy", _copy(ro, adir, now_ms, hot_days, report))
            if part is None:
                break
            yield from _advance(ro, adir, *part, *opts)
        # the price record: archived with each part above, pruned once no hot bet needs it
        report["ticks_pruned"] = yield from prune_record_steps(ro, now_ms, hot_days)
    finally:
        ro.close()
    return report


def _cleanup(ro, adir):
    """Throw away what a crash left behind: unfinished or unrecorded files,
    and plain copies of files already compressed."""
    known = dict(ro.execute("SELECT name, state FROM archive_files").fetchall())
    for f in os.listdir(adir):
        path = os.path.join(adir, f)
        if not os.path.isfile(path) or not f.startswith("bets-"):
            continue
        if f.endswith((".building", ".tmp")):
            os.remove(path)
        elif f.endswith(".db") and f not in known:
            log.warning("removing %s: never recorded (an interrupted run)", f)
            os.remove(path)
        elif f.endswith(".db") and known[f] >= COMPRESSED and os.path.exists(path + ".xz"):
            os.remove(path)


def _advance(ro, adir, fid, name, state, archive_cmd, delete_shipped, report):
    plain = os.path.join(adir, name)
    xz = plain + ".xz"
    if state == COPIED:
        yield from _timed(report, "delete", _delete(ro, plain, fid, name, report))
        yield ("write", _set_state(fid, DELETED))
        state = DELETED
    if state == DELETED:
        if not os.path.exists(plain):
            raise ArchiveError(f"{name}: the file is missing (state deleted)")
        yield from _timed(report, "compress", compress_steps(plain, xz, XZ_PRESET))
        yield ("write", _set_state(fid, COMPRESSED, bytes=os.path.getsize(xz)))
        os.remove(plain)
        fsync_dir(plain)
        state = COMPRESSED
    if state == COMPRESSED and archive_cmd:
        if not os.path.exists(xz):
            raise ArchiveError(f"{name}.xz is missing (state compressed)")
        cmd = (archive_cmd.replace("{file}", shlex.quote(xz)) if "{file}" in archive_cmd
               else f"{archive_cmd} {shlex.quote(xz)}")
        rc = yield ("run", cmd)
        if rc != 0:
            report["errors"].append(f"{name}: archive_cmd exited {rc}; kept, retried next run")
            log.error("archive_cmd failed on %s (exit %s)", xz, rc)
            return
        yield ("write", _set_state(fid, SHIPPED))
        report["shipped"] += 1
        state = SHIPPED
    if state == SHIPPED and delete_shipped:
        if os.path.exists(xz):
            os.remove(xz)
            fsync_dir(xz)
        yield ("write", _set_state(fid, REMOVED))
        report["removed"] += 1


def _copy(ro, adir, now_ms, hot_days, report):
    """Write the next eligible part to a new file and verify it; (id, name,
    COPIED) once recorded, None when nothing is old enough."""
    first = ro.execute("SELECT id, col FROM bet_rows WHERE outcome != 0 ORDER BY id LIMIT 1"
                       ).fetchone()
    if first is None:
        return None
    end = (first[1] // DAY_MS + 1) * DAY_MS
    if end > now_ms - hot_days * DAY_MS:
        return None
    fid = (ro.execute("SELECT max(id) FROM archive_files").fetchone()[0] or 0) + 1
    day = datetime.datetime.fromtimestamp((end - DAY_MS) / 1000, datetime.timezone.utc)
    name = f"bets-{day:%Y-%m-%d}-{fid:06d}.db"
    path = os.path.join(adir, name)
    building = path + ".building"
    conn = create_file(building)
    ck = Checksum()
    sums = {"stakes": 0, "payouts": 0, "refunds": 0}
    first_id = last_id = None
    after = first[0] - 1
    steps = 0
    try:
        while True:
            rows = ro.execute(f"SELECT {LOGICAL_COLUMNS} FROM bets WHERE id > ? ORDER BY id"
                              " LIMIT ?", (after, SCAN_ROWS)).fetchall()
            if not rows:
                break
            after = rows[-1][0]
            keep = [r for r in rows if r[11] != 0 and r[2] < end]
            if keep:
                conn.executemany(INSERT_LOGICAL, [to_stored(r) for r in keep])
                for r in keep:
                    ck.add(r)
                    sums["stakes"] += r[4]
                    if r[11] == WON:
                        sums["payouts"] += r[12]
                    elif r[11] == VOID:
                        sums["refunds"] += r[12]
                first_id = keep[0][0] if first_id is None else first_id
                last_id = keep[-1][0]
            if min(r[2] for r in rows) >= end + STOP_SLACK_MS:
                break
            steps += 1
            if steps % SYNC_STEPS == 0:
                # a little at a time: one big fsync at the end would stall the
                # Writer's fsyncs behind it
                conn.execute("COMMIT")
                fsync_path(building)
                conn.execute("BEGIN")
            yield ("pause",)

        def sync():
            conn.execute("COMMIT")
            fsync_path(building)
            conn.execute("BEGIN")
        if first_id is not None:
            # the part's price record rides in the same file (``_pricerecord``)
            lo_col = conn.execute("SELECT min(col) FROM bet_rows").fetchone()[0]
            report["ticks_archived"] = report.get("ticks_archived", 0) + (
                yield from copy_record_steps(ro, conn, lo_col, end, sync))
        # No bets_user index in the file (format 2): ~3 bytes a bet after lzma;
        # it is built when the file is unpacked for reading (_archive_files).
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("name", name), ("n", ck.n), ("checksum", ck.hexdigest()), ("first_id", first_id),
            ("last_id", last_id), ("format", 2)])
        conn.execute("COMMIT")
    finally:
        conn.close()
    fsync_path(building)
    os.replace(building, path)
    fsync_dir(path)
    yield ("pause",)
    _verify(path, ck)
    yield ("write", [
        ("INSERT INTO archive_files(id, name, state, n, first_id, last_id, checksum, stakes,"
         " payouts, refunds, bytes, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
         (fid, name, COPIED, ck.n, first_id, last_id, ck.hexdigest(), sums["stakes"],
          sums["payouts"], sums["refunds"], os.path.getsize(path), now_ms)),
        # ids must never be reused, even when every bet has left the hot DB
        ("INSERT INTO meta VALUES ('max_bet_id', ?) ON CONFLICT(key)"
         " DO UPDATE SET value = max(value, excluded.value)", (last_id,))])
    report["files"].append(name)
    log.info("archived %d bets into %s", ck.n, name)
    return fid, name, COPIED


def _verify(path, expected):
    """Read the finished file back: same count, same checksum, sound pages."""
    import pysqlite3.dbapi2 as sqlite3
    conn = sqlite3.connect("file:" + path + "?mode=ro", uri=True)
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise ArchiveError(f"{path}: quick_check failed")
        got = Checksum()
        for r in conn.execute(f"SELECT {LOGICAL_COLUMNS} FROM bets ORDER BY id"):
            got.add(r)
    finally:
        conn.close()
    if (got.n, got.hexdigest()) != (expected.n, expected.hexdigest()):
        os.remove(path)
        raise ArchiveError(f"{path}: read back {got.n} rows/{got.hexdigest()},"
                           f" wrote {expected.n}/{expected.hexdigest()}")


def _delete(ro, plain, fid, name, report):
    """Remove the file's bets from the hot DB, chunk by chunk, each chunk
    compared row by row with the file first."""
    import pysqlite3.dbapi2 as sqlite3
    if not os.path.exists(plain):
        raise ArchiveError(f"{name}: the file is missing (state copied)")
    fconn = sqlite3.connect("file:" + plain + "?mode=ro", uri=True, check_same_thread=False)
    after = 0
    try:
        while True:
            arows = fconn.execute(f"SELECT {LOGICAL_COLUMNS} FROM bets WHERE id > ? ORDER BY id"
                                  " LIMIT ?", (after, CHUNK)).fetchall()
            if not arows:
                break
            after = arows[-1][0]
            ids = json.dumps([r[0] for r in arows])
            hot = {r[0]: r for r in ro.execute(
                f"SELECT {LOGICAL_COLUMNS} FROM bets WHERE id IN {_IDS}", (ids,))}
            if not hot:
                continue            # already deleted by an earlier (interrupted) run
            for r in arows:
                h = hot.get(r[0])
                if h is not None and _canon(h) != _canon(r):
                    raise ArchiveError(f"bet {r[0]} differs between the hot DB and {name}")
            present = json.dumps(sorted(hot))
            yield ("write", [(sql, (fid, present) if sql.startswith("INSERT") else (present,))
                             for sql in _DELETE_CHUNK] + [_VACUUM])
            report["bets"] += len(hot)
            yield ("pause",)
    finally:
        fconn.close()
    for _ in range(100000):
        if ro.execute("PRAGMA freelist_count").fetchone()[0] == 0:
            break
        yield ("write", [_VACUUM])
        yield ("pause",)
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
