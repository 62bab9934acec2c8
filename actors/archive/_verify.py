"""Reading an archive file back against the hot DB, in C where it can be:
the archiver deletes nothing the file does not hold identically."""
import os

import pysqlite3.dbapi2 as sqlite3

from ._files import LOGICAL_COLUMNS, STORED_COLUMNS, Checksum, attach_hot, uri_of
from .._model import VOID, WON
from ..store import nonce_text, view_arm

__all__ = ["ArchiveError", "DIFFERS", "verify", "explain"]

COMPARE_ROWS = 10_000       # file rows compared with the hot DB per statement


class ArchiveError(RuntimeError):
    """The archiver refuses to go on (nothing was deleted that is not archived)."""


def _canon(row):
    return row[:8] + (nonce_text(row[8]), bytes(row[9])) + tuple(row[10:])


# a file row and its hot twin differ (stored columns, NULL-safe)
DIFFERS = " OR ".join(f"f.{c} IS NOT h.{c}" for c in STORED_COLUMNS.split(", ")
                      if c not in ("id", "nonce")) + " OR f.nonce IS NOT stored_nonce(h.nonce)"


def verify(path, db_path, n, scan_rows, tables=("bet_rows",)):
    """Read the finished file back: sound pages, ``n`` rows, each identical
    to its row in one of the hot DB's ``tables`` (compared in C); then the checksum over its
    logical rows and its totals. Returns (Checksum, (stakes, payouts, refunds))."""
    conn = sqlite3.connect(uri_of(path, "ro"), uri=True, isolation_level=None,
                           check_same_thread=False)
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise ArchiveError(f"{path}: quick_check failed")
        attach_hot(conn, db_path)
        # by id range, each its own statement: a read of the hot DB held for
        # the whole file would hold the Writer's checkpoints back meanwhile,
        # and the WAL they then copy at once slows the fsyncs taps wait on.
        # A file row must match exactly one row of the part's tables.
        got = same = 0
        lo = -1
        while True:
            hi = conn.execute("SELECT max(id) FROM (SELECT id FROM main.bet_rows WHERE id > ?"
                              " ORDER BY id LIMIT ?)", (lo, COMPARE_ROWS)).fetchone()[0]
            if hi is None:
                break
            got += conn.execute("SELECT count(*) FROM main.bet_rows WHERE id > ? AND id <= ?",
                                (lo, hi)).fetchone()[0]
            for t in tables:
                k, bad = conn.execute(
                    f"SELECT count(*), sum(CASE WHEN {DIFFERS} THEN 1 ELSE 0 END)"
                    f" FROM main.bet_rows f JOIN hot.{t} h ON h.id = f.id"
                    " WHERE f.id > ? AND f.id <= ?", (lo, hi)).fetchone()
                same += k - (bad or 0)
            lo = hi
            yield ("pause",)
        conn.execute("DETACH DATABASE hot")
        if got != n or same != n:
            raise ArchiveError(f"{path}: read back {got} rows, {same} identical to the hot DB,"
                               f" wrote {n}")
        sums = conn.execute(
            f"SELECT coalesce(sum(stake), 0),"
            f" coalesce(sum(CASE outcome WHEN {WON} THEN payout ELSE 0 END), 0),"
            f" coalesce(sum(CASE outcome WHEN {VOID} THEN payout ELSE 0 END), 0)"
            " FROM bets").fetchone()
        ck = Checksum()
        cur = conn.execute(f"SELECT {ck.columns} FROM bets ORDER BY id")
        while True:
            rows = cur.fetchmany(scan_rows)
            if not rows:
                break
            for r in rows:
                ck.add(r)
            yield ("pause",)
    except ArchiveError:
        conn.close()
        os.remove(path)
        raise
    finally:
        conn.close()
    if ck.n != n:
        os.remove(path)
        raise ArchiveError(f"{path}: checksummed {ck.n} rows, wrote {n}")
    return ck, sums


def explain(fconn, name, lo, hi, tables=("bet_rows",)):
    """A chunk differs from the hot DB in storage: compare its logical rows
    (an old file may store a nonce as text where the hot DB packs it)."""
    arows = fconn.execute(f"SELECT {LOGICAL_COLUMNS} FROM main.bets WHERE id > ? AND id <= ?",
                          (lo, hi)).fetchall()
    hot = {r[0]: r for t in tables for r in fconn.execute(
        f"SELECT {LOGICAL_COLUMNS} FROM ({view_arm('hot.' + t)}) WHERE id > ? AND id <= ?",
        (lo, hi))}
    for r in arows:
        h = hot.get(r[0])
        if h is not None and _canon(h) != _canon(r):
            raise ArchiveError(f"bet {r[0]} differs between the hot DB and {name}")
