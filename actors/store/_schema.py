"""The database's shape: the schema, its version and the migrations that
bring an older file up to it, the ledger's entry kinds, and how a
connection is opened (read-write for the one Writer, read-only for
everyone else).

    >>> import os, tempfile
    >>> from actors.store import Store, open_readonly
    >>> path = os.path.join(tempfile.mkdtemp(), "s.db")
    >>> Store(path).close()
    >>> conn = open_readonly(path)
    >>> conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == SCHEMA_VERSION
    True
    >>> conn.close()
"""
import os

import pysqlite3.dbapi2 as sqlite3

from ._betrows import BET_ROWS, BETS_VIEW, NO_SETTLED
from ._spans import rebuild_view
from ._topups import TOPUPS_SCHEMA
from .._model import VOID, WON

__all__ = ["SCHEMA", "SCHEMA_VERSION", "INSERT_KEY", "KIND_CREDIT", "KIND_PAYOUT", "KIND_REFUND",
           "is_disk_full", "connect", "open_readonly", "migrate"]

SCHEMA_VERSION = 4
KIND_CREDIT, KIND_PAYOUT, KIND_REFUND = 1, 3, 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    balance INTEGER NOT NULL,
    created INTEGER NOT NULL);
""" + BET_ROWS + """
-- The Resolver's covering index: open bets of a column by band. Partial, so
-- a settled bet costs the index nothing.
-- mkt last: one market's Resolver filters on it inside the index.
CREATE INDEX IF NOT EXISTS bets_open ON bet_rows(col, lo, user, stake, mult, mkt)
    WHERE outcome = 0;
CREATE INDEX IF NOT EXISTS bets_user ON bet_rows(user, id);
CREATE TABLE IF NOT EXISTS ledger(
    id INTEGER PRIMARY KEY,
    user INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    bet INTEGER,
    ts INTEGER NOT NULL);
-- Payout and refund rows by bet: the archiver moves them with their bets.
CREATE INDEX IF NOT EXISTS ledger_bet ON ledger(bet) WHERE bet IS NOT NULL;
-- The price record (actors/_pricerecord.py): every price that entered the
-- market, with the sources it is the median of (NULL: one source), and the
-- periods the price was stale. Settlement is replayed and verified from it.
CREATE TABLE IF NOT EXISTS ticks(ts INTEGER PRIMARY KEY, price INTEGER NOT NULL, src TEXT)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale_spans(start INTEGER PRIMARY KEY, end INTEGER) WITHOUT ROWID;
-- The markets bets were placed on (bet_rows.mkt = 2 * id + keyed, see
-- _betrows); id 0 is the default market of the first start, which is also
-- the market of every bet from before several markets existed. Another
-- asset's price record is in its own tables (_pricerecord.record_tables).
CREATE TABLE IF NOT EXISTS markets(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- Every session key a user signed in with, kept after the session expires
-- so a receipt's signature can be checked for as long as the bet exists.
CREATE TABLE IF NOT EXISTS session_keys(
    user INTEGER NOT NULL,
    key BLOB NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (user, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions(
    token BLOB PRIMARY KEY,
    user INTEGER NOT NULL,
    session_key BLOB NOT NULL,
    expires INTEGER NOT NULL) WITHOUT ROWID;
-- Retention (actors/archive): one row per archive file (``src``: the hot
-- table its bets came from, NULL for ``bet_rows``), and what each file took
-- out of the hot DB per user, so balances stay provable here even after a
-- file has left the machine.
CREATE TABLE IF NOT EXISTS archive_files(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    n INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    stakes INTEGER NOT NULL,
    payouts INTEGER NOT NULL,
    refunds INTEGER NOT NULL,
    bytes INTEGER,
    created INTEGER NOT NULL,
    src TEXT);
CREATE TABLE IF NOT EXISTS archived(
    user INTEGER NOT NULL,
    file INTEGER NOT NULL,
    n INTEGER NOT NULL,
    stakes INTEGER NOT NULL,
    payouts INTEGER NOT NULL,
    refunds INTEGER NOT NULL,
    PRIMARY KEY (user, file)) WITHOUT ROWID;
""" + BETS_VIEW + TOPUPS_SCHEMA

INSERT_KEY = ("INSERT INTO session_keys(user, key, created, expires) VALUES (?,?,?,?)"
              " ON CONFLICT(user, key) DO UPDATE SET expires = max(expires, excluded.expires)")


def is_disk_full(exc):
    """True for the errors that mean the storage cannot take writes: ENOSPC,
    EFBIG, SQLITE_FULL, and SQLite's "disk I/O error" (what a write past
    RLIMIT_FSIZE or a failing device looks like from inside SQLite)."""
    text = str(exc).lower()
    return ("full" in text or "no space" in text or "too large" in text
            or "disk i/o error" in text or getattr(exc, "errno", None) in (28, 27))


def connect(path, readonly=False):
    if readonly:
        uri = "file:" + os.path.abspath(path) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                               check_same_thread=False, timeout=5)
        conn.execute("PRAGMA query_only=ON")
        return conn
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    return conn


def open_readonly(path):
    """A read-only connection (WAL readers never block the Writer)."""
    return connect(path, readonly=True)


def migrate(conn):
    """Bring the database at ``conn`` to ``SCHEMA_VERSION`` (a fresh one
    gets the schema; each step is one transaction, safe to crash in)."""
    _migrate_v1(conn)
    _add_markets(conn)
    conn.executescript(SCHEMA)
    _add_tick_sources(conn)
    _add_spans(conn)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version' AND value < ?",
                 (SCHEMA_VERSION, SCHEMA_VERSION))


def _add_spans(conn):
    """Schema 4 keeps new bets in a table per day (``_spans``): the existing
    ``bet_rows`` stays as it is, the first span; ``archive_files`` gains
    ``src``; and ``bets`` is rebuilt over whatever tables exist (on every
    open: one transaction, cheap)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "src" not in [r[1] for r in conn.execute("PRAGMA table_info(archive_files)")]:
            conn.execute("ALTER TABLE archive_files ADD COLUMN src TEXT")
        rebuild_view(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_tick_sources(conn):
    """Databases from before several sources: ``ticks`` gains ``src``, and
    the keys of the sessions still stored become ``session_keys`` (one
    transaction, so a crash leaves neither half)."""
    if "src" in [r[1] for r in conn.execute("PRAGMA table_info(ticks)")]:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE ticks ADD COLUMN src TEXT")
        conn.execute("INSERT OR IGNORE INTO session_keys(user, key, created, expires)"
                     " SELECT user, session_key, 0, max(expires) FROM sessions"
                     " GROUP BY user, session_key")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_markets(conn):
    """Databases from before several markets (schema 2): ``bet_rows`` gains
    ``mkt`` (0 on every old row, stored in no bytes: ALTER rewrites
    nothing), the open-bets index gains it, and the ``bets`` view and its
    triggers are rebuilt with it (``executescript(SCHEMA)`` recreates them)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='bet_rows'").fetchone():
        return
    if "mkt" in [r[1] for r in conn.execute("PRAGMA table_info(bet_rows)")]:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE bet_rows ADD COLUMN mkt INTEGER NOT NULL DEFAULT 0")
        conn.execute("DROP INDEX IF EXISTS bets_open")
        for trigger in ("bets_insert", "bets_update", "bets_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute("DROP VIEW IF EXISTS bets")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate_v1(conn):
    """Schema 1 kept ``bets`` as a wide table; schema 2 keeps ``bet_rows``
    compact behind a ``bets`` view. Converted in one transaction."""
    row = conn.execute("SELECT type FROM sqlite_master WHERE name='bets'").fetchone()
    if not row or row[0] != "table":
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE bets RENAME TO bets_v1")
        conn.execute("DROP INDEX IF EXISTS bets_open")
        conn.execute("DROP INDEX IF EXISTS bets_user")
        for stmt in BET_ROWS.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"""INSERT INTO bet_rows(id, user, col, lo, stake, mult, outcome, mm_off,
                ts_off, placed_off, settled_off, pay_adj, nonce, sig)
            SELECT id, user, col, lo, stake, mult, outcome, mult - min_mult, col - ts,
                   placed - ts, coalesce(settled - col, {NO_SETTLED}),
                   payout - (CASE outcome WHEN {WON} THEN stake * mult / 100
                                          WHEN {VOID} THEN stake ELSE 0 END), nonce, sig
            FROM bets_v1""")
        conn.execute("DROP TABLE bets_v1")
        conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
