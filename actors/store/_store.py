"""The SQLite store: the Writer's transactions and the read queries it
answers (the schema and its migrations are in ``_schema``).

Only the Writer actor calls the write methods (it is the only writer); the
Resolver, the web layer and the CLI read through ``open_readonly``. Rows are
compact: integer ids, prices in cents, times in ms, a 64-byte signature.
The bet row is itself the ledger entry of its stake; the ``ledger`` table
holds credits, payouts and refunds, each referencing its bet.

    >>> import tempfile, os
    >>> from actors.store import Store
    >>> path = os.path.join(tempfile.mkdtemp(), "t.db")
    >>> store = Store(path)
    >>> uid = store.ensure_user("guest:abc", credit=1000, now=0)
    >>> store.user_balance(uid)
    1000
    >>> store.close()
"""
import os
import time

import pysqlite3.dbapi2 as sqlite3

from . import _dblock
from ._betrows import nonce_text
from ._spans import DROP_SPAN, MAX_SPANS, Spans, bet_tables, open_index, span_of, span_table
from ._schema import (INSERT_KEY, KIND_CREDIT, KIND_PAYOUT, KIND_REFUND, SCHEMA_VERSION, connect,
                      is_disk_full, migrate, open_readonly)
from ._topups import top_up
from ._settle import SETTLE_TEMP, settle

__all__ = ["Store", "open_readonly", "SCHEMA_VERSION", "INSERT_KEY", "KIND_CREDIT", "KIND_PAYOUT",
           "KIND_REFUND", "is_disk_full"]

_INSERT_BETS = ("INSERT INTO {t}(id, user, col, lo, stake, mult, mm_off, ts_off, placed_off,"
                " nonce, sig, mkt) VALUES ")
_BET_VALUES = "(?,?,?,?,?,?,?,?,?,?,?,?)"
#: a batch's bets go in statements of these many rows (its size in binary):
#: one step each, where ``executemany`` steps once per row, and each step
#: gives the GIL up and takes it back (a hand-over with the event loop
#: when the loop holds it); eight shapes a table, so every statement stays cached
_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)
_VALUES = {n: ",".join([_BET_VALUES] * n) for n in _CHUNKS}
# The stakes leave the balances in one statement a table, summed from the
# rows just written (ids ?1..?2), instead of one UPDATE per user.
_DEBIT_STAKES = ("UPDATE users SET balance = balance - d.total FROM (SELECT user, sum(stake)"
                 " AS total FROM {t} WHERE id BETWEEN ?1 AND ?2 GROUP BY user) AS d"
                 " WHERE users.id = d.user")
def _insert_bets(conn, table, ids, bets):
    flat = []
    for i, b in zip(ids, bets):
        flat += (i, b.user, b.col, b.lo, b.stake, b.mult, b.mult - b.min_mult, b.col - b.ts,
                 b.placed - b.ts, b.nonce, b.sig, b.mkt)
    head = _INSERT_BETS.format(t=table)
    pos, left = 0, len(bets)
    while left:
        n = next(c for c in _CHUNKS if c <= left)
        conn.execute(head + _VALUES[n], flat[pos * 12:(pos + n) * 12])
        pos += n
        left -= n


class UserExists(ValueError):
    """``ensure_user(new=True)`` for a name that is taken."""


class Store:
    """The write side. Not thread-safe by itself: the Writer serialises calls
    (its commits run on its commit thread, one at a time)."""

    def __init__(self, path, synchronous="FULL", commit_delay_ms=0.0, autocheckpoint=True,
                 cache_mb=64, span_max_bets=40_000):
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        # One writer per database, refused at once (see _dblock).
        self._lock = _dblock.acquire(path)
        self.span_max_bets = span_max_bets
        try:
            self._open(path, synchronous, commit_delay_ms, autocheckpoint, cache_mb)
        except BaseException:
            _dblock.release(self._lock)
            raise

    def _open(self, path, synchronous, commit_delay_ms, autocheckpoint, cache_mb):
        self.autocheckpoint = autocheckpoint
        self.last_commit = None     # (perf_counter at COMMIT, at its return): _in_transaction
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        self.path = path
        self.conn = conn = connect(path)
        self.commit_delay = commit_delay_ms / 1000.0
        if fresh:
            # Must precede the first table: auto_vacuum is fixed at creation.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        self.synchronous = synchronous.upper()
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA temp_store=MEMORY")
        # The indexes a bet touches (by user, by open cell) take random
        # pages: with SQLite's 2 MB default most inserts miss its cache and
        # read the page back from the OS (~14 % more bets per CPU second).
        conn.execute(f"PRAGMA cache_size={-1024 * int(cache_mb)}")
        if not autocheckpoint:
            # Litestream replicates the WAL and must own checkpoints (its docs)
            conn.execute("PRAGMA wal_autocheckpoint=0")
        migrate(conn)
        conn.executescript(SETTLE_TEMP)
        self.spans = Spans(conn, self.span_max_bets, MAX_SPANS)
        if self.spans.retired:
            # emptied by the archiver before a restart: no taps yet to stall
            self._in_transaction(self.spans.drop_retired)
        self.next_bet_id = max((conn.execute(f"SELECT max(id) FROM {t}").fetchone()[0] or 0)
                               for t in bet_tables(conn)) + 1
        archived_max = conn.execute("SELECT value FROM meta WHERE key='max_bet_id'").fetchone()
        if archived_max and archived_max[0] and archived_max[0] >= self.next_bet_id:
            self.next_bet_id = archived_max[0] + 1

    def close(self):
        try:
            self.conn.close()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                _dblock.release(lock)

    # --- the Writer's one transaction per batch ------------------------------------------

    def write_batch(self, bets=(), settlements=(), credits=(), ticks=(), sessions=(),
                    deletes=(), now=None):
        """Write everything in one transaction and commit (fsync).

        ``bets``: Bet tuples; returns their assigned ids in order.
        ``settlements``: Settlement tuples; each applies only if the bet is
        still open (idempotent), and the returned list says which applied.
        ``credits``: (user, amount) pairs. ``ticks``: (ts, price) pairs.
        ``sessions``: (token_hash, user, key, expires) rows.
        On any error the transaction rolls back and the error propagates.
        """
        now = int(time.time() * 1000) if now is None else now

        def write(conn):
            ids, applied = [], []
            if bets:
                first = self.next_bet_id
                ids = list(range(first, first + len(bets)))
                self._insert(conn, ids, bets)
            if settlements:
                applied = self._settle(conn, settlements, now)
            for user, amount in credits:
                conn.execute("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,?,NULL,?)",
                             (user, KIND_CREDIT, amount, now))
                conn.execute("UPDATE users SET balance = balance + ? WHERE id = ?", (amount, user))
            if ticks:
                # (ts, price[, src[, table]]): BTC-USD's record is ``ticks``,
                # another asset's its own table (``record_tables``)
                by_table = {}
                for t in ticks:
                    by_table.setdefault(t[3] if len(t) > 3 else "ticks", []).append(
                        (t[0], t[1], t[2] if len(t) > 2 else None))
                for table, rows in by_table.items():
                    conn.executemany(f"INSERT OR REPLACE INTO {table}(ts, price, src)"
                                     " VALUES (?,?,?)", rows)
            if sessions:
                conn.executemany("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?)", sessions)
                conn.executemany(INSERT_KEY, [(u, k, now, e) for _, u, k, e in sessions])
            for sql, params in deletes:
                if sql == DROP_SPAN:
                    self.spans.retire(conn, *params)
                    continue
                # fetchall: a PRAGMA incremental_vacuum(N) frees one page per row fetched
                conn.execute(sql, params).fetchall()
            return ids, applied

        ids, applied = self._in_transaction(write, self.commit_delay)
        if bets:
            self.next_bet_id = ids[-1] + 1
        return ids, applied

    @property
    def days(self):
        """The spans that exist (see ``Spans``)."""
        return self.spans.days

    @property
    def max_spans(self):
        """No span is cut by size past this many (``Spans``)."""
        return self.spans.max_spans

    @max_spans.setter
    def max_spans(self, n):
        self.spans.max_spans = n

    def drop_retired(self):
        """Drop every span the archiver emptied, and give their pages back:
        the end of an offline archive (no taps to stall)."""
        def drop(conn):
            if self.spans.drop_retired(conn):
                conn.execute("PRAGMA incremental_vacuum").fetchall()
        self._in_transaction(drop)

    def _in_transaction(self, fn, commit_delay=0):
        """``fn(conn)`` in one write transaction, committed (fsync); its result."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            if commit_delay:
                time.sleep(commit_delay)    # benchmark: a slower fsync
            t = time.perf_counter()
            conn.execute("COMMIT")
            # the COMMIT alone (the WAL append and its fsync), apart from the
            # statements before it: what a tap's wait is made of, for tracing
            self.last_commit = (t, time.perf_counter())
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.spans.reload(conn)     # a span made, emptied or dropped in it is undone
            raise
        return result

    def _insert(self, conn, ids, bets):
        """The bets into their quarters' newest tables (a quarter's first
        bet creates its span, and the first past a span's size the next)."""
        by_table = {}
        for i, b in zip(ids, bets):
            q = span_of(b.col)
            if q is None:
                table = "bet_rows"
            else:
                day = self.spans.span_for(conn, q)
                self.spans.fill[day] += 1
                table = span_table(day)
            got = by_table.setdefault(table, ([], []))
            got[0].append(i)
            got[1].append(b)
        for table, (tids, tbets) in by_table.items():
            _insert_bets(conn, table, tids, tbets)
            conn.execute(_DEBIT_STAKES.format(t=table), (tids[0], tids[-1]))

    def _settle(self, conn, settlements, now):
        return settle(conn, self.spans, settlements, now)

    # --- checkpoints -------------------------------------------------------------------

    def defer_checkpoints(self, backstop_pages=20000):
        """The Writer checkpoints from another thread; SQLite's own
        checkpoint (inside a COMMIT, so inside a tap's wait) stays only as a
        backstop should that thread fall far behind."""
        self.conn.execute(f"PRAGMA wal_autocheckpoint={int(backstop_pages)}")

    def checkpoint_connection(self):
        """A connection of its own for ``PRAGMA wal_checkpoint(PASSIVE)``,
        which copies the WAL back beside the Writer's commits."""
        conn = connect(self.path)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    # --- users -------------------------------------------------------------------------

    def ensure_user(self, name, credit=0, now=None, new=False):
        """The user's id, creating it (with a first credit) if new. With
        ``new`` an existing name is an error (``UserExists``): a guest name
        that collides must never sign the newcomer into someone's account."""
        now = int(time.time() * 1000) if now is None else now
        row = self.conn.execute("SELECT id FROM users WHERE name=?", (name,)).fetchone()
        if row:
            if new:
                raise UserExists(name)
            return row[0]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute("INSERT INTO users(name, balance, created) VALUES (?,0,?)", (name, now))
            uid = cur.lastrowid
            if credit:
                conn.execute("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,?,NULL,?)",
                             (uid, KIND_CREDIT, credit, now))
                conn.execute("UPDATE users SET balance=? WHERE id=?", (credit, uid))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return uid

    def purge_idle_guests(self, created_before):
        """Delete guest accounts created before ``created_before`` that never
        bet (hot or archived) and hold only their first credit; their ids.
        Called with a cutoff past the session lifetime, so no live session
        (SQLite or Redis) can point at them."""
        conn = self.conn
        idle = ("SELECT u.id FROM users u WHERE u.name LIKE 'guest-%' AND u.created < ? "
                "AND NOT EXISTS (SELECT 1 FROM bets b WHERE b.user = u.id) "
                "AND NOT EXISTS (SELECT 1 FROM archived a WHERE a.user = u.id) "
                "AND (SELECT COUNT(*) FROM ledger l WHERE l.user = u.id) <= 1")
        conn.execute("BEGIN IMMEDIATE")
        try:
            uids = [r[0] for r in conn.execute(idle, (created_before,))]
            for i in range(0, len(uids), 500):
                chunk = uids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM ledger WHERE user IN ({marks})", chunk)
                conn.execute(f"DELETE FROM sessions WHERE user IN ({marks})", chunk)
                # No bets, so no receipt will ever need these keys.
                conn.execute(f"DELETE FROM session_keys WHERE user IN ({marks})", chunk)
                conn.execute(f"DELETE FROM users WHERE id IN ({marks})", chunk)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return uids

    def top_up(self, user, amount, every_ms, now):
        """A demo top-up under its limit (see ``_topups``)."""
        return top_up(self.conn, user, amount, every_ms, now, KIND_CREDIT)

    def user_balance(self, uid):
        row = self.conn.execute("SELECT balance FROM users WHERE id=?", (uid,)).fetchone()
        return row[0] if row else None

    # --- state rebuilt on start ----------------------------------------------------------

    def load_state(self):
        """(users {id: (name, balance)}, open bets as rows
        (id, user, col, lo, stake, mult, mkt))."""
        users = {uid: (name, bal) for uid, name, bal in
                 self.conn.execute("SELECT id, name, balance FROM users")}
        open_bets = []
        for t in bet_tables(self.conn):
            open_bets += self.conn.execute(
                f"SELECT id, user, col, lo, stake, mult, mkt FROM {t} INDEXED BY {open_index(t)}"
                " WHERE outcome=0").fetchall()
        return users, open_bets

    def market_numbers(self, names):
        """{market id: its number} for ``names`` (the configured markets, the
        default first), numbering new ones. On a database without any, the
        default becomes market 0, the market of the bets from before."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT count(*) FROM markets").fetchone()[0] == 0 and names:
                conn.execute("INSERT INTO markets(id, name) VALUES (0, ?)", (names[0],))
            for name in names:
                conn.execute("INSERT OR IGNORE INTO markets(id, name) VALUES"
                             " ((SELECT max(id) + 1 FROM markets), ?)", (name,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return dict(conn.execute("SELECT name, id FROM markets").fetchall())

    def ensure_record(self, asset):
        """The price-record tables of ``asset`` (BTC-USD's exist already)."""
        from ._pricerecord import record_schema
        self.conn.executescript(record_schema(asset))

    def last_tick(self, table="ticks"):
        """(ts, price) of the newest stored tick, or None on a new database."""
        return self.conn.execute(f"SELECT ts, price FROM {table} ORDER BY ts DESC LIMIT 1"
                                 ).fetchone()

    def recent_nonces(self, since_ms):
        """(user, nonce, placed ms) of the bets placed since ``since_ms``,
        newest first: what the market's replay record is rebuilt from. Ids
        follow placement (give or take one batch), so walking the primary
        key backwards stops soon after the window, whatever the table size."""
        rows = []
        # each table walked newest first: a day's span, like ``bet_rows``,
        # holds its bets in placement order
        for t in reversed(bet_tables(self.conn)):
            cur = self.conn.execute(f"SELECT user, nonce, col - ts_off + placed_off FROM {t}"
                                    " ORDER BY id DESC")
            for user, nonce, placed in cur:
                if placed < since_ms - 10_000:
                    break
                if placed >= since_ms:
                    rows.append((user, nonce_text(nonce), placed))
            cur.close()
        rows.sort(key=lambda r: r[2], reverse=True)
        return rows
