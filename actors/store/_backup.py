"""``tapgrid backup``: an online copy of the database through SQLite's
backup API, while the server runs.

The copy reads one consistent snapshot: the source connection holds a read
transaction for the whole copy, so the Writer's commits (WAL) neither wait
for it nor restart it, and the copy moves ``pages`` pages a step with a
rest of ``sleep_s`` after each (Python's ``backup(sleep=)`` sleeps only when
a step finds the source locked, never in WAL mode: the copy ran flat out),
and after each write-out of its dirty pages a rest as long as that took,
so the server's fsyncs find the disk free. The whole copy runs at idle CPU priority (``SCHED_IDLE``,
restored after) and in the idle I/O class (its write-outs queue behind the
Writer's in mq-deadline): on a box the server fills, what taps feel of a backup is
its CPU, not its locks. The result is written beside ``out``, checked
(``quick_check``), fsynced and renamed: a backup file is whole or absent.
No writer lock is taken: a backup is a reader.

    >>> import tempfile, os
    >>> from actors.store import Store
    >>> d = tempfile.mkdtemp(); db = os.path.join(d, "t.db")
    >>> s = Store(db); _ = s.ensure_user("alice", credit=1000); s.close()
    >>> backup(db, os.path.join(d, "copy.db"))["pages"] > 0
    True
"""
import os
import time

import pysqlite3.dbapi2 as sqlite3

from ._idle import idle_priority, io_priority

__all__ = ["backup"]


def backup(db_path, out, pages=128, sleep_s=0.005):
    """Copy ``db_path`` to ``out``; a dict with pages, bytes, seconds,
    ``rested_s`` (of those, the rests), ``priority`` (how the CPU's was
    lowered) and ``io_class`` (the disk's: 3 is idle)."""
    with idle_priority() as how:
        # the I/O class it ran in (3: idle), for the caller to see it took
        return dict(_backup(db_path, out, pages, sleep_s), priority=how,
                    io_class=io_priority()[0])


class _Flusher:
    """The backup's ``progress`` callback, after each step: writes the
    copy's dirty pages out every ``SYNC_BYTES`` (fdatasync), so the kernel
    never holds tens of MB of them to flush at once (the Writer's fsyncs
    would queue behind that flood), and the final fsync is short; then
    rests (``sleep_s``, plus as long as a write-out took)."""

    def __init__(self, path, pages, sleep_s=0.0, page_size=4096):
        self.path, self.step, self.since, self.fd = path, pages * page_size, 0, None
        self.sleep_s, self.rested = sleep_s, 0.0

    def __call__(self, status, remaining, total):
        rest = self.sleep_s if remaining else 0.0
        self.since += self.step
        if self.since >= SYNC_BYTES and os.path.exists(self.path):
            self.since = 0
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDONLY)
            t = time.monotonic()
            os.fdatasync(self.fd)
            # Stop 23: smaller write-outs (256 KB) made the tail worse (more
            # journal commits); 2 MB ones, spaced by as long as each took, halve
            # the copy's share of the disk instead.
            rest += time.monotonic() - t
        if rest > 0:
            self.rested += rest
            time.sleep(rest)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


SYNC_BYTES = 2 << 20


def _backup(db_path, out, pages, sleep_s):
    if not os.path.exists(db_path):
        raise FileNotFoundError(db_path)
    if os.path.exists(out):
        raise FileExistsError(f"{out} exists; a backup never overwrites")
    t = time.monotonic()
    tmp = out + ".partial"
    if os.path.exists(tmp):
        os.remove(tmp)
    src = sqlite3.connect("file:" + os.path.abspath(db_path) + "?mode=ro", uri=True,
                          isolation_level=None, timeout=5)
    dst = sqlite3.connect(tmp, isolation_level=None)
    flusher = _Flusher(tmp, pages, sleep_s)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()   # pins the snapshot
        src.backup(dst, pages=pages, sleep=max(sleep_s, 0.001), progress=flusher)
        src.execute("COMMIT")
        if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise OSError(f"{tmp}: quick_check failed")
        n = dst.execute("PRAGMA page_count").fetchone()[0]
        dst.execute("PRAGMA journal_mode=DELETE")   # one self-contained file
    finally:
        flusher.close()
        dst.close()
        src.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, out)
    dfd = os.open(os.path.dirname(os.path.abspath(out)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return {"pages": n, "bytes": os.path.getsize(out), "seconds": round(time.monotonic() - t, 3),
            "rested_s": round(flusher.rested, 3)}
