"""Settlement, set-based (the Store's part of a Writer batch): the batch's
settlements go into a temp table, and a handful of statements apply them
all, per table the bets can be in. A bet settles once: only the first
settlement of a bet in the batch, and only while it is still open."""
from ._schema import KIND_PAYOUT, KIND_REFUND
from ._spans import ledger_for, span_of, span_table
from .._model import VOID, WON

__all__ = ["SETTLE_TEMP", "settle"]

# ``tbl``: the table's place in the batch's list of tables
SETTLE_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS settle_in(
    seq INTEGER PRIMARY KEY, bet INTEGER NOT NULL, user INTEGER NOT NULL,
    outcome INTEGER NOT NULL, payout INTEGER NOT NULL, applied INTEGER NOT NULL DEFAULT 0,
    tbl INTEGER);
CREATE INDEX IF NOT EXISTS temp.settle_in_bet ON settle_in(bet, seq);
"""
_SETTLE_FIND = ("UPDATE settle_in SET applied = 1, tbl = ?1 WHERE applied = 0"
                " AND seq IN (SELECT min(seq) FROM settle_in GROUP BY bet)"
                " AND bet IN (SELECT id FROM {t} WHERE outcome = 0"
                " AND id IN (SELECT bet FROM settle_in WHERE applied = 0))")
_SETTLE_STEPS = (
    # pay_adj is 0 (no bytes) whenever the payout is the derived one
    f"UPDATE {{t}} SET outcome = s.outcome, pay_adj = s.payout - (CASE s.outcome"
    f" WHEN {WON} THEN {{t}}.stake * {{t}}.mult / 100 WHEN {VOID} THEN {{t}}.stake"
    f" ELSE 0 END), settled_off = ?2 - {{t}}.col"
    f" FROM settle_in AS s WHERE s.applied = 1 AND s.tbl = ?1 AND {{t}}.id = s.bet",
    f"INSERT INTO {{lt}}(user, kind, amount, bet, ts) SELECT user, CASE outcome WHEN {WON}"
    f" THEN {KIND_PAYOUT} ELSE {KIND_REFUND} END, payout, bet, ?2 FROM settle_in"
    f" WHERE applied = 1 AND tbl = ?1 AND payout != 0 ORDER BY seq",
)
_CREDIT_PAYOUTS = ("UPDATE users SET balance = balance + d.total FROM (SELECT user, sum(payout)"
                   " AS total FROM settle_in WHERE applied = 1 AND payout != 0 GROUP BY user)"
                   " AS d WHERE users.id = d.user")


def settle(conn, spans, settlements, now):
    """Apply ``settlements`` (caller's transaction) to the bets in the
    tables of ``spans`` (``_spans.Spans``); which applied, in order."""
    conn.executemany("INSERT INTO settle_in(seq, bet, user, outcome, payout) VALUES (?,?,?,?,?)",
                     [(i, s.bet, s.user, s.outcome, s.payout)
                      for i, s in enumerate(settlements)])
    # where the bets are: their columns' spans, and ``bet_rows`` (bets from
    # before spans, or written through the view); any still not found
    # (a settlement that names another column) are looked for in every span
    tables = ["bet_rows"] + [span_table(d) for q in sorted({span_of(s.col) for s in settlements}
                                                           - {None})
                             for d in reversed(spans.quarters.get(q, ()))]
    try:
        for k, t in enumerate(tables):
            conn.execute(_SETTLE_FIND.format(t=t), (k,))
        if conn.execute("SELECT 1 FROM settle_in WHERE applied = 0 LIMIT 1").fetchone():
            for t in [span_table(d) for d in sorted(spans.days)]:
                if t not in tables:
                    tables.append(t)
                    conn.execute(_SETTLE_FIND.format(t=t), (len(tables) - 1,))
        for k, t in enumerate(tables):
            for sql in _SETTLE_STEPS:
                conn.execute(sql.format(t=t, lt=ledger_for(t)), (k, now))
        conn.execute(_CREDIT_PAYOUTS)
        applied = [False] * len(settlements)
        for (seq,) in conn.execute("SELECT seq FROM settle_in WHERE applied = 1"):
            applied[seq] = True
    finally:
        conn.execute("DELETE FROM settle_in")
    return applied
