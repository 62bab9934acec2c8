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
from ._market import MarketMaker
from ._model import Ack, Tap, TapOrder
from ._resolver import Resolver
from .store import Store, acquire_lock, release_lock
from ._watchdog import Watchdog
from ._writer import Writer
from ._writes import Credit, EnsureUser, Maintenance, PurgeGuests, SaveSession, TopUp

__all__ = ["start_market", "MarketHandle"]


def start_market(system, cfg, sinks=None, feed=None, clock=None, name_prefix=""):
    """Spawn Writer, Board, Resolver, MarketMaker and Watchdog (stopped in reverse
    order: the Watchdog first, the Writer last, so every queued bet is written)."""
    ctx = MarketContext(cfg, clock=clock, sinks=sinks or Sinks())
    ctx.status.subscribe(ctx.sinks.on_market)
    # Refuse a held database here, on the caller's greenlet: a non-blocking
    # flock, and the refusal is the caller's exception, not a pool traceback.
    lock = acquire_lock(cfg.db)
    try:
        store = run_blocking(Store, cfg.db, cfg.synchronous, cfg.commit_delay_ms,
                             not cfg.replica, cfg.db_cache_mb)
    finally:
        release_lock(lock)
    users, open_bets = run_blocking(store.load_state)
    ctx.ledger.load(users, open_bets)
    now = ctx.now()
    ctx.taken.load(run_blocking(store.recent_nonces, now - ctx.taken.keep_ms), now)
    p = name_prefix
    ctx.writer = system.spawn(Writer, ctx, store, name=p + "writer")
    # The players' board: loaded from the database, fed every settlement.
    ctx.writer.ask(Maintenance(BOARD_KEY_SQL, (secrets.token_bytes(16),)), timeout=30)
    board = system.spawn(Board, ctx, run_blocking(read_board, cfg.db, ctx.now()), name=p + "board")
    ctx.sinks = BoardSinks(ctx.sinks, board)
    resolver = system.spawn(Resolver, ctx, name=p + "resolver")
    maker = system.spawn(MarketMaker, ctx, name=p + "market")
    system.spawn(DiskGuard, ctx, name=p + "diskguard")
    if feed is None:
        # A sim walks on from the last stored price: bets open across a
        # restart must not settle against a price that jumped to the default.
        sims = "sim" in (list(cfg.sources) or [cfg.feed])
        last = run_blocking(store.last_tick) if sims else None
        feeds = make_sources(cfg, start_price=last[1] if last else None)
        feed = feeds[0] if len(feeds) == 1 else feeds
    watchdog = system.spawn(Watchdog, ctx, feed, [maker.tell, resolver.tell],
                            name=p + "watchdog")
    archiver = system.spawn(Archiver, ctx, name=p + "archiver")
    return MarketHandle(system, ctx, watchdog, maker, resolver, feed, archiver, board)


class MarketHandle:
    """The market's front door for the web layer and the REPL."""

    def __init__(self, system, ctx, watchdog, maker, resolver, feed, archiver=None, board=None):
        self.system = system
        self.board = board
        self.archiver = archiver
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.watchdog = watchdog
        self.maker = maker
        self.resolver = resolver
        self.writer = ctx.writer
        self.feed = feed                 # one feed, or the list of the price's sources

    # --- taps -------------------------------------------------------------------------

    def place(self, tap):
        """Route a verified ``Tap`` to its Column; a Future of its ``Ack``."""
        ctx = self.ctx
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
        ctx = self.ctx
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

    def tap(self, user, col, lo, stake, min_mult=101):
        """An operator's tap from the console (no player signature)."""
        tap = Tap(user, col, lo, stake, min_mult, self.ctx.now(),
                  secrets.token_urlsafe(12), bytes(64))
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

    def wait_ready(self, timeout=10):
        """Wait until a priced grid exists and the market is open."""
        with gevent.Timeout(timeout, False):
            while not (self.ctx.grid.columns and self.ctx.status.is_open):
                gevent.sleep(0.02)
            return True
        return False

    def pick_cell(self, offset_bands=1):
        """(col, lo, mult) of an open cell near the price, for demos and tests."""
        grid = self.ctx.grid
        now = self.ctx.now()
        band = self.cfg.band_cents
        for col in sorted(grid.columns):
            if now < col - self.cfg.lock_ms - 500:
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
        """(ok, reason) for /healthz."""
        status = self.ctx.status
        return status.is_open, status.reason

    def stats(self):
        return {"writer": self.ctx.writer_stats.as_dict(), "rejects": dict(self.ctx.counters),
                "watchdog": self.watchdog.ask("snapshot", timeout=2),
                "resolver": self.resolver.ask("stats", timeout=2),
                "market": self.ctx.status.as_dict(), "columns": len(self.ctx.columns)}


def _done(value):
    f = Future()
    f.set(value)
    return f
