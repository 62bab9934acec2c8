"""The archiver: settled bets older than ``hot_days`` leave the hot DB for
per-day archive files, so history is kept forever on a bounded hot DB.

One part (usually one UTC day of columns) goes through these states, each
recorded in the hot DB's ``archive_files`` only once it is true on disk:

1. COPIED     the file holds every settled bet of the part; its row count and
              checksum were verified by reading the file back;
2. DELETED    those bets (and their payout/refund ledger rows) are gone from
              the hot DB, through the Writer, each transaction adding what it
              removed to the per-user ``archived`` totals, so balances stay
              provable at every commit: each of the day's spans
              (``store._spans``) dropped whole, checked unchanged by the Store;
              bets in ``bet_rows`` (from before spans) or in a span with a bet
              still open deleted in small chunks;
3. COMPRESSED the file is compressed to ``<name>.xz``, by column (format 3,
              ``_columns``), read back and compared with the plain file first;
4. SHIPPED    ``archive_cmd`` succeeded on it;
5. REMOVED    and ``archive_delete_shipped`` deleted the local copy.

A crash anywhere (kill -9) leaves a state the next run completes: an
unrecorded file is thrown away and made again; a span drop or a delete
chunk is one transaction (a dropped span is not dropped again, a chunk is
retried by id), so nothing is lost or counted twice.

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
import logging
import os
import shlex
import threading
import time

from ._files import (COMPRESSED, COPIED, DELETED, REMOVED, SHIPPED, STATE_NAMES, STORED_COLUMNS,
                     HOT_COLUMNS, attach_hot, compress_steps, create_file, fsync_dir, fsync_path)
from ._columns import Unsupported, pack_steps
from ._remove import (DAY_MS, check_moved, delete_rows, drop_empty_spans, drop_spans, set_state,
                      vacuum_steps)
from ._verify import ArchiveError, verify
from ..store import SPAN_MS, open_readonly, quarter_of, span_days, span_table
from ..store import copy_record_steps, prune_record_steps

__all__ = ["archive_steps", "new_report", "ArchiveError", "STATE_NAMES", "COPIED", "DELETED",
           "COMPRESSED", "SHIPPED", "REMOVED", "DAY_MS"]

log = logging.getLogger("tapgrid.archive")

# Step sizes: each bounds how long taps can wait on the archiver, through
# the GIL (a copy step's Python work) or behind a Writer transaction.
COPY_ROWS = 5_000           # hot ids scanned per copy step (INSERT ... SELECT, in C)
SCAN_ROWS = 2_000           # rows checksummed per step (Python, holding the GIL: ~3 ms)
SYNC_STEPS = 1              # copy steps between fsyncs of the file being built
XZ_PRESET = 6               # format 2 (whole-file lzma), for what format 3 cannot hold
STOP_SLACK_MS = 3_600_000   # scan this far past the part's end (ids are only roughly time-ordered)

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


def archive_steps(db_path, adir, now_ms, hot_days, archive_cmd=None, delete_shipped=False,
                  report=None):
    """The job, as a generator of requests (see the module docstring)."""
    report = new_report() if report is None else report
    ro = open_readonly(db_path)
    bg = _Compressor(report)
    try:
        yield ("write", [("INSERT INTO meta VALUES ('archive_dir', ?) ON CONFLICT(key)"
                          " DO UPDATE SET value = excluded.value", (adir,))])
        _cleanup(ro, adir)
        opts = (archive_cmd, delete_shipped, report, bg)
        for fid, name, state, src in ro.execute(
                "SELECT id, name, state, src FROM archive_files WHERE state < ? ORDER BY id",
                (REMOVED,)).fetchall():
            yield from _advance(ro, db_path, adir, fid, name, state, src, *opts)
        yield from drop_empty_spans(ro, now_ms, hot_days)
        while True:
            part = yield from _timed(report, "copy", _copy(ro, db_path, adir, now_ms, hot_days,
                                                           report))
            if part is None:
                break
            yield from _advance(ro, db_path, adir, *part, *opts)
        # the pages the parts freed: given back while the last part compresses, then the rest
        yield from bg.finish(vacuum_steps(ro))
        yield from _timed(report, "reclaim", vacuum_steps(ro))
        # the price record: archived with each part above, pruned once no hot bet needs it
        report["ticks_pruned"] = yield from prune_record_steps(ro, now_ms, hot_days)
    finally:
        bg.wait()           # a stopped job leaves no thread writing behind it
        ro.close()
    return report


class _Compressor:
    """Compresses one part in a thread of its own while the job copies and
    deletes the next (lzma releases the GIL); its state is recorded, and the
    part shipped, when the job next calls ``finish``."""

    def __init__(self, report):
        self.report = report
        self.pending = None         # (thread, errors, fid, name, plain, xz, tail opts)

    def start(self, fid, name, plain, xz, tail):
        errors = []

        def run():
            # In the server's archive child the job is on SCHED_IDLE, and so
            # is this thread: with whole spans dropped the archiver has
            # throughput to spare, and at nice 10 lzma still cost taps
            # (p99 gap +5.6..+10.4 ms against +4.7/+5.3 on SCHED_IDLE, one
            # quiet afternoon). Under heavy load it then runs slower.
            t = time.monotonic()
            try:
                try:
                    for _ in pack_steps(plain, xz, fsync_dir):
                        pass
                except Unsupported as exc:      # a value format 3 cannot hold exactly
                    log.warning("%s: %s; compressed as format 2", name, exc)
                    for _ in compress_steps(plain, xz, XZ_PRESET):
                        pass
            except BaseException as exc:     # re-raised in the job by finish()
                errors.append(exc)
            finally:
                ph = self.report.setdefault("phase_s", {})
                ph["compress"] = round(ph.get("compress", 0.0) + time.monotonic() - t, 3)
        th = threading.Thread(target=run, name=f"archive-xz-{fid}", daemon=True)
        th.start()
        self.pending = (th, errors, fid, name, plain, xz, tail)

    def wait(self):
        if self.pending is not None:
            self.pending[0].join()

    def finish(self, meanwhile=None):
        """Wait for the part being compressed (running the requests of the
        generator ``meanwhile`` as long as it has any), record it, ship it."""
        if self.pending is None:
            return
        th, errors, fid, name, plain, xz, tail = self.pending
        while th.is_alive():
            req = next(meanwhile, None) if meanwhile is not None else None
            if req is None:
                meanwhile = None
                th.join(0.05)
                yield ("pause",)
            else:
                yield req
        self.pending = None
        if errors:
            raise errors[0]
        yield ("write", set_state(fid, COMPRESSED, bytes=os.path.getsize(xz)))
        os.remove(plain)
        fsync_dir(plain)
        yield from _ship(fid, name, COMPRESSED, xz, *tail)


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


def _advance(ro, db_path, adir, fid, name, state, src, archive_cmd, delete_shipped, report,
             bg):
    plain = os.path.join(adir, name)
    xz = plain + ".xz"
    if state == COPIED:
        tables = src.split(",") if src else ["bet_rows"]
        rest = yield from _timed(report, "delete", drop_spans(ro, plain, fid, name, tables, report))
        if rest:
            yield from _timed(report, "delete", delete_rows(ro, db_path, plain, fid, name, rest,
                                                        report))
            yield ("write", set_state(fid, DELETED))
        check_moved(ro, fid, name, report)
        state = DELETED
    if state == DELETED:
        if not os.path.exists(plain):
            raise ArchiveError(f"{name}: the file is missing (state deleted)")
        yield from bg.finish(vacuum_steps(ro))       # one part compressing at a time
        bg.start(fid, name, plain, xz, (archive_cmd, delete_shipped, report))
        return
    yield from _ship(fid, name, state, xz, archive_cmd, delete_shipped, report)


def _ship(fid, name, state, xz, archive_cmd, delete_shipped, report):
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
        yield ("write", set_state(fid, SHIPPED))
        report["shipped"] += 1
        state = SHIPPED
    if state == SHIPPED and delete_shipped:
        if os.path.exists(xz):
            os.remove(xz)
            fsync_dir(xz)
        yield ("write", set_state(fid, REMOVED))
        report["removed"] += 1


def _copy(ro, db_path, adir, now_ms, hot_days, report):
    """Write the next eligible part to a new file and verify it; (id, name,
    COPIED) once recorded, None when nothing is old enough. The rows go
    hot DB -> file by ``INSERT ... SELECT`` over an attached read-only hot
    DB: SQLite does the work in C, with the GIL released."""
    part = _next_part(ro, now_ms - hot_days * DAY_MS)
    if part is None:
        return None
    tables, first, end = part
    fid = (ro.execute("SELECT max(id) FROM archive_files").fetchone()[0] or 0) + 1
    day = datetime.datetime.fromtimestamp((end - DAY_MS) / 1000, datetime.timezone.utc)
    name = f"bets-{day:%Y-%m-%d}-{fid:06d}.db"
    path = os.path.join(adir, name)
    building = path + ".building"
    conn = create_file(building)
    after = first - 1
    steps = 0
    try:
        conn.execute("COMMIT")
        attach_hot(conn, db_path)
        conn.execute("BEGIN")
        while True:
            # one step: the next COPY_ROWS hot ids, whatever their day; the
            # settled ones of this part are copied (the hot snapshot is the
            # transaction's, the same for both statements)
            hi, low_col = conn.execute(
                "SELECT max(id), min(col) FROM (SELECT id, col FROM ("
                + _union(tables, "id, col", "id > ?") + ") ORDER BY id LIMIT ?)",
                (after,) * len(tables) + (COPY_ROWS,)).fetchone()
            if hi is None:
                break
            # in id order across the part's tables: the file's pages fill up
            conn.execute(f"INSERT INTO main.bet_rows({STORED_COLUMNS}) SELECT * FROM ("
                         + _union(tables, HOT_COLUMNS, "id > ? AND id <= ? AND outcome != 0"
                                  " AND col < ?") + ") ORDER BY 1", (after, hi, end) * len(tables))
            after = hi
            if low_col >= end + STOP_SLACK_MS:
                break
            steps += 1
            if steps % SYNC_STEPS == 0:
                # a little at a time: one big fsync at the end would stall the
                # Writer's fsyncs behind it
                conn.execute("COMMIT")
                fsync_path(building)
                conn.execute("BEGIN")
            yield ("pause",)
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE hot")
        conn.execute("BEGIN")
        first_id, last_id, n = conn.execute(
            "SELECT min(id), max(id), count(*) FROM bet_rows").fetchone()

        def sync():
            conn.execute("COMMIT")
            fsync_path(building)
            conn.execute("BEGIN")
        if first_id is not None:
            # the part's price record rides in the same file (``_pricerecord``)
            lo_col = conn.execute("SELECT min(col) FROM bet_rows").fetchone()[0]
            report["ticks_archived"] = report.get("ticks_archived", 0) + (
                yield from copy_record_steps(ro, conn, lo_col, end, sync))
        # 3: compressed by column, checksum version 2 (``_columns``, ``Checksum``)
        conn.execute("INSERT INTO meta VALUES ('format', 3)")
        conn.execute("COMMIT")
    finally:
        conn.close()
    fsync_path(building)
    os.replace(building, path)
    fsync_dir(path)
    yield ("pause",)
    # read back: sound pages, every row identical to the hot DB's, then the
    # checksum and totals (from the file, so they are what the file holds)
    ck, sums = yield from verify(path, db_path, n, SCAN_ROWS, tables)
    src = None if tables == ["bet_rows"] else ",".join(tables)
    yield ("write", [
        ("INSERT INTO archive_files(id, name, state, n, first_id, last_id, checksum, stakes,"
         " payouts, refunds, bytes, created, src) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
         (fid, name, COPIED, ck.n, first_id, last_id, ck.hexdigest(), sums[0],
          sums[1], sums[2], os.path.getsize(path), now_ms, src)),
        # ids must never be reused, even when every bet has left the hot DB
        ("INSERT INTO meta VALUES ('max_bet_id', ?) ON CONFLICT(key)"
         " DO UPDATE SET value = max(value, excluded.value)", (last_id,))])
    report["files"].append(name)
    log.info("archived %d bets into %s", ck.n, name)
    return fid, name, COPIED, src


def _union(tables, cols, where):
    return " UNION ALL ".join(f"SELECT {cols} FROM hot.{t} WHERE {where}" for t in tables)


def _next_part(ro, cutoff):
    """(tables, first settled id, end) of the next part whose day ended
    before ``cutoff``: ``bet_rows`` first (bets from before spans, one day
    at a time from its oldest settled bet), then the spans of the oldest day
    that has a settled bet (a day's file takes all of its spans)."""
    first = ro.execute("SELECT id, col FROM bet_rows WHERE outcome != 0 ORDER BY id LIMIT 1"
                       ).fetchone()
    if first is not None:
        end = (first[1] // DAY_MS + 1) * DAY_MS
        if end <= cutoff:
            return (["bet_rows"], first[0], end)
    spans = span_days(ro)
    for span in spans:
        end = (quarter_of(span) * SPAN_MS // DAY_MS + 1) * DAY_MS
        if end > cutoff:
            break
        tables = [span_table(s) for s in spans
                  if (quarter_of(s) * SPAN_MS // DAY_MS + 1) * DAY_MS == end]
        firsts = [r[0] for r in (ro.execute(f"SELECT min(id) FROM {t} WHERE outcome != 0")
                                 .fetchone() for t in tables) if r[0] is not None]
        if firsts:
            return (tables, min(firsts), end)
    return None
