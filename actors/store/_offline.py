"""What ``tapgrid credit`` and ``tapgrid history`` do when the server is not
running: they open the database file directly.

Run them only while the server is stopped: the server keeps balances in
memory from its start and would not see an offline credit (SQLite's lock
keeps the file itself consistent either way).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.db")
    >>> credit_offline(path, "alice", 500)
    500
    >>> credit_offline(path, "alice", 250)
    750
    >>> history_offline(path, "alice")
    []
"""
import os

from ._receipt import history
from ._store import Store, open_readonly

__all__ = ["credit_offline", "history_offline"]


def credit_offline(db_path, user_name, amount, now=None) -> int:
    """Credit ``amount`` minor units to ``user_name`` (created if new) and
    return the new balance. The kind-1 ledger row and the balance update
    are one transaction, so an interrupted credit leaves no trace."""
    if type(amount) is not int or amount <= 0:
        raise ValueError("amount must be a positive integer of minor units")
    if not user_name:
        raise ValueError("user name must not be empty")
    store = Store(db_path)
    try:
        uid = store.conn.execute("SELECT id FROM users WHERE name=?", (user_name,)).fetchone()
        if uid is None:
            # A new user gets its row and first credit in one transaction.
            uid = store.ensure_user(user_name, credit=amount, now=now)
        else:
            uid = uid[0]
            store.write_batch(credits=[(uid, amount)], now=now)
        return store.user_balance(uid)
    finally:
        store.close()


def history_offline(db_path, user_name, limit=50, before_bet=None) -> list:
    """The user's bets newest first as SPEC section 9 receipts; raises
    ``LookupError`` for an unknown user, ``FileNotFoundError`` for no file."""
    if not os.path.exists(db_path):
        raise FileNotFoundError(db_path)
    conn = open_readonly(db_path)
    try:
        row = conn.execute("SELECT id FROM users WHERE name=?", (user_name,)).fetchone()
        if row is None:
            raise LookupError(f"no such user: {user_name}")
        return history(conn, row[0], before_bet=before_bet, limit=limit)
    finally:
        conn.close()
