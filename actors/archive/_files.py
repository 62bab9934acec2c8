"""Archive files: where they live, what is in them, and how to read them.

An archive file is an SQLite database holding one part of the bet history
(usually one UTC day): the same compact ``bet_rows`` as the hot DB (nonces
packed to bytes), the ``bets`` view, and a small ``meta`` table; the
``bets_user`` index (history by user) is built when a compressed file is
unpacked into the cache (files of format 1 carry it already). While the archiver works on it, it is ``<name>`` (plain
SQLite); once its bets are gone from the hot DB it is compressed to
``<name>.xz`` (lzma). Reading a compressed file decompresses it once into
``<archive dir>/.cache/`` (a bounded cache), then it is plain SQLite again.

The checksum of a part is BLAKE2b over its logical rows and market in id
order (nonce as text), the same whether computed from the hot DB or from
the file (``Checksum``; files recorded before the market was covered keep
their version 1 checksum).

Compressed files of format 3 (``_columns``) hold the rows by column; those
of formats 1 and 2 are the SQLite file itself, lzma-compressed. Both read
back as the same SQLite file.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> path = os.path.join(d, "bets-2024-01-02-000001.db")
    >>> conn = create_file(path)
    >>> conn.executemany(INSERT_LOGICAL, [to_stored((1, 7, 10000, 500, 200, 250, 250, 4000,
    ...     "AAAAAAAAAAAAAAAA", bytes(64), 4010, 2, 0, 12000))])
    <pysqlite3.dbapi2.Cursor object at ...>
    >>> conn.commit(); conn.close()
    >>> compress(path, path + ".xz"); os.remove(path)
    >>> ro = open_file(d, "bets-2024-01-02-000001.db")
    >>> [r[0] for r in ro.execute("SELECT " + LOGICAL_COLUMNS + " FROM bets")]
    [1]
    >>> ro.close()
"""
import hashlib
import lzma
import os
import shutil
import threading
import urllib.parse

import pysqlite3.dbapi2 as sqlite3

from ._columns import is_columnar, unpack
from ..store import (BET_ROWS, BETS_VIEW, LOGICAL_COLUMNS, NO_SETTLED, derived_payout,
                       nonce_text, pack_nonce)

__all__ = ["archive_dir_of", "create_file", "uri_of", "attach_hot", "STORED_COLUMNS", "HOT_COLUMNS", "INSERT_LOGICAL", "to_stored", "Checksum",
           "compress", "compress_steps", "open_file", "local_path", "LOGICAL_COLUMNS", "fsync_dir", "fsync_path",
           "CACHE_FILES", "COPIED", "DELETED", "COMPRESSED", "SHIPPED", "REMOVED",
           "STATE_NAMES"]

#: decompressed files kept in ``.cache`` (least recently used go first)
CACHE_FILES = 4

#: the states of a part in the hot DB's ``archive_files`` (see ``_archive``)
COPIED, DELETED, COMPRESSED, SHIPPED, REMOVED = 1, 2, 3, 4, 5
STATE_NAMES = {COPIED: "copied", DELETED: "deleted", COMPRESSED: "compressed",
               SHIPPED: "shipped", REMOVED: "removed"}

FILE_SCHEMA = BET_ROWS + """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
""" + BETS_VIEW

#: ``bet_rows`` as stored, in the hot DB and in the files alike; copied in C,
#: the nonce packed on the way (``attach_hot``)
STORED_COLUMNS = ("id, user, col, lo, stake, mult, outcome, mm_off, ts_off, placed_off,"
                  " settled_off, pay_adj, nonce, sig, mkt")
HOT_COLUMNS = STORED_COLUMNS.replace("nonce", "stored_nonce(nonce)")

INSERT_LOGICAL = ("INSERT INTO bet_rows(id, user, col, lo, stake, mult, outcome, mm_off, ts_off,"
                  " placed_off, settled_off, pay_adj, nonce, sig)"
                  " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_cache_lock = threading.Lock()


def archive_dir_of(cfg_archive_dir, db_path):
    """The configured archive directory, else ``<db dir>/archive``."""
    if cfg_archive_dir:
        return os.path.abspath(cfg_archive_dir)
    return os.path.join(os.path.dirname(os.path.abspath(db_path)), "archive")


def to_stored(row):
    """A logical row (``LOGICAL_COLUMNS`` order) as ``INSERT_LOGICAL`` params."""
    (bid, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed, outcome, payout,
     settled) = row
    return (bid, user, col, lo, stake, mult, outcome, mult - min_mult, col - ts, placed - ts,
            NO_SETTLED if settled is None else settled - col,
            payout - derived_payout(outcome, stake, mult), pack_nonce(nonce_text(nonce)),
            bytes(sig))


class Checksum:
    """Order-sensitive digest of logical rows (feed them in id order, the
    columns ``self.columns``). Version 2, recorded as ``"2:<hex>"``, covers
    the market too (``LOGICAL_COLUMNS`` then ``mkt``); version 1, a bare
    hex digest, is what files made before it were recorded with, and is
    still checked as such (``Checksum.like(recorded)``)."""

    def __init__(self, version=2):
        self.version = version
        self.columns = LOGICAL_COLUMNS + (", mkt" if version >= 2 else "")
        self.h = hashlib.blake2b(digest_size=16)
        self.n = 0

    @classmethod
    def like(cls, recorded):
        """A checksum of the version ``recorded`` was made with."""
        return cls(2 if str(recorded).startswith("2:") else 1)

    def add(self, row):
        head = row[:8] + (nonce_text(row[8]),) + row[10:]
        self.h.update(repr(head).encode())
        self.h.update(bytes(row[9]))
        self.n += 1

    def hexdigest(self):
        return ("2:" if self.version >= 2 else "") + self.h.hexdigest()


def uri_of(path, mode=None):
    """``path`` as an SQLite URI (``ATTACH`` takes one when the connection was opened by URI)."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    return uri + (f"?mode={mode}" if mode else "")


def _stored_nonce(value):
    return pack_nonce(nonce_text(value))


def attach_hot(conn, db_path):
    """Attach the hot DB read-only as ``hot``, with ``stored_nonce(x)`` (a
    nonce as the files store it, packed when it can be) for the SQL that
    copies and compares rows between the two."""
    conn.create_function("stored_nonce", 1, _stored_nonce, deterministic=True)
    conn.execute("ATTACH DATABASE ? AS hot", (uri_of(db_path, "ro"),))


def create_file(path):
    """A new, empty archive file, tuned for a one-shot bulk load (opened by
    URI, so the hot DB can be attached read-only and copied from in C)."""
    if os.path.exists(path):
        os.remove(path)
    conn = sqlite3.connect(uri_of(path), uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=OFF")     # a crash discards the file anyway
    conn.execute("PRAGMA synchronous=OFF")      # fsynced once, when finished
    conn.executescript(FILE_SCHEMA)
    conn.execute("BEGIN")
    return conn


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    fsync_path(os.path.dirname(os.path.abspath(path)))


def compress_steps(src, dst, preset=6, chunk=1 << 20, sync_every=4 << 20):
    """lzma ``src`` into ``dst`` durably (``dst.tmp``, fsynced, renamed), one
    ``chunk`` per step: a generator yielding ``("pause",)`` between chunks.
    lzma releases the GIL; the periodic fdatasync keeps dirty pages few, so
    the final fsync never stalls the Writer's fsyncs behind megabytes."""
    tmp = dst + ".tmp"
    comp = lzma.LZMACompressor(preset=preset)
    unsynced = 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        while True:
            data = fin.read(chunk)
            if not data:
                break
            out = comp.compress(data)
            fout.write(out)
            unsynced += len(out)
            if unsynced >= sync_every:
                fout.flush()
                os.fdatasync(fout.fileno())
                unsynced = 0
            yield ("pause",)
        fout.write(comp.flush())
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dst)
    fsync_dir(dst)


def compress(src, dst, preset=6):
    """``compress_steps`` in one go."""
    for _ in compress_steps(src, dst, preset):
        pass


def local_path(adir, name):
    """The plain file, else the compressed one, else None."""
    plain = os.path.join(adir, name)
    if os.path.exists(plain):
        return plain
    xz = plain + ".xz"
    return xz if os.path.exists(xz) else None


def _decompressed(adir, xz_path, name):
    cache = os.path.join(adir, ".cache")
    st = os.stat(xz_path)
    # the source's size and mtime in the name: a re-made file never reads stale
    target = os.path.join(cache, f"{name}.{st.st_size}.{int(st.st_mtime)}")
    with _cache_lock:
        if os.path.exists(target):
            os.utime(target)
            return target
        os.makedirs(cache, exist_ok=True)
        tmp = target + f".{os.getpid()}.{threading.get_ident()}.tmp"
        if is_columnar(xz_path):
            unpack(xz_path, tmp)            # format 3: the rows by column
        else:
            with lzma.open(xz_path, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        # format 2 ships without the history index (smaller): build it once here
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("CREATE INDEX IF NOT EXISTS bets_user ON bet_rows(user, id)")
        finally:
            conn.close()
        os.replace(tmp, target)
        entries = sorted((os.path.getmtime(os.path.join(cache, f)), f) for f in os.listdir(cache)
                         if not f.endswith(".tmp"))
        for _, f in entries[:-CACHE_FILES]:
            try:
                os.remove(os.path.join(cache, f))   # a reader holding it open keeps its copy
            except OSError:
                pass
        return target


def open_file(adir, name):
    """A read-only connection to archive file ``name`` (decompressing it into
    the cache if needed), or None when it is not on this machine."""
    path = local_path(adir, name)
    if path is None:
        return None
    if path.endswith(".xz"):
        path = _decompressed(adir, path, name)
    conn = sqlite3.connect("file:" + path + "?mode=ro&immutable=1", uri=True,
                           isolation_level=None, check_same_thread=False)
    return conn
