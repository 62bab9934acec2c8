"""Bet receipts: the signed tap payload rebuilt from a stored bet, and the
player's bet history read newest first.

A bet row keeps only the integer fields, the nonce and the 64-byte
signature; the signed text is rebuilt here in the one canonical spelling
(SPEC section 9) by ``actors.wire.encode_tap_payload``, the same function
the gateway checks taps with, so anyone holding the session key can verify
a receipt.

    >>> r = receipt((7, 1700000005000, 6500000, 100, 235, 0, 0, 1700000001300,
    ...              235, 1700000001234, "n0nce-abc", b"\\xff\\xfe"))
    >>> r["payload"]
    '{"col":1700000005000,"lo":6500000,"stake":100,"min_mult":235,"ts":1700000001234,"nonce":"n0nce-abc"}'
    >>> r["sig"], r["outcome"], r["placed_at"]
    ('__4', 'open', 1700000001300)
"""
import pysqlite3.dbapi2 as sqlite3

from ..archive import archive_dir_of, open_file
from ..wire import b64url_encode as b64url
from ..wire import encode_tap_payload
from ._betrows import nonce_text
from .._model import OUTCOME_NAMES

__all__ = ["history", "next_cursor", "receipt", "market_names",
           "HISTORY_COLUMNS", "MAX_HISTORY_LIMIT"]

MAX_HISTORY_LIMIT = 500

#: what a receipt needs from a bets table; an archive file's bets table has
#: the same columns, so its query can reuse this list and ``receipt``.
HISTORY_COLUMNS = "id, col, lo, stake, mult, outcome, payout, placed, min_mult, ts, nonce, sig"


def receipt(row, markets=None) -> dict:
    """One history entry (SPEC section 9) from a row of ``HISTORY_COLUMNS``
    and, optionally, its ``mkt`` (an archive file's nonce may be packed to
    bytes: see ``_betrows``). ``markets`` maps market numbers to ids: the
    entry carries its ``market_id`` (v1.1), and a payload that named its
    market is rebuilt with it."""
    bet, col, lo, stake, mult, outcome, payout, placed, min_mult, ts, nonce, sig = row[:12]
    mkt = row[12] if len(row) > 12 else 0
    market_id = (markets or {}).get(mkt >> 1)
    entry = {"bet": bet, "col": col, "lo": lo, "stake": stake, "mult": mult,
             "outcome": OUTCOME_NAMES.get(outcome, str(outcome)), "payout": payout,
             "placed_at": placed,
             "payload": encode_tap_payload(col, lo, stake, min_mult, ts, nonce_text(nonce),
                                           market_id if mkt & 1 else None),
             "sig": b64url(bytes(sig))}
    if market_id is not None:
        entry["market_id"] = market_id
    return entry


def market_names(conn):
    """{number: market id} from the hot DB's ``markets`` table ({} before markets)."""
    try:
        return {n: name for n, name in conn.execute("SELECT id, name FROM markets")}
    except sqlite3.OperationalError:
        return {}


def _has_mkt(conn):
    # archive files from before several markets have no mkt: their bets are market 0's, v1
    return "mkt" in [r[1] for r in conn.execute("PRAGMA table_info(bet_rows)")]


def _page(conn, user_id, before_bet, limit):
    cols = HISTORY_COLUMNS + (", mkt" if _has_mkt(conn) else "")
    if before_bet is None:
        return conn.execute(f"SELECT {cols} FROM bets WHERE user=?"
                            " ORDER BY id DESC LIMIT ?", (user_id, limit)).fetchall()
    return conn.execute(f"SELECT {cols} FROM bets WHERE user=? AND id<?"
                        " ORDER BY id DESC LIMIT ?", (user_id, int(before_bet), limit)).fetchall()


def history(conn, user_id, before_bet=None, limit=50) -> list:
    """The user's bets newest first, ``limit`` at most, only ids below
    ``before_bet`` when given (the paging cursor), from the hot DB and the
    archive files alike. Walks the ``bets_user`` index backwards (in the hot
    DB and in each archive file that holds the user's bets), so a page costs
    the same on the millionth bet; files older than a full page are not
    opened. Archive files shipped away and deleted locally are skipped."""
    limit = max(1, min(int(limit), MAX_HISTORY_LIMIT))
    rows = {r[0]: r for r in _page(conn, user_id, before_bet, limit)}
    # Read after the hot rows: bets only move hot -> archive, and a chunk's
    # ``archived`` row commits with its delete, so nothing falls in between.
    for conn_a in _archive_pages(conn, user_id, before_bet, limit, rows):
        try:
            for r in _page(conn_a, user_id, before_bet, limit):
                rows.setdefault(r[0], r)
        finally:
            conn_a.close()
    names = market_names(conn)
    return [receipt(rows[b], names) for b in sorted(rows, reverse=True)[:limit]]


def _archive_pages(conn, user_id, before_bet, limit, rows):
    """Connections to the archive files that may hold the next rows of this page."""
    try:
        files = conn.execute(
            "SELECT f.name, f.first_id, f.last_id FROM archived a JOIN archive_files f"
            " ON f.id = a.file WHERE a.user = ? AND f.first_id < ? ORDER BY f.last_id DESC",
            (user_id, before_bet if before_bet is not None else 1 << 62)).fetchall()
    except sqlite3.OperationalError:      # a database from before archiving existed
        return
    if not files:
        return
    adir = _archive_dir(conn)
    for name, first_id, last_id in files:
        if len(rows) >= limit and sorted(rows, reverse=True)[limit - 1] > last_id:
            break           # a full page of newer bets already: older files cannot matter
        conn_a = open_file(adir, name)
        if conn_a is not None:
            yield conn_a


def _archive_dir(conn):
    row = conn.execute("SELECT value FROM meta WHERE key = 'archive_dir'").fetchone()
    if row and row[0]:
        return row[0]
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    return archive_dir_of(None, path)


def next_cursor(bets, limit):
    """The cursor for the page after ``bets`` (None when it was the last):
    the oldest bet id shown, passed back as ``before_bet``."""
    full = max(1, min(int(limit), MAX_HISTORY_LIMIT))
    return bets[-1]["bet"] if bets and len(bets) >= full else None
