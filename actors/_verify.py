"""``tapgrid verify``: recompute every settled bet from the price record.

For each settled bet (hot DB and local archive files alike, columns in
``[from_ms, to_ms)``), in column order:

1. ``tick:``      every price of the window's record that names its sources
                  is their median (``_sources``);
2. ``outcome:``   the outcome the Resolver's own rule gives on the stored
                  record (``_resolver.window_path`` / ``outcome_for``, the
                  code the live Resolver settles with) is the stored one;
3. ``payout:``    the payout is what that outcome pays (SPEC section 3);
4. ``signature:`` the receipt (the canonical payload rebuilt from the bet)
                  verifies under one of the user's session keys that was
                  valid when the bet was placed. A bet the operator placed
                  from the console carries ``OPERATOR_SIG`` (no player
                  signed it): a mismatch, unless the caller accepts such
                  bets, when they are counted and listed instead.

The first mismatch stops the run and is named. Signatures are checked by a
callable handed in (``check(key_bytes, payload, sig_bytes) -> bool``): the
ECDSA code lives with the wire format, outside this package.
"""
from ._model import OPERATOR_SIG, OUTCOME_NAMES
from ._resolver import outcome_for, window_path
from ._sources import decode_sources, median_of
from .archive import archive_dir_of, open_file
from ._markets import market_specs, parse_market_id
from .store import (DEFAULT_ASSET, derived_payout, market_names, nonce_text, open_readonly,
                    window_of)

from .wire import encode_tap_payload

__all__ = ["verify", "VerifyError"]

_BETS = ("SELECT id, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed, outcome,"
         " payout{mkt} FROM bets WHERE outcome != 0 AND col >= ? AND col < ? ORDER BY {order}col, id")
#: a session key counts for bets placed up to this long after it expired
#: (a tap signed just before expiry may be placed just after)
_KEY_GRACE_MS = 60_000


class VerifyError(Exception):
    """The first mismatch; ``str()`` names it."""


def verify(db_path, cfg, check_signature, from_ms=None, to_ms=None, operator_bets=False):
    """Check every settled bet as above; a report dict ``{"bets", "windows",
    "ticks", "files", "skipped_files", "operator_bets"}`` (the ids of the
    operator's bets, accepted only with ``operator_bets``), or
    ``VerifyError`` at the first mismatch."""
    lo_ms = 0 if from_ms is None else from_ms
    hi_ms = (1 << 62) if to_ms is None else to_ms
    conn = open_readonly(db_path)
    report = {"bets": 0, "windows": 0, "ticks": 0, "files": 0, "skipped_files": [],
              "operator_bets": [], "accept_operator_bets": operator_bets}
    try:
        keys = _KeyRing(conn)
        seen = set()
        grids = _Grids(cfg, market_names(conn))
        _check_part(conn, conn, "the hot DB", grids, keys, check_signature, lo_ms, hi_ms, seen,
                    report)
        for name, fconn in _archives(conn, db_path, report):
            try:
                has_record = fconn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ticks'"
                                           ).fetchone()
                # files made before the record was archived: the hot DB's record
                _check_part(fconn, fconn if has_record else conn, name, grids, keys,
                            check_signature, lo_ms, hi_ms, seen, report)
                report["files"] += 1
            finally:
                fconn.close()
    finally:
        conn.close()
    return report


def _archives(conn, db_path, report):
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'archive_files'").fetchone():
        return
    row = conn.execute("SELECT value FROM meta WHERE key = 'archive_dir'").fetchone()
    adir = row[0] if row and row[0] else archive_dir_of(None, db_path)
    for (name,) in conn.execute("SELECT name FROM archive_files ORDER BY id").fetchall():
        fconn = open_file(adir, name)
        if fconn is None:
            report["skipped_files"].append(name)     # shipped away: not on this machine
            continue
        yield name, fconn


class _Grids:
    """Each market's (market id, asset, column_ms, band_cents) by number:
    the id and its column duration from the database's ``markets`` table,
    the band from the config's market of that id (or the config's own band
    for a market no longer configured; BTC-USD's grid before markets)."""

    def __init__(self, cfg, names):
        self.cfg = cfg
        self.names = names
        self.specs = {s.market_id: s for s in market_specs(cfg)}
        self.cache = {}

    def of(self, mkt):
        n = mkt >> 1
        if n not in self.cache:
            name = self.names.get(n)
            if name is None:
                if n:
                    raise VerifyError(f"market: number {n} is not in the markets table")
                self.cache[n] = (None, DEFAULT_ASSET, self.cfg.column_ms, self.cfg.band_cents)
            else:
                asset, col_ms = parse_market_id(name)
                spec = self.specs.get(name)
                band = spec.band_cents if spec else self.cfg.band_cents
                self.cache[n] = (name, asset, col_ms, band)
        return self.cache[n]


def _check_part(bets_conn, record_conn, where, grids, keys, check, lo_ms, hi_ms, seen, report):
    stale_after = 2 * grids.cfg.tick_interval_ms
    t0 = path = wkey = None
    has_mkt = "mkt" in [r[1] for r in bets_conn.execute("PRAGMA table_info(bet_rows)")]
    sql = _BETS.format(mkt=", mkt" if has_mkt else "", order="mkt >> 1, " if has_mkt else "")
    for row in bets_conn.execute(sql, (lo_ms, hi_ms)):
        (bid, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed, outcome,
         payout) = row[:13]
        mkt = row[13] if has_mkt else 0
        if bid in seen:
            continue            # a part being archived is in both places for a while
        seen.add(bid)
        market_id, asset, col_ms, band = grids.of(mkt)
        if (col, mkt >> 1) != wkey:
            wkey = (col, mkt >> 1)
            t0 = col
            path = _window(record_conn, t0, t0 + col_ms, stale_after, where, report, asset)
        want = outcome_for(lo, band, path)
        if want != outcome:
            low, high, stale, clean = path
            raise VerifyError(
                f"outcome: bet {bid} ({where}) is {OUTCOME_NAMES.get(outcome, outcome)}, the"
                f" record says {OUTCOME_NAMES[want]} (window {t0}..{t0 + col_ms}, band {lo}+{band},"
                f" path {low}..{high}, stale {stale}, clean {clean})")
        if payout != derived_payout(outcome, stake, mult):
            raise VerifyError(f"payout: bet {bid} ({where}) paid {payout}, its outcome"
                              f" {OUTCOME_NAMES[outcome]} pays {derived_payout(outcome, stake, mult)}")
        payload = encode_tap_payload(col, lo, stake, min_mult, ts, nonce_text(nonce),
                                     market_id if mkt & 1 else None)
        sig = bytes(sig)
        if sig == OPERATOR_SIG:
            # Outcome and payout were checked above; only the player's word is missing.
            if not report["accept_operator_bets"]:
                raise VerifyError(f"signature: bet {bid} ({where}) of user {user} was placed by"
                                  f" the operator from the console: no player signed it"
                                  f" (--operator-bets accepts such bets and lists them)")
            report["operator_bets"].append(bid)
        elif not any(check(k, payload, sig) for k in keys.candidates(user, placed)):
            raise VerifyError(f"signature: bet {bid} ({where}) of user {user}: the receipt"
                              f" {payload} does not verify under any session key the user held then")
        report["bets"] += 1


def _window(conn, t0, t1, stale_after, where, report, asset=DEFAULT_ASSET):
    # A price older than stale_after before t0 makes the window stale
    # whether or not it is read: this much record decides the outcome.
    rows, spans = window_of(conn, t0, t1, 2 * stale_after + 1, asset)
    for ts, price, src in rows:
        if src is None:
            continue
        try:
            prices = decode_sources(src)
        except ValueError as e:
            raise VerifyError(f"tick: {ts} ({where}): unreadable sources {src!r}: {e}") from None
        if median_of(prices.values()) != price:
            raise VerifyError(f"tick: {ts} ({where}): price {price} is not the median of its"
                              f" sources {prices}")
    report["windows"] += 1
    report["ticks"] += len(rows)
    return window_path([(ts, price) for ts, price, _ in rows], spans, t0, t1, stale_after)


class _KeyRing:
    """The users' session keys, loaded once (a few per user)."""

    def __init__(self, conn):
        self.by_user = {}
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'session_keys'").fetchone()
        if has:
            for user, key, created, expires in conn.execute(
                    "SELECT user, key, created, expires FROM session_keys ORDER BY created"):
                self.by_user.setdefault(user, []).append((bytes(key), created, expires))

    def candidates(self, user, placed):
        """The user's keys that were valid when the bet was placed."""
        return [k for k, c, e in self.by_user.get(user, ()) if c <= placed <= e + _KEY_GRACE_MS]
