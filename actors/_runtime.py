"""Start the whole market in an actor system and talk to it.

    >>> from engine import ActorSystem
    >>> from actors import Config, start_market
    >>> import tempfile, os
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "m.db"), seed=1, tick_interval_ms=250)
    >>> system = ActorSystem()
    >>> market = start_market(system, cfg)
    >>> alice = market.create_user("alice", 10_000)
    >>> market.wait_ready(5)
    True
    >>> col, lo, mult = market.pick_cell()
    >>> market.tap(alice, col, lo, 500).get(5).reason is None
    True
    >>> system.stop()
"""
import secrets

import gevent

from engine import Future, run_blocking

from .archive import Archiver
from ._board import BOARD_KEY_SQL, Board, BoardSinks, read_board
from ._context import MarketContext, Sinks
from ._diskguard import DiskGuard
from .feeds import make_sources
from ._market import GRID_EVERY_MS, MarketMaker
from ._markets import market_cfg, markets_body
from ._model import OPERATOR_SIG, Ack, Tap, TapOrder
from ._resolver import Resolver
from .store import Store, acquire_lock, record_tables, release_lock
from ._watchdog import Watchdog
from ._writer import Writer
from ._writes import Credit, EnsureUser, Maintenance, PurgeGuests, SaveSession, TopUp

__all__ = ["start_market", "MarketHandle", "MarketUnit"]


def start_market(system, cfg, sinks=None, feed=None, clock=None, name_prefix=""):
    """Spawn the Writer and the Board, then per market its Resolver and MarketMaker, per asset
    its Watchdog (stopped in reverse order: the Watchdogs first, the Writer
    last, so every queued bet is written). ``feed`` overrides the default
    market's asset's sources (one feed or a list), or is a dict
    {asset: feed or list}."""
    root = MarketContext(cfg, clock=clock, sinks=sinks or Sinks())
    specs = cfg.market_specs()
    assets = list(dict.fromkeys(s.asset for s in specs))
    # Refuse a held database here, on the caller's greenlet: a non-blocking
    # flock, and the refusal is the caller's exception, not a pool traceback.
    lock = acquire_lock(cfg.db)
    try:
        store = run_blocking(Store, cfg.db, cfg.synchronous, cfg.commit_delay_ms,
                             not cfg.replica, cfg.db_cache_mb)
    finally:
        release_lock(lock)
    numbers = run_blocking(store.market_numbers, [s.market_id for s in specs])
    for asset in assets:
        run_blocking(store.ensure_record, asset)
    users, open_bets = run_blocking(store.load_state)
    root.ledger.load(users, open_bets)
    now = root.now()
    root.taken.load(run_blocking(store.recent_nonces, now - root.taken.keep_ms), now)
    p = name_prefix
    root.writer = system.spawn(Writer, root, store, name=p + "writer")
    # The players' board, one for every market: loaded from the database,
    # fed every settlement (the markets' contexts take root.sinks below).
    root.writer.ask(Maintenance(BOARD_KEY_SQL, (secrets.token_bytes(16),)), timeout=30)
    board = system.spawn(Board, root, run_blocking(read_board, cfg.db, root.now()), name=p + "board")
    root.sinks = BoardSinks(root.sinks, board)
    by_asset = {a: root.for_asset(a, record_tables(a), default=(a == specs[0].asset))
                for a in assets}
    units = []
    for i, spec in enumerate(specs):
        mctx = by_asset[spec.asset].for_market(spec, market_cfg(cfg, spec),
                                               numbers[spec.market_id], i == 0, root.sinks)
        mctx.status.subscribe(mctx.sinks.on_market)
        # the default market's actors keep the names they had before markets
        suffix = "" if i == 0 else f"[{spec.market_id}]"
        resolver = system.spawn(Resolver, mctx, name=p + "resolver" + suffix)
        maker = system.spawn(MarketMaker, mctx, GRID_EVERY_MS, name=p + "market" + suffix)
        units.append(MarketUnit(spec, mctx, maker, resolver))
    system.spawn(DiskGuard, root, name=p + "diskguard")
    feeds = feed if isinstance(feed, dict) else ({specs[0].asset: feed} if feed is not None
                                                  else {})
    watchdogs = {}
    for asset in assets:
        afeed = feeds.get(asset)
        if afeed is None:
            # A sim walks on from the last stored price: bets open across a
            # restart must not settle against a price that jumped to the default.
            sims = "sim" in (list(cfg.sources) or [cfg.feed])
            last = run_blocking(store.last_tick, record_tables(asset)[0]) if sims else None
            made = make_sources(cfg, start_price=last[1] if last else None, asset=asset)
            afeed = made[0] if len(made) == 1 else made
        feeds[asset] = afeed
        subscribers = []
        for u in units:
            if u.spec.asset == asset:
                subscribers += [u.maker.tell, u.resolver.tell]
        suffix = "" if asset == specs[0].asset else f"[{asset}]"
        watchdogs[asset] = system.spawn(Watchdog, by_asset[asset], afeed, subscribers,
                                        asset=asset, name=p + "watchdog" + suffix)
    for u in units:
        u.watchdog = watchdogs[u.spec.asset]
        u.feed = feeds[u.spec.asset]
    archiver = system.spawn(Archiver, root, name=p + "archiver")
    return MarketHandle(system, root, units, archiver, board)


class MarketUnit:
    """One market's parts: its spec, context (grid, columns, status), the
    MarketMaker that prices it and the Resolver that settles it, and its asset's
    Watchdog and feed."""

    def __init__(self, spec, ctx, maker, resolver):
        self.spec = spec
        self.market_id = spec.market_id
        self.ctx = ctx
        self.maker = maker
        self.resolver = resolver
        self.watchdog = None
        self.feed = None


class MarketHandle:
    """The market's front door for the web layer and the REPL."""

    def __init__(self, system, root, units, archiver=None, board=None):
        self.system = system
        self.board = board
        self.archiver = archiver
        self.root = root                 # the server's context (ledger, writer, disk status)
        self.units = units               # every market, the default first
        self.by_id = {u.market_id: u for u in units}
        default = units[0]
        self.default_id = default.market_id
        # v1 names: the default market's parts
        self.ctx = default.ctx
        self.cfg = root.cfg
        self.watchdog = default.watchdog
        self.maker = default.maker
        self.resolver = default.resolver
        self.writer = root.writer
        self.feed = default.feed         # one feed, or the list of the price's sources
        self._ro = None                  # read-only connection for history pages

    def unit(self, market_id=None):
        """The market ``market_id`` (None: the default); None when unknown."""
        return self.units[0] if market_id is None else self.by_id.get(market_id)

    # --- taps -------------------------------------------------------------------------

    def _ctx_of(self, tap):
        market_id = tap.market_id
        unit = self.units[0] if market_id is None else self.by_id.get(market_id)
        return None if unit is None else unit.ctx

    def place(self, tap):
        """Route a verified ``Tap`` to its market's Column; a Future of its ``Ack``."""
        ctx = self._ctx_of(tap)
        if ctx is None:
            self.root.count("bad_request")
            return _done(Ack("bad_request"))          # an unknown market_id
        status = ctx.status
        if not status.is_open:
            return _done(Ack(status.reject_reason))
        ref = ctx.columns.get(tap.col)
        if ref is None:
            ctx.count("column_closed")
            return _done(Ack("column_closed"))
        try:
            return ref.ask_async(tap)
        except Exception:       # MailboxFull or a column that just stopped
            ctx.count("overloaded")
            return _done(Ack("overloaded"))

    def place_order(self, tap, reply):
        """Route a verified ``Tap`` to its Column with a tell; ``reply``
        (``set(Ack)``/``fail(exc)``) gets the answer, here at once if the
        tap cannot be routed."""
        ctx = self._ctx_of(tap)
        if ctx is None:
            self.root.count("bad_request")
            reply.set(Ack("bad_request"))             # an unknown market_id
            return
        status = ctx.status
        if not status.is_open:
            reply.set(Ack(status.reject_reason))
            return
        ref = ctx.columns.get(tap.col)
        if ref is None:
            ctx.count("column_closed")
            reply.set(Ack("column_closed"))
            return
        try:
            ref.tell(TapOrder(tap, reply))
        except Exception:       # MailboxFull or a column that just stopped
            ctx.count("overloaded")
            reply.set(Ack("overloaded"))

    def tap(self, user, col, lo, stake, min_mult=101, market_id=None):
        """An operator's tap from the console (no player signature)."""
        tap = Tap(user, col, lo, stake, min_mult, self.ctx.now(),
                  secrets.token_urlsafe(12), OPERATOR_SIG, market_id)
        return self.place(tap)

    # --- users and money --------------------------------------------------------------------

    def create_user(self, name, credit=0, timeout=10, new=False):
        """The user's id; with ``new``, raises ``UserExists`` for a taken name."""
        return self.writer.ask(EnsureUser(name, credit, new), timeout=timeout)

    def credit(self, user, amount, timeout=10):
        return self.writer.ask(Credit(user, amount), timeout=timeout)

    def balance(self, user):
        return self.ctx.ledger.balance(user)

    def top_up(self, user, to_balance, below, every_ms, timeout=10):
        """A demo top-up under its limit: a ``TopUpResult``."""
        return self.writer.ask(TopUp(user, to_balance, below, every_ms), timeout=timeout)

    def save_session(self, row, timeout=10):
        return self.writer.ask(SaveSession(row), timeout=timeout)

    def revoke_session(self, token_hash, timeout=10):
        return self.writer.ask(Maintenance("DELETE FROM sessions WHERE token=?", (token_hash,)),
                               timeout=timeout)

    def purge_guests(self, created_before, timeout=60):
        """Delete idle guests that never bet; the ids removed."""
        return self.writer.ask(PurgeGuests(created_before), timeout=timeout)

    def purge_sessions(self, now_ms, timeout=60):
        return self.writer.ask(Maintenance("DELETE FROM sessions WHERE expires<=?", (now_ms,)),
                               timeout=timeout)

    def save_key(self, user, key, expires_ms, timeout=10):
        """Keep a session key for verifying receipts (sessions held
        elsewhere, e.g. Redis; a SQLite session row keeps its key itself)."""
        from .store import INSERT_KEY
        return self.writer.ask(Maintenance(INSERT_KEY, (user, key, self.ctx.now(), expires_ms)),
                               timeout=timeout)

    # --- what is on ------------------------------------------------------------------------

    @property
    def grid(self):
        return self.ctx.grid

    @property
    def status(self):
        return self.ctx.status

    def wait_ready(self, timeout=10, market_id=None):
        """Wait until a priced grid exists and the market is open (the
        default market; ``market_id="*"``: every market)."""
        ctxs = [u.ctx for u in self.units] if market_id == "*" else [self.unit(market_id).ctx]
        with gevent.Timeout(timeout, False):
            while not all(c.grid.columns and c.status.is_open for c in ctxs):
                gevent.sleep(0.02)
            return True
        return False

    def pick_cell(self, offset_bands=1, market_id=None):
        """(col, lo, mult) of an open cell near the price, for demos and tests."""
        ctx = self.unit(market_id).ctx
        cfg = ctx.cfg
        grid = ctx.grid
        now = ctx.now()
        band = cfg.band_cents
        for col in sorted(grid.columns):
            if now < col - cfg.lock_ms - 500:
                lo = grid.price // band * band + offset_bands * band
                mult = grid.columns[col].get(lo)
                if mult:
                    return col, lo, mult
        return None

    def archive_now(self, timeout=3600):
        """Run the archiver now (it also runs daily); its report dict."""
        return self.archiver.ask("run", timeout=timeout)

    def history(self, user, limit=20, before_bet=None):
        """The user's bets, newest first, hot and archived, as receipts (SPEC section 9)."""
        from .store import history
        from .store import open_readonly
        conn = open_readonly(self.cfg.db)
        try:
            return history(conn, user, before_bet, limit)
        finally:
            conn.close()

    def read_history(self, user, cursor=None, limit=50):
        """One page of ``/api/history``: receipts newest first, ids below ``cursor``."""
        from .store import history
        if self._ro is None:
            from .store import open_readonly
            self._ro = open_readonly(self.cfg.db)
        return history(self._ro, user, cursor, limit)

    def read_ticks(self, start, end, limit, asset=None):
        """[(ts, price)] of the stored price record in [start, end), oldest
        first, ``limit + 1`` at most (the extra one says there is more)."""
        table = record_tables(asset or self.units[0].spec.asset)[0]
        return run_blocking(_read_ticks, self.cfg.db, start, end, limit, table)

    @property
    def counters(self):
        return self.ctx.counters

    def wait_settled(self, bet, timeout=30):
        """Wait until bet ``bet`` is settled; return its receipt."""
        from .store import open_readonly
        conn = open_readonly(self.cfg.db)
        try:
            with gevent.Timeout(timeout, False):
                while True:
                    row = conn.execute("SELECT user, outcome FROM bets WHERE id=?", (bet,)).fetchone()
                    if row and row[1]:
                        return [b for b in self.history(row[0], 1, bet + 1)][0]
                    gevent.sleep(0.1)
            return None
        finally:
            conn.close()

    def health(self):
        """(ok, reason) for /healthz: the default market's (what v1 clients bet on)."""
        status = self.ctx.status
        return status.is_open, status.reason

    def markets(self):
        """The ``/api/markets`` body (SPEC 9, v1.1)."""
        return markets_body(self.default_id, self.units)

    def stats(self):
        return {"writer": self.ctx.writer_stats.as_dict(), "rejects": dict(self.ctx.counters),
                "watchdog": self.watchdog.ask("snapshot", timeout=2),
                "resolver": self.resolver.ask("stats", timeout=2),
                "market": self.ctx.status.as_dict(), "columns": len(self.ctx.columns),
                "markets": {u.market_id: {"market": u.ctx.status.as_dict(),
                                          "columns": len(u.ctx.columns)} for u in self.units}}


def _read_ticks(db, start, end, limit, table="ticks"):
    from .store import open_readonly
    conn = open_readonly(db)
    try:
        return conn.execute(f"SELECT ts, price FROM {table} WHERE ts >= ? AND ts < ? ORDER BY ts"
                            " LIMIT ?", (start, end, limit + 1)).fetchall()
    finally:
        conn.close()


def _done(value):
    f = Future()
    f.set(value)
    return f
