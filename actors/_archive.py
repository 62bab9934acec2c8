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
(work in a low-priority thread, writes through the Writer, pauses between
chunks so taps never wait more than one small transaction) and offline
(``tapgrid archive``, writing through a ``Store``).

    >>> import tempfile, os
    >>> from actors import Config
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "t.db"))
    >>> archive_offline(cfg)["bets"]
    0
"""
import datetime
import fcntl
import json
import logging
import os
import shlex
import subprocess
import time

import gevent
import gevent.subprocess
from gevent.threadpool import ThreadPool

from engine import Actor

from ._archive_files import (INSERT_LOGICAL, LOGICAL_COLUMNS, Checksum, archive_dir_of,
                             compress, create_file, fsync_dir, fsync_path, to_stored)
from ._betrows import nonce_text
from ._model import VOID, WON
from ._store import KIND_PAYOUT, KIND_REFUND, Store, open_readonly

__all__ = ["Archiver", "archive_offline", "archive_steps", "ArchiveError", "STATE_NAMES",
           "COPIED", "DELETED", "COMPRESSED", "SHIPPED", "REMOVED", "DAY_MS"]

log = logging.getLogger("tapgrid.archive")

DAY_MS = 86_400_000
COPIED, DELETED, COMPRESSED, SHIPPED, REMOVED = 1, 2, 3, 4, 5
STATE_NAMES = {COPIED: "copied", DELETED: "deleted", COMPRESSED: "compressed",
               SHIPPED: "shipped", REMOVED: "removed"}
SCAN_ROWS = 2000            # rows read per step while copying
CHUNK = 256                 # bets deleted per Writer transaction
VACUUM_PAGES = 64           # pages reclaimed per incremental_vacuum step
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
    return {"files": [], "bets": 0, "shipped": 0, "removed": 0, "errors": [], "seconds": 0.0}


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
            part = yield from _copy(ro, adir, now_ms, hot_days, report)
            if part is None:
                break
            yield from _advance(ro, adir, *part, *opts)
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
        yield from _delete(ro, plain, fid, name, report)
        yield ("write", _set_state(fid, DELETED))
        state = DELETED
    if state == DELETED:
        if not os.path.exists(plain):
            raise ArchiveError(f"{name}: the file is missing (state deleted)")
        compress(plain, xz)
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
            yield ("pause",)
        conn.execute("CREATE INDEX bets_user ON bet_rows(user, id)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("name", name), ("n", ck.n), ("checksum", ck.hexdigest()), ("first_id", first_id),
            ("last_id", last_id), ("format", 1)])
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


# --- drivers ----------------------------------------------------------------------------


class _Lock:
    """One archiver at a time per archive directory (server or command)."""

    def __init__(self, adir):
        os.makedirs(adir, exist_ok=True)
        self.fd = os.open(os.path.join(adir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.held = True
        except BlockingIOError:
            self.held = False

    def release(self):
        os.close(self.fd)   # drops the flock


def archive_offline(cfg, now_ms=None):
    """``tapgrid archive``: run the job to the end on the database file,
    writing through a ``Store`` (this process is then the writer). Returns
    the report dict (files made, bets moved, shipped, errors)."""
    if not os.path.exists(cfg.db):
        raise FileNotFoundError(cfg.db)
    adir = archive_dir_of(cfg.archive_dir, cfg.db)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    lock = _Lock(adir)
    report = new_report()
    if not lock.held:
        report["errors"].append("another archiver is running")
        lock.release()
        return report
    t = time.monotonic()
    store = Store(cfg.db, cfg.synchronous)
    try:
        gen = archive_steps(cfg.db, adir, now_ms, cfg.hot_days, cfg.archive_cmd,
                            cfg.archive_delete_shipped, report)
        result = None
        while True:
            try:
                req = gen.send(result)
            except StopIteration:
                break
            result = None
            if req[0] == "write":
                store.write_batch(deletes=req[1], now=now_ms)
                result = True
            elif req[0] == "run":
                result = subprocess.call(req[1], shell=True)
    finally:
        store.close()
        lock.release()
    report["seconds"] = round(time.monotonic() - t, 3)
    return report


def _step(gen, value):
    # StopIteration must not cross the threadpool: turn it into a value
    try:
        return gen.send(value)
    except StopIteration:
        return ("done",)


def _lower_priority():
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 10)   # Linux: this thread only
    except (AttributeError, OSError):
        pass


class Archiver(Actor):
    """The archiver inside the server: runs every ``archive_every_s`` (first
    a minute after start) and on ``ask("run")``. Its file and SQLite work
    runs in its own niced thread; its deletes go through the Writer."""

    def __init__(self, ctx, first_s=60.0, pause_s=0.005):
        self.ctx = ctx
        self.first_s = first_s
        self.pause_s = pause_s

    def on_start(self):
        self.pool = ThreadPool(1)
        self.pool.apply(_lower_priority)
        self.last = None
        every = self.ctx.cfg.archive_every_s
        if every and every > 0:
            self.schedule_every(every, "tick", first=min(self.first_s, every))

    def on_stop(self):
        self.pool.kill()

    def receive(self, msg):
        if msg in ("tick", "run"):
            try:
                self.last = self._run()
            except Exception as exc:
                log.exception("archive run failed")
                self.last = dict(new_report(), errors=[repr(exc)])
                if msg == "run":
                    raise
            return self.last
        if msg == "status":
            return self.last
        raise ValueError(f"archiver: unknown message {msg!r}")

    def _run(self):
        cfg = self.ctx.cfg
        adir = archive_dir_of(cfg.archive_dir, cfg.db)
        lock = self.pool.apply(_Lock, (adir,))
        report = new_report()
        if not lock.held:
            lock.release()
            report["errors"].append("another archiver is running")
            return report
        t = time.monotonic()
        try:
            gen = archive_steps(cfg.db, adir, self.ctx.now(), cfg.hot_days, cfg.archive_cmd,
                                cfg.archive_delete_shipped, report)
            result = None
            while True:
                req = self.pool.apply(_step, (gen, result))
                result = None
                if req[0] == "done":
                    break
                if req[0] == "write":
                    result = self.ctx.writer.ask(("archive", req[1]), timeout=60)
                elif req[0] == "pause":
                    gevent.sleep(self.pause_s)
                elif req[0] == "run":
                    result = gevent.subprocess.call(req[1], shell=True)
        finally:
            lock.release()
        report["seconds"] = round(time.monotonic() - t, 3)
        return report
