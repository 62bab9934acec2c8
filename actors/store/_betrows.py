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

__all__ = ["BET_ROWS", "BETS_VIEW", "LOGICAL_COLUMNS", "NO_SETTLED", "derived_payout",
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

BETS_VIEW = f"""
CREATE VIEW IF NOT EXISTS bets(id, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed,
                               outcome, payout, settled, mkt) AS
    SELECT id, user, col, lo, stake, mult, mult - mm_off, col - ts_off, nonce, sig,
           col - ts_off + placed_off, outcome,
           {_PAYOUT.format(o="outcome", s="stake", m="mult")} + pay_adj,
           CASE settled_off WHEN {NO_SETTLED} THEN NULL ELSE col + settled_off END, mkt
    FROM bet_rows;
CREATE TRIGGER IF NOT EXISTS bets_insert INSTEAD OF INSERT ON bets BEGIN
    INSERT INTO bet_rows(id, user, col, lo, stake, mult, outcome, mm_off, ts_off, placed_off,
                         settled_off, pay_adj, nonce, sig, mkt)
    VALUES (NEW.id, NEW.user, NEW.col, NEW.lo, NEW.stake, NEW.mult, coalesce(NEW.outcome, 0),
            NEW.mult - NEW.min_mult, NEW.col - NEW.ts, NEW.placed - NEW.ts,
            coalesce(NEW.settled - NEW.col, {NO_SETTLED}),
            coalesce(NEW.payout - {_PAYOUT.format(o="NEW.outcome", s="NEW.stake",
                                                  m="NEW.mult")}, 0),
            NEW.nonce, NEW.sig, coalesce(NEW.mkt, 0));
END;
CREATE TRIGGER IF NOT EXISTS bets_update INSTEAD OF UPDATE ON bets BEGIN
    UPDATE bet_rows SET id = NEW.id, user = NEW.user, col = NEW.col, lo = NEW.lo,
        stake = NEW.stake, mult = NEW.mult, outcome = NEW.outcome,
        mm_off = NEW.mult - NEW.min_mult, ts_off = NEW.col - NEW.ts,
        placed_off = NEW.placed - NEW.ts,
        settled_off = coalesce(NEW.settled - NEW.col, {NO_SETTLED}),
        pay_adj = NEW.payout - {_PAYOUT.format(o="NEW.outcome", s="NEW.stake", m="NEW.mult")},
        nonce = NEW.nonce, sig = NEW.sig, mkt = coalesce(NEW.mkt, 0)
    WHERE id = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS bets_delete INSTEAD OF DELETE ON bets BEGIN
    DELETE FROM bet_rows WHERE id = OLD.id;
END;
"""


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
