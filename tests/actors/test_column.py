"""A Column: every reject reason it gives, the backlog guard, and a crash
that the MarketMaker restarts without losing accepted bets.

Most tests spawn a Column directly, over a real Writer and a MarketContext
whose clock the test sets and whose grid is priced by the real pricer
(``price_grid``), so every rule can be reached exactly.
"""
import pytest

from actors.store._audit import audit
from actors._config import Config
from actors._context import MarketContext
from actors._column import Column
from actors.feeds._local import SimFeed
from actors._market import price_grid
from actors._model import Ack, Tap, payout_for
from actors._runtime import start_market
from actors.store._store import Store, open_readonly
from actors._writer import Writer
from actors._writes import EnsureUser
from tests.support import wait_until

PRICE = 9_500_500            # mid-band: the band of 9_500_000 holds the price
BAND = 1000


class Clock:
    def __init__(self, ms):
        self.ms = ms

    def __call__(self):
        return self.ms / 1000


class Rig:
    """A Column at ``t0`` over a real Writer, with a clock the test moves."""

    def __init__(self, system, db_path, store=None, **cfg):
        cfg = Config(db=db_path, **cfg)
        start = 1_800_000_000_000
        self.clock = Clock(start)
        self.ctx = ctx = MarketContext(cfg, clock=self.clock)
        store = store or Store(db_path)
        ctx.ledger.load(*store.load_state())
        ctx.writer = system.spawn(Writer, ctx, store, name="writer")
        ctx.grid = price_grid(cfg, PRICE, start, 1e-4, start, 1)
        self.t0 = min(ctx.grid.columns)
        self.cells = ctx.grid.columns[self.t0]
        self.col = system.spawn(Column, ctx, self.t0, name=f"column-{self.t0}")
        self.system = system
        self.n = 0

    def user(self, name, credit):
        return self.ctx.writer.ask(EnsureUser(name, credit))

    def tap(self, user, lo, stake=100, min_mult=101, col=None, ref=None):
        self.n += 1
        tap = Tap(user, self.t0 if col is None else col, lo, stake, min_mult, self.clock.ms,
                  f"nonce{self.n:06d}", bytes(64))
        return (ref or self.col).ask_async(tap)

    def cell(self, offset):
        lo = PRICE // BAND * BAND + offset * BAND
        assert self.cells.get(lo), f"no offered cell at offset {offset}"
        return lo


def reason(fut):
    return fut.get(5).reason


def test_an_open_cell_takes_the_tap(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    lo = rig.cell(2)
    ack = rig.tap(alice, lo, 500).get(5)
    assert ack == Ack(None, 1, rig.cells[lo], 9_500)
    conn = open_readonly(db_path)
    assert conn.execute("SELECT user, col, lo, stake, mult FROM bets").fetchall() == [
        (alice, rig.t0, lo, 500, rig.cells[lo])]
    conn.close()
    assert rig.ctx.ledger.open_bets(alice) == 1
    assert rig.ctx.ledger.liability((rig.t0, lo)) == payout_for(500, rig.cells[lo])


def test_column_closed_once_locked(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    lo = rig.cell(2)
    rig.clock.ms = rig.t0 - rig.ctx.cfg.lock_ms - 1
    assert reason(rig.tap(alice, lo)) is None
    rig.clock.ms = rig.t0 - rig.ctx.cfg.lock_ms
    assert reason(rig.tap(alice, lo)) == "column_closed"
    rig.clock.ms = rig.t0 + 10
    assert reason(rig.tap(alice, lo)) == "column_closed"
    assert rig.ctx.counters["column_closed"] == 2
    assert rig.ctx.ledger.balance(alice) == 10_000 - 100


def test_column_closed_beyond_the_horizon(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    cfg = rig.ctx.cfg
    far = (rig.clock.ms + cfg.horizon_ms) // cfg.column_ms * cfg.column_ms + cfg.column_ms
    rig.ctx.grid.columns[far] = dict(rig.cells)       # even a priced cell
    ref = system.spawn(Column, rig.ctx, far, name="column-far")
    assert reason(rig.tap(alice, rig.cell(2), col=far, ref=ref)) == "column_closed"
    rig.clock.ms = far - cfg.horizon_ms               # now inside the horizon
    assert reason(rig.tap(alice, rig.cell(2), col=far, ref=ref)) is None


def test_bad_cell(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    cfg = rig.ctx.cfg
    base = PRICE // BAND * BAND
    assert reason(rig.tap(alice, rig.cell(2) + 1)) == "bad_cell"                 # misaligned
    assert reason(rig.tap(alice, rig.cell(2) + BAND // 2)) == "bad_cell"
    assert reason(rig.tap(alice, base + (cfg.max_bands + 1) * BAND)) == "bad_cell"  # too far up
    assert reason(rig.tap(alice, base - (cfg.max_bands + 1) * BAND)) == "bad_cell"  # too far down
    assert reason(rig.tap(alice, base + cfg.max_bands * BAND)) is None            # the edge is fine
    assert rig.ctx.counters["bad_cell"] == 4


def test_bad_request_for_a_tap_of_another_column(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    assert reason(rig.tap(alice, rig.cell(2), col=rig.t0 + rig.ctx.cfg.column_ms)) \
        == "bad_request"
    assert rig.col.ask_async("not a tap").get(5) == Ack("bad_request")


def test_stake_limits(system, db_path):
    rig = Rig(system, db_path, min_stake=100, max_stake=5_000)
    alice = rig.user("alice", 100_000)
    lo = rig.cell(3)
    assert reason(rig.tap(alice, lo, 99)) == "limit"
    assert reason(rig.tap(alice, lo, 5_001)) == "limit"
    assert reason(rig.tap(alice, lo, 100)) is None
    assert reason(rig.tap(alice, lo, 5_000)) is None
    assert rig.ctx.ledger.balance(alice) == 100_000 - 5_100


def test_open_bet_cap_per_user(system, db_path):
    rig = Rig(system, db_path, max_open_bets=3)
    alice, bob = rig.user("alice", 10_000), rig.user("bob", 10_000)
    lo = rig.cell(3)
    assert [reason(rig.tap(alice, lo)) for _ in range(4)] == [None, None, None, "limit"]
    assert reason(rig.tap(bob, lo)) is None                 # the cap is per user
    # taps in one batch count each other
    futs = [rig.tap(bob, lo) for _ in range(4)]
    assert [reason(f) for f in futs] == [None, None, "limit", "limit"]


def test_liability_cap_per_cell(system, db_path):
    rig = Rig(system, db_path)
    lo = rig.cell(3)
    mult = rig.cells[lo]
    rig.ctx.cfg.cell_liability_cap = 2 * payout_for(1000, mult) + 1
    alice, bob = rig.user("alice", 100_000), rig.user("bob", 100_000)
    assert reason(rig.tap(alice, lo, 1000)) is None
    assert reason(rig.tap(bob, lo, 1000)) is None
    assert reason(rig.tap(alice, lo, 1000)) == "limit"      # across users
    assert reason(rig.tap(alice, rig.cell(4), 1000)) is None   # another cell has room


def test_insufficient_balance(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 250)
    lo = rig.cell(2)
    assert reason(rig.tap(alice, lo, 300)) == "insufficient_balance"
    futs = [rig.tap(alice, lo, 100) for _ in range(3)]   # the third would overdraw
    assert [reason(f) for f in futs] == [None, None, "insufficient_balance"]
    assert rig.ctx.ledger.balance(alice) == 50
    stranger = 999
    assert reason(rig.tap(stranger, lo, 100)) == "insufficient_balance"


def test_odds_changed(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    lo = rig.cell(1)
    mult = rig.cells[lo]
    assert reason(rig.tap(alice, lo, min_mult=mult + 1)) == "odds_changed"
    ack = rig.tap(alice, lo, min_mult=mult).get(5)
    assert ack.reason is None and ack.mult == mult
    ack = rig.tap(alice, lo, min_mult=101).get(5)
    assert ack.mult == mult                      # the server's multiplier, not the player's


def test_market_suspended_and_disk_low(system, db_path):
    rig = Rig(system, db_path)
    alice = rig.user("alice", 10_000)
    lo = rig.cell(2)
    status = rig.ctx.status
    status.set("stale_price", True)
    assert reason(rig.tap(alice, lo)) == "market_suspended"
    status.set("disk_low", True)
    assert reason(rig.tap(alice, lo)) == "market_suspended"   # stale price comes first
    status.set("stale_price", False)
    assert reason(rig.tap(alice, lo)) == "disk_low"
    status.set("disk_low", False)
    assert reason(rig.tap(alice, lo)) is None
    assert rig.ctx.ledger.balance(alice) == 9_900


def test_overloaded_when_the_writer_backlog_is_full(system, db_path):
    # A slow fsync keeps taps pending; the backlog guard refuses the excess.
    rig = Rig(system, db_path, store=Store(db_path, commit_delay_ms=300), writer_queue=3)
    alice = rig.user("alice", 10_000)
    lo = rig.cell(2)
    futs = [rig.tap(alice, lo) for _ in range(5)]
    assert [reason(f) for f in futs] == [None, None, None, "overloaded", "overloaded"]
    first = [rig.tap(alice, lo) for _ in range(2)]
    wait_until(lambda: rig.ctx.writer_stats.pending_taps == 2, what="two pending")
    third, fourth = rig.tap(alice, lo), rig.tap(alice, lo)      # one slot left
    assert reason(fourth) == "overloaded"
    assert reason(third) is None
    assert [reason(f) for f in first] == [None, None]
    assert rig.ctx.writer_stats.pending_taps == 0
    assert reason(rig.tap(alice, lo)) is None          # room again
    assert rig.ctx.ledger.balance(alice) == 10_000 - 7 * 100
    assert rig.ctx.counters["overloaded"] == 3


def test_a_crashed_column_is_restarted_without_losing_accepted_bets(system, db_path):
    cfg = Config(db=db_path, column_ms=1000, lock_ms=300, horizon_ms=5000, tick_interval_ms=100)
    market = start_market(system, cfg, feed=SimFeed(seed=5, interval_ms=100))
    alice = market.create_user("alice", 100_000)
    assert market.wait_ready(10)
    # the farthest column: it stays open through the whole test
    col = max(market.grid.columns)
    lo = market.grid.price // 1000 * 1000 + 2000
    assert market.grid.columns[col].get(lo)
    ref = market.ctx.columns[col]
    first = market.tap(alice, col, lo, 1000).get(5)
    assert first.reason is None
    # A malformed tap is rejected alone, without crashing anything.
    poison = Tap(alice, col, lo, "a lot", 101, market.ctx.now(), "poison00", bytes(64))
    assert ref.ask_async(poison).get(5).reason == "bad_request"
    assert ref.stats.restarts == 0
    # A bug inside the Column's batch (injected here into its rule check)
    # crashes the batch: its taps fail together, their stakes not kept.
    real_check = Column.__dict__["_check"]

    def buggy_check(*args):
        raise RuntimeError("bug in a rule")
    Column._check = staticmethod(buggy_check)
    try:
        neighbour = market.tap(alice, col, lo, 1000)
        with pytest.raises(RuntimeError):
            neighbour.get(5)
    finally:
        Column._check = real_check
    wait_until(lambda: ref.stats.restarts == 1 and ref.alive, what="column restarted")
    assert market.ctx.columns[col] == ref
    second = market.tap(alice, col, lo, 1000).get(5)
    assert second.reason is None and second.bet == first.bet + 1
    assert market.ctx.ledger.open_bets(alice) == 2
    assert market.balance(alice) == 100_000 - 2000
    conn = open_readonly(db_path)
    assert conn.execute("SELECT id, col, lo, stake FROM bets ORDER BY id").fetchall() == [
        (first.bet, col, lo, 1000), (second.bet, col, lo, 1000)]
    conn.close()
    assert audit(db_path) == []
