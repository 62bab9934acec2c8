"""``tapgrid audit``: prove the money invariants of SPEC section 3 on a
database file, with SQL aggregates so it scales to millions of bets.

Checks run in root-cause order and each problem starts with its check's
name, so the first line names the first broken invariant and not one of its
echoes (a second payout row also breaks the balance sum; the report leads
with ``settlement:``):

1. ``integrity:``   ``PRAGMA integrity_check`` is ok (else nothing else is trusted);
2. ``bet-state:``   every bet in exactly one valid state (open/won/lost/void)
                    with payout and settled time consistent with it;
3. ``ledger-ref:``  every ledger row has a known kind and an existing user,
                    payouts/refunds an existing bet of that user, credits none;
4. ``settlement:``  no settlement twice: at most one payout/refund row per
                    bet, of the kind and amount its outcome says, none for a
                    lost or open bet, none missing for a won or void bet;
5. ``balance:``     each user's balance = credits - stakes + payouts + refunds,
                    and the grand totals agree; bets moved to archive files
                    count through the hot DB's per-user ``archived`` totals,
                    so this holds even for files shipped off the machine;
6. ``negative:``    no negative balance;
7. ``archive:``     each archive file on this machine is sound, holds the
                    count and checksum recorded for it, every bet in it is
                    in a valid state, and per user it holds exactly the bets,
                    stakes, payouts and refunds the hot DB's totals say left.

Everything in the hot DB is read in one snapshot, so a running Writer
cannot cause a false alarm (archive files never change once recorded).

    >>> import tempfile, os
    >>> from actors.store import Store
    >>> path = os.path.join(tempfile.mkdtemp(), "t.db")
    >>> store = Store(path); _ = store.ensure_user("alice", credit=1000); store.close()
    >>> audit(path)
    []
"""
import pysqlite3.dbapi2 as sqlite3

from ..archive import (COPIED, REMOVED, SHIPPED, STATE_NAMES, Checksum, archive_dir_of,
                             local_path, open_file)
from .._model import LOST, OPEN, VOID, WON
from ._spans import ledger_union
from ._store import KIND_CREDIT, KIND_PAYOUT, KIND_REFUND, open_readonly

__all__ = ["audit", "bet_sources", "CHECKS"]

CHECKS = ("integrity", "bet-state", "ledger-ref", "settlement", "balance", "negative", "archive")
_NAMES = {OPEN: "open", WON: "won", LOST: "lost", VOID: "void"}


def bet_sources(conn):
    """Yield every schema-qualified table holding bets to check in SQL.

    Only the hot DB's ``main.bets``: archive files are many (ATTACH allows
    10) and may have left the machine, so their bets enter the sums through
    the ``archived`` totals and each local file is checked on its own
    (``_archives``). A bet is in exactly one place at every commit: its
    delete from the hot DB and its totals are one transaction."""
    yield "main.bets"


def audit(db_path, max_per_check=10, archives=True) -> list:
    """Human-readable problems, empty when every invariant holds. At most
    ``max_per_check`` lines per kind of problem, so a badly broken file still
    gives a short report. ``archives=False`` skips reading the archive files
    (their totals still count in the balances)."""
    try:
        conn = open_readonly(db_path)
    except sqlite3.Error as e:
        return [f"integrity: cannot open {db_path}: {e}"]
    try:
        conn.execute("BEGIN")   # one snapshot for every check
        try:
            problems = _audit(conn, max_per_check)
            if archives and not (problems and problems[0].startswith("integrity:")):
                problems += _archives(conn, db_path, max_per_check)
            return problems
        finally:
            conn.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        # A corrupt page can surface as an error in any query.
        return [f"integrity: database error: {e}"]
    finally:
        conn.close()


def _audit(conn, n):
    rows = conn.execute("PRAGMA integrity_check").fetchmany(n)
    if [r[0] for r in rows] != ["ok"]:
        # Counts and sums over a damaged file mean nothing: stop here.
        return [f"integrity: {r[0]}" for r in rows]
    sources = list(bet_sources(conn))
    problems = []
    for check in (_bet_state, _ledger_refs, _settlements, _balances, _negative):
        problems += check(conn, sources, n)
    return problems


def _bet_state(conn, sources, n):
    # One scan per source; CASE yields the first reason a row is wrong.
    out = []
    for src in sources:
        rows = conn.execute(f"""
            SELECT id, outcome, stake, mult, payout, settled, CASE
              WHEN outcome NOT IN ({OPEN},{WON},{LOST},{VOID}) THEN 'invalid outcome'
              WHEN stake <= 0 THEN 'stake not positive'
              WHEN outcome = {OPEN} AND (payout != 0 OR settled IS NOT NULL)
                THEN 'open but has payout or settled time'
              WHEN outcome != {OPEN} AND settled IS NULL THEN 'settled without settled time'
              WHEN outcome = {WON} AND payout != stake * mult / 100
                THEN 'won payout != stake*mult//100'
              WHEN outcome = {LOST} AND payout != 0 THEN 'lost with a payout'
              WHEN outcome = {VOID} AND payout != stake THEN 'void payout != stake'
            END AS why
            FROM {src} WHERE why IS NOT NULL ORDER BY id LIMIT ?""", (n,))
        for bet, outcome, stake, mult, payout, settled, why in rows:
            out.append(f"bet-state: bet {bet} in {src}: {why} (outcome={outcome} stake={stake}"
                       f" mult={mult} payout={payout} settled={settled})")
    return out[:n]


def _bet_missing(sources, col="l.bet"):
    # One primary-key probe per source: cheap even for millions of rows.
    return " AND ".join(f"NOT EXISTS (SELECT 1 FROM {s} b WHERE b.id = {col})" for s in sources)


def _ledger_refs(conn, sources, n):
    L = ledger_union(conn)
    out = []
    rows = conn.execute(f"""
        SELECT id, user, kind, amount, bet FROM {L}
        WHERE kind NOT IN ({KIND_CREDIT},{KIND_PAYOUT},{KIND_REFUND})
        ORDER BY id LIMIT ?""", (n,))
    out += [f"ledger-ref: ledger row {i} has unknown kind {k} (user={u} amount={a} bet={b})"
            for i, u, k, a, b in rows]
    rows = conn.execute(f"""
        SELECT l.id, l.user, l.kind, l.amount FROM {L} l
        WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.user)
        ORDER BY l.id LIMIT ?""", (n,))
    out += [f"ledger-ref: ledger row {i} (kind {k}, amount {a}) references missing user {u}"
            for i, u, k, a in rows]
    rows = conn.execute(f"""
        SELECT id, user, bet FROM {L} WHERE kind = {KIND_CREDIT} AND bet IS NOT NULL
        ORDER BY id LIMIT ?""", (n,))
    out += [f"ledger-ref: credit row {i} of user {u} references bet {b}" for i, u, b in rows]
    rows = conn.execute(f"""
        SELECT l.id, l.kind, l.bet FROM {L} l
        WHERE l.kind IN ({KIND_PAYOUT},{KIND_REFUND})
          AND (l.bet IS NULL OR ({_bet_missing(sources)}))
        ORDER BY l.id LIMIT ?""", (n,))
    out += [f"ledger-ref: {_kind(k)} row {i} references missing bet {b}" for i, k, b in rows]
    for src in sources:
        rows = conn.execute(f"""
            SELECT l.id, l.kind, l.bet, l.user, b.user FROM {L} l JOIN {src} b ON b.id = l.bet
            WHERE l.kind IN ({KIND_PAYOUT},{KIND_REFUND}) AND l.user != b.user
            ORDER BY l.id LIMIT ?""", (n,))
        out += [f"ledger-ref: {_kind(k)} row {i} for bet {b} goes to user {lu},"
                f" the bet is user {bu}'s" for i, k, b, lu, bu in rows]
        rows = conn.execute(f"""
            SELECT b.id, b.user FROM {src} b
            WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = b.user)
            ORDER BY b.id LIMIT ?""", (n,))
        out += [f"ledger-ref: bet {b} in {src} references missing user {u}" for b, u in rows]
    return out[:n]


def _kind(k):
    return {KIND_CREDIT: "credit", KIND_PAYOUT: "payout", KIND_REFUND: "refund"}.get(k, f"kind-{k}")


def _settlements(conn, sources, n):
    L = ledger_union(conn)
    out = []
    rows = conn.execute(f"""
        SELECT bet, count(*), group_concat(id) FROM {L}
        WHERE kind IN ({KIND_PAYOUT},{KIND_REFUND}) AND bet IS NOT NULL
        GROUP BY bet HAVING count(*) > 1 ORDER BY bet LIMIT ?""", (n,))
    out += [f"settlement: bet {b} settled {c} times (ledger rows {ids})" for b, c, ids in rows]
    # From the ledger side: each payout/refund row must match its bet.
    for src in sources:
        rows = conn.execute(f"""
            SELECT l.id, l.kind, l.amount, b.id, b.outcome, b.payout
            FROM {L} l JOIN {src} b ON b.id = l.bet
            WHERE l.kind IN ({KIND_PAYOUT},{KIND_REFUND}) AND NOT (
                (l.kind = {KIND_PAYOUT} AND b.outcome = {WON} OR
                 l.kind = {KIND_REFUND} AND b.outcome = {VOID})
                AND l.amount = b.payout AND b.payout != 0)
            ORDER BY l.id LIMIT ?""", (n,))
        for lid, kind, amount, bet, outcome, payout in rows:
            state = _NAMES.get(outcome, f"outcome {outcome}")
            out.append(f"settlement: {_kind(kind)} row {lid} of {amount} on {state} bet {bet}"
                       f" (bet payout {payout})")
    # From the bet side: a won/void bet with a payout needs its row. Given the
    # checks above, comparing counts is enough; look for which only if needed.
    rows_needed = sum(conn.execute(
        f"SELECT count(*) FROM {s} WHERE outcome IN ({WON},{VOID}) AND payout != 0").fetchone()[0]
        for s in sources)
    rows_there = conn.execute(f"""
        SELECT count(DISTINCT bet) FROM {L}
        WHERE kind IN ({KIND_PAYOUT},{KIND_REFUND}) AND bet IS NOT NULL""").fetchone()[0]
    if rows_needed != rows_there or out:
        for src in sources:
            # The ledger has no index on bet: materialise its bet ids once
            # (SQLite indexes the subquery automatically) instead of scanning per bet.
            rows = conn.execute(f"""
                SELECT b.id, b.outcome, b.payout FROM {src} b
                LEFT JOIN (SELECT DISTINCT bet FROM {L}
                           WHERE kind IN ({KIND_PAYOUT},{KIND_REFUND}) AND bet IS NOT NULL) s
                  ON s.bet = b.id
                WHERE b.outcome IN ({WON},{VOID}) AND b.payout != 0 AND s.bet IS NULL
                ORDER BY b.id LIMIT ?""", (n,))
            out += [f"settlement: {_NAMES[o]} bet {b} has no {'payout' if o == WON else 'refund'}"
                    f" row (payout {p})" for b, o, p in rows]
    return out[:n]


def _stakes_sql(sources):
    # NOT INDEXED: a sequential scan and a sort beat walking bets_user with a
    # random table read per bet once the file is larger than the page cache.
    # (``bets`` is a view: ``+user`` does for it what NOT INDEXED did.)
    return " UNION ALL ".join(f"SELECT user, sum(stake) AS s FROM {s} GROUP BY +user"
                              for s in sources)


def _has_archive_tables(conn):
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                        " AND name IN ('archived', 'archive_files')").fetchone()[0] == 2


def _balances(conn, sources, n):
    L = ledger_union(conn)
    out = []
    # Bets and ledger rows moved to archive files count through their totals.
    arch_st = arch_lg = arch_tot = ""
    if _has_archive_tables(conn):
        arch_st = " UNION ALL SELECT user, sum(stakes) FROM archived GROUP BY user"
        arch_lg = """ UNION ALL SELECT user, 0, sum(payouts), sum(refunds) FROM archived
                      GROUP BY user"""
        arch_tot = """ UNION ALL SELECT 0, sum(payouts), sum(refunds) FROM archived"""
    rows = conn.execute(f"""
        WITH st(user, stakes) AS (SELECT user, sum(s) FROM ({_stakes_sql(sources)}{arch_st})
                                  GROUP BY user),
             lg(user, credits, payouts, refunds) AS (
                 SELECT user, sum(c), sum(p), sum(r) FROM (
                   SELECT user, sum(CASE kind WHEN {KIND_CREDIT} THEN amount ELSE 0 END) AS c,
                                sum(CASE kind WHEN {KIND_PAYOUT} THEN amount ELSE 0 END) AS p,
                                sum(CASE kind WHEN {KIND_REFUND} THEN amount ELSE 0 END) AS r
                   FROM {L} GROUP BY user{arch_lg}) GROUP BY user)
        SELECT * FROM (
            SELECT u.id, u.name, u.balance, coalesce(lg.credits, 0) AS c,
                   coalesce(st.stakes, 0) AS s, coalesce(lg.payouts, 0) AS p,
                   coalesce(lg.refunds, 0) AS r
            FROM users u LEFT JOIN st ON st.user = u.id LEFT JOIN lg ON lg.user = u.id)
        WHERE balance != c - s + p + r ORDER BY id LIMIT ?""", (n,))
    for uid, name, bal, c, s, p, r in rows:
        out.append(f"balance: user {uid} ({name}) balance {bal} != {c - s + p + r} ="
                   f" credits {c} - stakes {s} + payouts {p} + refunds {r}")
    total_bal = conn.execute("SELECT coalesce(sum(balance), 0) FROM users").fetchone()[0]
    total_stakes = sum(conn.execute(f"SELECT coalesce(sum(stake), 0) FROM {s}").fetchone()[0]
                       for s in sources)
    if arch_st:
        total_stakes += conn.execute("SELECT coalesce(sum(stakes), 0) FROM archived").fetchone()[0]
    c, p, r = conn.execute(f"""
        SELECT coalesce(sum(c), 0), coalesce(sum(p), 0), coalesce(sum(r), 0) FROM (
          SELECT sum(CASE kind WHEN {KIND_CREDIT} THEN amount END) AS c,
                 sum(CASE kind WHEN {KIND_PAYOUT} THEN amount END) AS p,
                 sum(CASE kind WHEN {KIND_REFUND} THEN amount END) AS r
          FROM {L}{arch_tot})""").fetchone()
    if total_bal != c - total_stakes + p + r:
        out.append(f"balance: sum of balances {total_bal} != {c - total_stakes + p + r} ="
                   f" credits {c} - stakes {total_stakes} + payouts {p} + refunds {r}")
    return out


def _negative(conn, sources, n):
    rows = conn.execute("SELECT id, name, balance FROM users WHERE balance < 0"
                        " ORDER BY id LIMIT ?", (n,))
    return [f"negative: user {uid} ({name}) has balance {bal}" for uid, name, bal in rows]


def _archives(conn, db_path, n):
    """Check 7: each local archive file against what the hot DB recorded."""
    if not _has_archive_tables(conn):
        return []
    row = conn.execute("SELECT value FROM meta WHERE key = 'archive_dir'").fetchone()
    adir = row[0] if row and row[0] else archive_dir_of(None, db_path)
    out = []
    files = conn.execute("SELECT id, name, state, n, checksum FROM archive_files WHERE state < ?"
                         " ORDER BY id", (REMOVED,)).fetchall()
    for fid, name, state, count, checksum in files:
        if local_path(adir, name) is None:
            if state < SHIPPED:   # a shipped copy may be gone by hand: not a fault
                out.append(f"archive: {name} ({STATE_NAMES[state]}) is missing from {adir}")
            continue
        try:
            fconn = open_file(adir, name)
        except Exception as e:
            out.append(f"archive: {name} cannot be read: {e}")
            continue
        try:
            out += _archive_file(conn, fconn, fid, name, state, count, checksum, n)
        except sqlite3.DatabaseError as e:
            out.append(f"archive: {name}: database error: {e}")
        finally:
            fconn.close()
        if len(out) >= n:
            break
    return out[:n]


def _archive_file(conn, fconn, fid, name, state, count, checksum, n):
    rows = fconn.execute("PRAGMA quick_check").fetchmany(n)
    if [r[0] for r in rows] != ["ok"]:
        return [f"archive: {name}: {r[0]}" for r in rows]
    ck = Checksum.like(checksum)     # version 2 covers the market too
    for r in fconn.execute(f"SELECT {ck.columns} FROM bets ORDER BY id"):
        ck.add(r)
    out = []
    if (ck.n, ck.hexdigest()) != (count, checksum):
        out.append(f"archive: {name} holds {ck.n} bets, checksum {ck.hexdigest()};"
                   f" recorded {count}, {checksum}")
    out += [p.replace(" in main.bets", f" in {name}") for p in _bet_state(fconn, ["main.bets"], n)]
    if state == COPIED:
        return out      # its bets are still leaving the hot DB: totals are partial
    in_file = {u: (c, s, p, r) for u, c, s, p, r in fconn.execute(f"""
        SELECT user, count(*), sum(stake), sum(CASE outcome WHEN {WON} THEN payout ELSE 0 END),
               sum(CASE outcome WHEN {VOID} THEN payout ELSE 0 END) FROM bets GROUP BY user""")}
    moved = {u: (c, s, p, r) for u, c, s, p, r in conn.execute(
        "SELECT user, n, stakes, payouts, refunds FROM archived WHERE file = ?", (fid,))}
    for user in sorted(set(in_file) | set(moved)):
        have = in_file.get(user, (0, 0, 0, 0))
        want = moved.get(user, (0, 0, 0, 0))
        if have != want:
            out.append(f"archive: {name}: user {user} has (bets, stakes, payouts, refunds)"
                       f" {have} in the file, {want} moved out of the hot DB")
    return out
