"""The price record: the ticks that settled each window, kept and archived.

In the hot DB, ``ticks(ts, price, src)`` holds every price that entered the
market (the median, and in ``src`` its sources: ``actors._sources``)
and ``stale_spans(start, end)`` every period the price was stale. The
archiver copies the record of each part's days into the part's archive file
(the same two tables), then prunes ticks from the hot DB once no hot bet
needs them, in small chunks through the Writer. ``window_of`` reads the
record of one window back (hot DB or archive file alike) for the Resolver's
rule (``actors._resolver.window_path``), which is what ``tapgrid verify`` runs.

    >>> import pysqlite3.dbapi2 as sqlite3
    >>> conn = sqlite3.connect(":memory:"); conn.executescript(RECORD_SCHEMA) and None
    >>> _ = conn.executemany("INSERT INTO ticks VALUES (?,?,?)", [(900, 100, None), (1100, 105, None)])
    >>> window_of(conn, 1000, 2000)
    ([(900, 100, None), (1100, 105, None)], [])
"""
__all__ = ["RECORD_SCHEMA", "PAD_MS", "copy_record_steps", "prune_record_steps", "window_of",
           "record_tables", "record_schema", "DEFAULT_ASSET"]

#: the record kept on each side of a part's bets (the price prevailing at a
#: window's start may be this old and still matter; anything older is stale)
PAD_MS = 60_000
COPY_ROWS = 1000            # ticks copied per step (~1 ms of Python)
PRUNE_ROWS = 2000           # ticks deleted per Writer transaction
SYNC_STEPS = 16             # copy steps between fsyncs of the file being built

RECORD_SCHEMA = """
CREATE TABLE IF NOT EXISTS ticks(ts INTEGER PRIMARY KEY, price INTEGER NOT NULL, src TEXT)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale_spans(start INTEGER PRIMARY KEY, end INTEGER) WITHOUT ROWID;
"""

#: the asset whose record is the plain ``ticks``/``stale_spans`` (the only
#: one before several markets, so old databases and archive files read on)
DEFAULT_ASSET = "BTC-USD"


def record_tables(asset=DEFAULT_ASSET):
    """(ticks table, stale-spans table) of an asset's price record.

    >>> record_tables(), record_tables("ETH-USD")
    (('ticks', 'stale_spans'), ('ticks_eth_usd', 'stale_spans_eth_usd'))
    """
    if asset in (None, DEFAULT_ASSET):
        return "ticks", "stale_spans"
    slug = asset.lower().replace("-", "_")
    if not slug.replace("_", "").isalnum():
        raise ValueError(f"bad asset {asset!r}")
    return f"ticks_{slug}", f"stale_spans_{slug}"


def record_schema(asset=DEFAULT_ASSET):
    """``RECORD_SCHEMA`` for ``asset``'s tables."""
    ticks, spans = record_tables(asset)
    return RECORD_SCHEMA.replace("EXISTS ticks(", f"EXISTS {ticks}(").replace(
        "EXISTS stale_spans(", f"EXISTS {spans}(")


def _record_pairs(conn):
    """(ticks table, stale-spans table) of every asset recorded in ``conn``."""
    names = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ticks%'")}
    pairs = [("ticks", "stale_spans")] if "ticks" in names else []
    pairs += [(t, "stale_spans" + t[5:]) for t in sorted(names) if t.startswith("ticks_")]
    return pairs


def copy_record_steps(ro, fconn, start_ms, end_ms, sync):
    """Copy the record of ``[start_ms - PAD_MS, end_ms + PAD_MS)`` from the
    hot DB (``ro``) into an archive file being built (``fconn``, inside a
    transaction), every asset's into its own tables; ``sync()`` commits and
    fsyncs it now and then. A generator yielding ``("pause",)`` between
    steps; returns the ticks copied."""
    n = steps = 0
    lo, hi = start_ms - PAD_MS, end_ms + PAD_MS
    for tt, st in _record_pairs(ro):
        schema = RECORD_SCHEMA.replace("EXISTS ticks(", f"EXISTS {tt}(").replace(
            "EXISTS stale_spans(", f"EXISTS {st}(")
        for stmt in schema.split(";"):
            if stmt.strip():
                fconn.execute(stmt)
        fconn.executemany(f"INSERT OR REPLACE INTO {st} VALUES (?,?)", ro.execute(
            f"SELECT start, end FROM {st} WHERE start < ? AND (end IS NULL OR end >= ?)",
            (hi, lo)).fetchall())
        after = lo - 1
        while True:
            rows = ro.execute(f"SELECT ts, price, src FROM {tt} WHERE ts > ? AND ts < ?"
                              " ORDER BY ts LIMIT ?", (after, hi, COPY_ROWS)).fetchall()
            if not rows:
                break
            fconn.executemany(f"INSERT OR REPLACE INTO {tt} VALUES (?,?,?)", rows)
            n += len(rows)
            after = rows[-1][0]
            steps += 1
            if steps % SYNC_STEPS == 0:
                sync()
            yield ("pause",)
    return n


def _oldest_col(ro):
    # ``bet_rows`` may hold any day; the spans (``_spans``) hold one day
    # each, so the oldest span with a bet has the oldest of them all
    from ._spans import bet_tables
    found = []
    for t in bet_tables(ro):
        m = ro.execute(f"SELECT min(col) FROM {t}").fetchone()[0]
        if m is not None:
            found.append(m)
            if t != "bet_rows":
                break
    return min(found) if found else None


def prune_record_steps(ro, now_ms, hot_days, day_ms=86_400_000):
    """Delete from the hot DB the ticks (and ended stale spans) that no hot
    bet needs: older than both the oldest bet still in the hot DB (open or
    settled; an archived part's bets are gone only after their record was
    copied) and ``hot_days``, less ``PAD_MS``. Yields ``("write", ...)``
    chunks and pauses; returns the ticks deleted."""
    oldest = _oldest_col(ro)
    bound = now_ms - hot_days * day_ms
    if oldest is not None:
        bound = min(bound, oldest)
    bound -= PAD_MS
    n = 0
    for tt, st in _record_pairs(ro):
        while True:
            k = ro.execute(f"SELECT count(*) FROM (SELECT 1 FROM {tt} WHERE ts < ? LIMIT ?)",
                           (bound, PRUNE_ROWS)).fetchone()[0]
            if k == 0:
                break
            yield ("write", [(f"DELETE FROM {tt} WHERE ts IN (SELECT ts FROM {tt} WHERE ts < ?"
                              " ORDER BY ts LIMIT ?)", (bound, PRUNE_ROWS))])
            n += k
            yield ("pause",)
        yield ("write", [(f"DELETE FROM {st} WHERE end IS NOT NULL AND end < ?", (bound,))])
    return n


def window_of(conn, t0, t1, lookback_ms=PAD_MS, asset=DEFAULT_ASSET):
    """(ticks as sorted (ts, price, src), stale spans as (start, end|None))
    of the window ``[t0, t1)`` of ``asset``, with ``lookback_ms`` of record
    before it (an asset with no record here: none)."""
    tt, st = record_tables(asset)
    if tt != "ticks" and not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                          (tt,)).fetchone():
        return [], []
    ticks = conn.execute(f"SELECT ts, price, src FROM {tt} WHERE ts >= ? AND ts < ? ORDER BY ts",
                         (t0 - lookback_ms, t1)).fetchall()
    spans = conn.execute(f"SELECT start, end FROM {st} WHERE start < ?"
                         " AND (end IS NULL OR end > ?)", (t1, t0)).fetchall()
    return ticks, spans
