"""Demo top-ups and their limit, kept in the database: one per user per
``every_ms``, checked and credited in one transaction by the only writer, so
every gateway process agrees on it and a restart does not reset it.

    >>> import os, tempfile
    >>> from actors.store import Store
    >>> store = Store(os.path.join(tempfile.mkdtemp(), "t.db"))
    >>> uid = store.ensure_user("guest-1", 0, 1_000)
    >>> store.top_up(uid, 1_500, 60_000, now=10_000), store.user_balance(uid)
    ((True, 0), 1500)
    >>> store.top_up(uid, 1_500, 60_000, now=40_000)      # 30 s later: 30 s to wait
    (False, 30000)
    >>> store.close()
"""
__all__ = ["TOPUPS_SCHEMA", "top_up"]

TOPUPS_SCHEMA = """
-- The last demo top-up of each user (actors/store/_topups.py): the limit.
CREATE TABLE IF NOT EXISTS topups(user INTEGER PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
"""


def top_up(conn, user, amount, every_ms, now, kind):
    """Credit ``amount`` (a ledger row of ``kind``) unless ``user`` topped up less than ``every_ms``
    before ``now``: ``(True, 0)``, or ``(False, ms until one is allowed)``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT last FROM topups WHERE user = ?", (user,)).fetchone()
        if row is not None and now - row[0] < every_ms:
            conn.execute("ROLLBACK")
            return False, row[0] + every_ms - now
        conn.execute("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,?,?,NULL,?)",
                     (user, kind, amount, now))
        conn.execute("UPDATE users SET balance = balance + ? WHERE id = ?", (amount, user))
        conn.execute("INSERT OR REPLACE INTO topups(user, last) VALUES (?, ?)", (user, now))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True, 0
