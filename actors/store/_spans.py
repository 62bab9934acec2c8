"""The hot bets, one table per quarter of a UTC day of columns (a *span*),
so that the archiver ends a day with ``DROP TABLE`` instead of deleting its rows.

Deleting a day's bets row by row rewrote about one ``bets_user`` index page
per bet (a day's bets are spread over every user's range of the index);
dropping a table frees its pages reading each once (~3 us a page: a whole
day of 150,000 bets took 6-14 ms of the Writer, too long for taps beside
it; a quarter day, a few ms). So:

- ``bet_rows_<n>`` (``n = col // SPAN_MS``, six hours) holds the bets on
  that span's columns, with its own ``bets_open_<n>`` and ``bets_user_<n>``;
  ``ledger_<n>`` holds their payout and refund rows (the same columns as
  ``ledger``; credits stay in ``ledger``), so a span's money leaves with it.
  A day's archive file takes the day's four spans.
- ``bet_rows`` stays: a database from before spans keeps its bets there
  (its first span, archived row by row as before), with their payouts in
  ``ledger``; the ``bets`` view's inserts land there too.
- Readers see one ``bets`` view (every table, UNION ALL), rebuilt in the
  same transaction as a span is created or dropped (never when the archiver
  takes one: ``Spans.retire`` empties it, see ``Spans``), and the ledger as the
  ``ledger_all`` view (every ledger table, UNION ALL): the audit reads that.

- A span is also cut by size: once the newest table of a quarter day holds
  ``span_max_bets`` bets (Config), the next bets of that quarter go to a new
  one, ``bet_rows_<n * 1000 + k>`` (k = 1, 2, ...; numbers past ``SUB_BASE``
  are such *sub-spans*), so a drop frees a few thousand pages at most. The
  first four of a quarter are ``span_max_bets`` each, then each twice the
  one before, the fifteenth unbounded: a busy quarter (65 M bets at 3,000
  taps/s) takes 14 tables, seven days ~400, under SQLite's 500 arms of a
  UNION ALL (the views); at that rate a drop is long whatever the cut. And
  past ``MAX_SPANS`` tables in all (a long ``hot_days``) nothing more is
  cut: the views must stay under that limit.
  Sub-spans never mix quarters, so a day's file still takes its spans.

The Store (the one writer) creates a span with the first bet on its day;
the archiver asks the Store to take it (``DROP_SPAN``) once its file holds
every one of its bets, and the Store checks that inside the transaction and
empties it (``Spans``: the empty tables are dropped later, with the next
schema change).

    >>> import pysqlite3.dbapi2 as sqlite3
    >>> from actors.store._schema import SCHEMA
    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> conn.executescript(SCHEMA) and None
    >>> create_span(conn, 80000)
    >>> bet_tables(conn), ledger_tables(conn)
    (['bet_rows', 'bet_rows_80000'], ['ledger', 'ledger_80000'])
    >>> span_of(80000 * SPAN_MS + 5), table_of(conn, 80000 * SPAN_MS), table_of(conn, 0)
    (80000, 'bet_rows_80000', 'bet_rows')
"""
__all__ = ["SPAN_MS", "DROP_SPAN", "SpanChanged", "span_of", "span_table", "span_ledger",
           "open_index", "span_days", "bet_tables", "ledger_tables", "ledger_for", "table_of",
           "tables_of", "create_span", "rebuild_view", "ledger_union", "quarter_of",
           "next_span", "span_limit", "SUB_BASE", "MAX_SPANS", "Spans", "RETIRED_PER_CREATE"]

from ._betrows import BET_ROWS, bets_view_statements

SPAN_MS = 21_600_000
#: the archiver's request to drop a span, as a Writer statement ``(DROP_SPAN,
#: (day, n, ledger_max))``: the Store runs ``Spans.retire`` in the transaction
DROP_SPAN = "tapgrid:drop_span"

_PREFIX = "bet_rows_"
SUB_BASE = 10_000_000       # span numbers from here are sub-spans (quarter * _SUB + k)
_SUB = 1000
_SUB_MAX = 14               # the last sub-span of a quarter, never cut
MAX_SPANS = 400             # no cut past this many spans (SQLite: 500 arms to a UNION ALL)


class SpanChanged(RuntimeError):
    """The span is not what its archive file holds (a bet still open, or a
    count or ledger row that differs): nothing is dropped."""


def span_of(col):
    """The span (day number) of a bet on column ``col``, None for a column
    before 1970 (such a bet stays in ``bet_rows``)."""
    return col // SPAN_MS if col >= 0 else None


def quarter_of(span):
    """The quarter day (``span_of`` number) span ``span`` holds bets of."""
    return span if span < SUB_BASE else span // _SUB


def _sub(span):
    return 0 if span < SUB_BASE else span % _SUB


def _cut_order(span):
    """Sort key: oldest quarter first, a quarter's spans in the order they were cut."""
    return quarter_of(span), _sub(span)


def next_span(span):
    """The span after ``span`` in its quarter (the size cut)."""
    return quarter_of(span) * _SUB + _sub(span) + 1


def span_limit(span, max_bets):
    """How many bets span ``span`` takes before the next is cut (None: no
    limit): ``max_bets`` for the first four of a quarter, then doubling."""
    k = _sub(span)
    if not max_bets or k >= _SUB_MAX:
        return None
    return max_bets if k < 4 else max_bets << (k - 3)


def span_table(day):
    return f"{_PREFIX}{int(day)}"


def span_ledger(day):
    return f"ledger_{int(day)}"


def open_index(table):
    """The open-bets index of a bet table (the Resolver's ``INDEXED BY``)."""
    return "bets_open" if table == "bet_rows" else "bets_open_" + table[len(_PREFIX):]


def ledger_for(table):
    """The ledger table holding the payouts and refunds of ``table``'s bets."""
    return "ledger" if table == "bet_rows" else "ledger_" + table[len(_PREFIX):]


def span_days(conn, schema="main"):
    """The spans that exist (their numbers), oldest first (a quarter's
    sub-spans after its first, in the order they were cut)."""
    return sorted((int(name[len(_PREFIX):]) for (name,) in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"
        f" AND name GLOB '{_PREFIX}[0-9]*'")), key=_cut_order)


def bet_tables(conn, schema="main"):
    """Every table holding hot bets: ``bet_rows`` first, then the spans by day."""
    return ["bet_rows"] + [span_table(d) for d in span_days(conn, schema)]


def ledger_tables(conn):
    return ["ledger"] + [span_ledger(d) for d in span_days(conn)]


def table_of(conn, col, days=None):
    """The table a bet on ``col`` would go to now: its quarter's newest span
    if one exists."""
    return tables_of(conn, col, days)[-1]


def tables_of(conn, col, days=None):
    """The tables a bet on ``col`` can be in: its quarter's spans (oldest
    first), or ``bet_rows`` when it has none."""
    q = span_of(col)
    days = span_days(conn) if days is None else days
    return [span_table(d) for d in days if q is not None and quarter_of(d) == q] or ["bet_rows"]


def ledger_union(conn):
    """Every ledger row (``ledger`` and the spans'), as a FROM-clause source:
    ``ledger_all`` where it exists (a database from before spans opened
    read-only may lack it)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_all'").fetchone():
        return "ledger_all"
    return "ledger"


def rebuild_view(conn):
    """Recreate ``bets`` over the tables that exist now (inside the caller's
    transaction: readers see the old view or the new, never a half)."""
    for trigger in ("bets_insert", "bets_update", "bets_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("DROP VIEW IF EXISTS bets")
    for stmt in bets_view_statements(bet_tables(conn), exists_ok=False):
        conn.execute(stmt)
    conn.execute("DROP VIEW IF EXISTS ledger_all")
    conn.execute("CREATE VIEW ledger_all(id, user, kind, amount, bet, ts) AS " + " UNION ALL ".join(
        f"SELECT id, user, kind, amount, bet, ts FROM {t}" for t in ledger_tables(conn)))


def create_span(conn, day):
    """The tables of span ``day`` and the view over them (caller's transaction)."""
    t = span_table(day)
    conn.execute(BET_ROWS.replace("bet_rows(", f"{t}(", 1))
    conn.execute(f"CREATE INDEX IF NOT EXISTS bets_open_{int(day)} ON {t}(col, lo, user, stake,"
                 " mult, mkt) WHERE outcome = 0")
    conn.execute(f"CREATE INDEX IF NOT EXISTS bets_user_{int(day)} ON {t}(user, id)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {span_ledger(day)}(id INTEGER PRIMARY KEY,"
                 " user INTEGER NOT NULL, kind INTEGER NOT NULL, amount INTEGER NOT NULL,"
                 " bet INTEGER, ts INTEGER NOT NULL)")
    rebuild_view(conn)


def _check_whole(conn, day, n, ledger_max):
    """Raise ``SpanChanged`` unless span ``day`` holds exactly ``n`` bets,
    none open, and its ledger's last row id is still ``ledger_max`` (ledger
    rows are only ever appended, by settling an open bet). One statement:
    each statement of the Writer's is a GIL hand-back, up to a switch
    interval (5 ms) each when the event loop is busy."""
    t, lt = span_table(day), span_ledger(day)
    open_n, have, lmax = conn.execute(
        f"SELECT (SELECT count(*) FROM {t} INDEXED BY {open_index(t)} WHERE outcome = 0),"
        f" (SELECT count(*) FROM {t}), (SELECT max(id) FROM {lt})").fetchone()
    if open_n or have != n or lmax != ledger_max:
        raise SpanChanged(f"{t}: {have} bets ({open_n} open), ledger up to {lmax};"
                          f" the archive holds {n}, ledger up to {ledger_max}")


def _is_empty(conn, day):
    return conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {span_table(day)}) AND NOT EXISTS"
                        f" (SELECT 1 FROM {span_ledger(day)})").fetchone()[0] == 1


class Spans:
    """The Store's bookkeeping of its spans: which exist, each quarter's in
    the order they were cut, how full the newest is, and which the archiver
    emptied (*retired*).

    Archiving a span never changes the schema: ``retire`` empties its two
    tables with ``DELETE`` and no ``WHERE`` (SQLite's truncate: the pages
    are freed as by ``DROP TABLE``), so the views and every connection's
    prepared statements stay as they are. (A ``DROP TABLE`` and the views
    rebuilt after it took 21-98 ms of the Writer in the server against 7-8
    offline: ~25 statements, each a GIL hand-back, and the schema cookie
    bumped, so every statement of every connection re-prepared.) The empty
    tables are dropped at the next schema change the Store makes anyway,
    when a span is created (``RETIRED_PER_CREATE`` of them, in its
    transaction: one views rebuild for both), when the Store opens, and
    at the end of an offline archive (``drop_retired``)."""

    def __init__(self, conn, max_bets, max_spans=MAX_SPANS):
        self.max_bets, self.max_spans = max_bets, max_spans
        self.reload(conn)

    def reload(self, conn):
        """From the database (at open, and after a rolled back transaction:
        a span made, emptied or dropped in it is undone)."""
        self.days = set(span_days(conn))
        self.quarters = {}
        for d in sorted(self.days, key=_cut_order):
            self.quarters.setdefault(quarter_of(d), []).append(d)
        self.fill = {}
        self.retired = {d for d in self.days if _is_empty(conn, d)}

    def span_for(self, conn, q):
        """The span the next bet of quarter ``q`` goes to: its newest, or a
        new one (created in this transaction) when that one is full."""
        spans = self.quarters.get(q)
        if not spans:
            self._create(conn, q)
            return q
        cur = spans[-1]
        if cur not in self.fill:
            self.fill[cur] = conn.execute(f"SELECT count(*) FROM {span_table(cur)}").fetchone()[0]
        limit = span_limit(cur, self.max_bets)
        if limit is not None and self.fill[cur] >= limit and len(self.days) < self.max_spans:
            cur = next_span(cur)
            self._create(conn, cur)
        return cur

    def _create(self, conn, day):
        self.drop_retired(conn, RETIRED_PER_CREATE, rebuild=False)
        create_span(conn, day)
        self.days.add(day)
        self.quarters.setdefault(quarter_of(day), []).append(day)
        self.retired.discard(day)
        self.fill[day] = 0

    def retire(self, conn, day, n, ledger_max):
        """The archiver's ``DROP_SPAN`` (caller's transaction): span ``day``
        emptied if it is exactly what its file holds, else ``SpanChanged``."""
        if day not in self.days:
            raise SpanChanged(f"{span_table(day)} does not exist")
        _check_whole(conn, day, n, ledger_max)
        conn.execute(f"DELETE FROM {span_table(day)}")      # no WHERE: the truncate
        conn.execute(f"DELETE FROM {span_ledger(day)}")
        self.retired.add(day)
        self.fill.pop(day, None)

    def drop_retired(self, conn, limit=None, rebuild=True):
        """Drop up to ``limit`` retired spans, oldest first, each checked
        empty in the caller's transaction (a span that took a bet since is
        kept, no longer retired); the views rebuilt after when ``rebuild``.
        Returns how many were dropped."""
        dropped = 0
        for day in sorted(self.retired, key=_cut_order)[:limit]:
            self.retired.discard(day)
            if not _is_empty(conn, day):
                continue
            conn.execute(f"DROP TABLE {span_table(day)}")
            conn.execute(f"DROP TABLE {span_ledger(day)}")
            self.days.discard(day)
            left = [d for d in self.quarters.get(quarter_of(day), ()) if d != day]
            if left:
                self.quarters[quarter_of(day)] = left
            else:
                self.quarters.pop(quarter_of(day), None)
            self.fill.pop(day, None)
            dropped += 1
        if dropped and rebuild:
            rebuild_view(conn)
        return dropped


#: retired spans dropped in a span creation's transaction: more than one,
#: so a backlog (a long archive run) drains; few, so that transaction stays short
RETIRED_PER_CREATE = 4
