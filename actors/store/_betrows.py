"""The compact bet row, shared by the hot DB and the archive files.

A bet is stored in ``bet_rows`` with everything derivable left out and the
times kept as small offsets from the column (1-3 byte integers instead of
6): ``mm_off = mult - min_mult`` (usually 0, which SQLite stores in no
bytes), ``ts_off = col - ts``, ``placed_off = placed - ts``, ``settled_off =
settled - col``. While a bet is open, ``settled_off`` holds ``NO_SETTLED``,
a 3-byte integer: settling then writes a 2-byte offset and a 0- or 1-byte
outcome into the same space, the row never grows, and the table's pages,
packed full by appends, never split (that alone is ~11 bytes a bet).
The payout is derived from the outcome
(won: stake*mult//100, void: stake, else 0); ``pay_adj`` keeps whatever a
stored payout would differ from that (0, so no bytes, unless something
wrote a wrong payout, which the audit must still be able to see).

The view ``bets`` shows the logical record with the old column names, so
readers (history, audit, tests, a curious operator in the sqlite3 shell)
see ``id, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed,
outcome, payout, settled, mkt``; INSTEAD OF triggers map writes on the view back.

``mkt`` says which market the bet is on and how its payload named it:
``2 * n + k``, where ``n`` is the market's number in the ``markets`` table
and ``k`` is 1 when the signed payload carried a ``market_id`` key (SPEC 9,
v1.1), 0 for a v1 payload. A v1 bet on market 0 is ``0``: no bytes, and
every bet from before markets existed reads as one.

In archive files the nonce may be a 12-byte blob (its base64url decoding;
see ``pack_nonce``): read it through ``nonce_text``.

    >>> import pysqlite3.dbapi2 as sqlite3
    >>> conn = sqlite3.connect(":memory:")
    >>> conn.executescript(BET_ROWS + BETS_VIEW)
    <pysqlite3.dbapi2.Cursor object at ...>
    >>> _ = conn.execute("INSERT INTO bets(id, user, col, lo, stake, mult, min_mult, ts, nonce,"
    ...                  " sig, placed) VALUES (1, 7, 10000, 500, 200, 250, 240, 4000, 'n0nce',"
    ...                  " x'00', 4010)")
    >>> _ = conn.execute("UPDATE bet_rows SET outcome = 1, settled_off = 3000")
    >>> conn.execute("SELECT payout, settled, min_mult, placed FROM bets").fetchone()
    (500, 13000, 240, 4010)
    >>> conn.execute("SELECT mm_off, ts_off, placed_off FROM bet_rows").fetchone()
    (10, 6000, 10)
    >>> _ = conn.execute("UPDATE bets SET settled = NULL, outcome = 0")
    >>> conn.execute("SELECT settled, payout FROM bets").fetchone(), NO_SETTLED
    ((None, 500), -8388608)
    >>> nonce_text(pack_nonce("AAAAAAAAAAAAAAAA")), pack_nonce("abc")
    ('AAAAAAAAAAAAAAAA', 'abc')
"""
import base64
import binascii

from .._model import VOID, WON, payout_for

__all__ = ["BET_ROWS", "BETS_VIEW", "bets_view_statements", "view_arm", "LOGICAL_COLUMNS", "NO_SETTLED", "derived_payout",
           "pack_nonce", "nonce_text"]

#: ``settled_off`` of an open bet (the view shows NULL): the smallest 3-byte integer
NO_SETTLED = -(1 << 23)

BET_ROWS = """
CREATE TABLE IF NOT EXISTS bet_rows(
    id INTEGER PRIMARY KEY,
    user INTEGER NOT NULL,
    col INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    stake INTEGER NOT NULL,
    mult INTEGER NOT NULL,
    outcome INTEGER NOT NULL DEFAULT 0,
    mm_off INTEGER NOT NULL,
    ts_off INTEGER NOT NULL,
    placed_off INTEGER NOT NULL,
    settled_off INTEGER NOT NULL DEFAULT -8388608,
    pay_adj INTEGER NOT NULL DEFAULT 0,
    nonce NOT NULL,
    sig BLOB NOT NULL,
    mkt INTEGER NOT NULL DEFAULT 0);
"""

_PAYOUT = f"(CASE {{o}} WHEN {WON} THEN {{s}} * {{m}} / 100 WHEN {VOID} THEN {{s}} ELSE 0 END)"

#: the logical record, in the order of the view's columns
LOGICAL_COLUMNS = ("id, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed, outcome,"
                   " payout, settled")

def view_arm(table):
    """The ``bets`` view's SELECT over one table of compact rows."""
    return (f"SELECT id, user, col, lo, stake, mult, mult - mm_off, col - ts_off, nonce, sig,"
            f" col - ts_off + placed_off, outcome,"
            f" {_PAYOUT.format(o='outcome', s='stake', m='mult')} + pay_adj,"
            f" CASE settled_off WHEN {NO_SETTLED} THEN NULL ELSE col + settled_off END, mkt"
            f" FROM {table}")


def bets_view_statements(tables, exists_ok=True):
    """The ``bets`` view over ``tables`` (their rows, UNION ALL) and the
    INSTEAD OF triggers that map writes on it back (an insert goes to the
    first table, an update or delete to whichever holds the id), as
    separate statements (a transaction can run them; ``executescript``
    would commit first)."""
    ine = "IF NOT EXISTS " if exists_ok else ""
    arms = "\n    UNION ALL ".join(view_arm(t) for t in tables)
    updates = "".join(f"""
    UPDATE {t} SET id = NEW.id, user = NEW.user, col = NEW.col, lo = NEW.lo,
        stake = NEW.stake, mult = NEW.mult, outcome = NEW.outcome,
        mm_off = NEW.mult - NEW.min_mult, ts_off = NEW.col - NEW.ts,
        placed_off = NEW.placed - NEW.ts,
        settled_off = coalesce(NEW.settled - NEW.col, {NO_SETTLED}),
        pay_adj = NEW.payout - {_PAYOUT.format(o="NEW.outcome", s="NEW.stake", m="NEW.mult")},
        nonce = NEW.nonce, sig = NEW.sig, mkt = coalesce(NEW.mkt, 0)
    WHERE id = OLD.id;""" for t in tables)
    deletes = "".join(f"\n    DELETE FROM {t} WHERE id = OLD.id;" for t in tables)
    return [f"""
CREATE VIEW {ine}bets(id, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed,
                               outcome, payout, settled, mkt) AS
    {arms}""", f"""
CREATE TRIGGER {ine}bets_insert INSTEAD OF INSERT ON bets BEGIN
    INSERT INTO {tables[0]}(id, user, col, lo, stake, mult, outcome, mm_off, ts_off, placed_off,
                         settled_off, pay_adj, nonce, sig, mkt)
    VALUES (NEW.id, NEW.user, NEW.col, NEW.lo, NEW.stake, NEW.mult, coalesce(NEW.outcome, 0),
            NEW.mult - NEW.min_mult, NEW.col - NEW.ts, NEW.placed - NEW.ts,
            coalesce(NEW.settled - NEW.col, {NO_SETTLED}),
            coalesce(NEW.payout - {_PAYOUT.format(o="NEW.outcome", s="NEW.stake",
                                                  m="NEW.mult")}, 0),
            NEW.nonce, NEW.sig, coalesce(NEW.mkt, 0));
END""", f"""
CREATE TRIGGER {ine}bets_update INSTEAD OF UPDATE ON bets BEGIN{updates}
END""", f"""
CREATE TRIGGER {ine}bets_delete INSTEAD OF DELETE ON bets BEGIN{deletes}
END"""]


#: the view over the one ``bet_rows`` table (archive files; the hot DB adds its day tables)
BETS_VIEW = "".join(st + ";\n" for st in bets_view_statements(["bet_rows"]))


def derived_payout(outcome, stake, mult):
    """What a settled bet pays, as the view derives it."""
    if outcome == WON:
        return payout_for(stake, mult)
    if outcome == VOID:
        return stake
    return 0


def pack_nonce(nonce):
    """The nonce as its 12-byte (etc.) base64url decoding when that spells
    it back exactly, else the text unchanged: 25% fewer bytes in archives."""
    if len(nonce) % 4 == 0:
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return nonce
        if base64.urlsafe_b64encode(raw).decode("ascii") == nonce:
            return raw
    return nonce


def nonce_text(stored):
    """The nonce string from a stored value (text, or a ``pack_nonce`` blob)."""
    if isinstance(stored, str):
        return stored
    return base64.urlsafe_b64encode(bytes(stored)).decode("ascii")
