"""The Writer: group commit, reply after commit, failure handling,
idempotent settlements, users and credits, per-tap baseline.

Everything real: a SQLite file, the Writer actor in an ActorSystem, a
second connection to look at what is on disk. Failures are provoked with
real SQLite conditions (a lock held by another connection, a page limit,
a file-size rlimit in a child process), not mocks.
"""
import json
import os
import subprocess
import sys
import textwrap

import gevent
import pytest

from actors.store._audit import audit
from actors._config import Config
from actors._context import MarketContext
from actors._model import LOST, VOID, WON, Ack, Bet, Settlement, payout_for
from actors.store import KIND_CREDIT, KIND_PAYOUT, KIND_REFUND, Store, open_readonly
from actors.store._schema import connect as _connect
from actors._writer import Writer
from actors._writes import Credit, EnsureUser, PlaceBets, SaveSession, SaveTicks, Settle
from engine import Future
from tests.support import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COL = 1_800_000_000_000
LO = 9_500_000


def start_writer(system, db_path, store=None, **cfg):
    ctx = MarketContext(Config(db=db_path, **cfg))
    store = store or Store(db_path)
    ctx.ledger.load(*store.load_state())
    ctx.writer = system.spawn(Writer, ctx, store, name="writer")
    return ctx, store


def bet(user, i, lo=LO, stake=100, mult=250, col=COL):
    return Bet(user, col, lo, stake, mult, 101, 1000 + i, f"nonce-{i:04d}", bytes([i % 256]) * 64,
               2000 + i)


def send_bets(ctx, bets):
    """What a Column does: reserve each stake, then one PlaceBets message."""
    pairs = []
    for b in bets:
        ctx.ledger.reserve(b.user, b.stake, (b.col, b.lo), payout_for(b.stake, b.mult))
        pairs.append((b, Future()))
    ctx.writer_stats.pending_taps += len(pairs)
    ctx.writer.tell(PlaceBets(pairs))
    return [f for _, f in pairs]


def rows(db_path, sql, params=()):
    conn = open_readonly(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_many_taps_queued_at_once_go_in_one_transaction(system, db_path):
    ctx, _ = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 100_000))
    bob = ctx.writer.ask(EnsureUser("bob", 100_000))
    before = ctx.writer_stats.batches
    # Three Columns hand over their batches, plus ticks, before the Writer runs.
    futs = send_bets(ctx, [bet(alice, i, lo=LO + 1000 * (i % 3)) for i in range(20)])
    futs += send_bets(ctx, [bet(bob, 20 + i) for i in range(25)])
    futs += send_bets(ctx, [bet(alice, 45 + i, stake=300) for i in range(15)])
    ctx.writer.tell(SaveTicks([(5000, LO + 10), (5250, LO + 20)]))
    acks = [f.get(5) for f in futs]

    assert all(type(a) is Ack and a.reason is None for a in acks)
    ids = [a.bet for a in acks]
    assert len(set(ids)) == 60 and sorted(ids) == list(range(1, 61))
    assert ctx.writer_stats.batches == before + 1          # one transaction, one fsync
    assert ctx.writer_stats.last_batch == 60
    assert ctx.writer_stats.pending_taps == 0
    assert rows(db_path, "SELECT count(*) FROM bets")[0][0] == 60
    assert rows(db_path, "SELECT ts, price FROM ticks ORDER BY ts") == [(5000, LO + 10),
                                                                        (5250, LO + 20)]
    # each ack carries the bet's multiplier and the user's balance
    assert acks[-1] == Ack(None, 60, 250, 100_000 - 20 * 100 - 15 * 300)
    db = dict(rows(db_path, "SELECT id, balance FROM users"))
    assert db[alice] == ctx.ledger.balance(alice) == 100_000 - 20 * 100 - 15 * 300
    assert db[bob] == ctx.ledger.balance(bob) == 100_000 - 25 * 100
    assert ctx.ledger.open_bets(alice) == 35 and ctx.ledger.open_bets(bob) == 25
    assert audit(db_path) == []


def test_taps_arriving_one_by_one_share_a_paced_commit(system, db_path):
    # commit_every_ms: the first tap commits alone, at once; taps that come
    # one at a time while that commit's window is still open (one every
    # 2 ms, each as its own message) all go in the next commit.
    ctx, _ = start_writer(system, db_path, commit_every_ms=50)
    alice = ctx.writer.ask(EnsureUser("alice", 100_000))
    before = ctx.writer_stats.batches
    first = send_bets(ctx, [bet(alice, 0)])
    assert first[0].get(5).reason is None
    assert ctx.writer_stats.batches == before + 1
    futs = []
    for i in range(1, 6):
        futs += send_bets(ctx, [bet(alice, i)])
        gevent.sleep(0.002)                     # pacing the sender, not synchronising
    acks = [f.get(5) for f in futs]
    assert [a.bet for a in acks] == [2, 3, 4, 5, 6]
    assert ctx.writer_stats.batches == before + 2, "the five shared one commit"
    assert ctx.writer_stats.last_batch == 5
    assert rows(db_path, "SELECT count(*) FROM bets")[0][0] == 6
    assert audit(db_path) == []


def test_bets_under_load_share_batches(system, db_path):
    # While one commit is in the threadpool, taps pile up and go in the next one.
    store = Store(db_path, commit_delay_ms=100)
    ctx, _ = start_writer(system, db_path, store=store)
    alice = ctx.writer.ask(EnsureUser("alice", 1_000_000))
    futs = send_bets(ctx, [bet(alice, i) for i in range(10)])
    # The Writer took the first ten and is in its 100 ms commit: the next
    # forty pile up meanwhile and must share one batch.
    wait_until(lambda: ctx.writer.stats.depth == 0, what="the writer to take the first bets")
    for round_ in range(1, 5):
        futs += send_bets(ctx, [bet(alice, round_ * 10 + i) for i in range(10)])
    acks = [f.get(10) for f in futs]
    assert all(a.reason is None for a in acks)
    assert len({a.bet for a in acks}) == 50
    assert ctx.writer_stats.max_batch_seen > 10


def test_ack_only_after_the_row_is_committed(system, db_path):
    ctx, _ = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 10_000))
    reader = open_readonly(db_path)
    seen = {}

    def on_ack(fut):
        # Runs the moment the reply is set: the row must already be durable
        # and visible to any other connection.
        ack = fut.result()
        seen[ack.bet] = reader.execute("SELECT col, lo, stake, mult FROM bets WHERE id=?",
                                       (ack.bet,)).fetchone()

    bets = [bet(alice, i, lo=LO + 1000 * i, stake=100 + i) for i in range(8)]
    futs = send_bets(ctx, bets)
    for f in futs:
        f.add_done_callback(on_ack)
    acks = [f.get(5) for f in futs]
    reader.close()
    assert len(seen) == 8
    for b, a in zip(bets, acks):
        assert seen[a.bet] == (b.col, b.lo, b.stake, b.mult)


def test_commit_runs_off_the_event_loop(system, db_path):
    # A slow fsync (the benchmark's commit_delay) must not stall other greenlets.
    store = Store(db_path, commit_delay_ms=300)
    ctx, _ = start_writer(system, db_path, store=store)
    alice = ctx.writer.ask(EnsureUser("alice", 10_000))
    beats = []
    ticker = gevent.spawn(lambda: [beats.append(1) or gevent.sleep(0.01) for _ in range(1000)])
    fut = send_bets(ctx, [bet(alice, 1)])[0]
    n_before = len(beats)
    assert fut.get(5).reason is None
    ticker.kill()
    assert len(beats) - n_before >= 5


def test_commit_failure_releases_stakes_and_rejects_every_tap(system, db_path):
    ctx, store = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 10_000))
    bob = ctx.writer.ask(EnsureUser("bob", 10_000))
    ok = send_bets(ctx, [bet(alice, 0)])[0].get(5)
    assert ok.reason is None
    settle_fut = None
    # Another process-like connection takes the write lock: the Writer's
    # BEGIN IMMEDIATE fails with "database is locked" after its busy timeout.
    store.conn.execute("PRAGMA busy_timeout=50")
    lock = _connect(db_path)
    lock.execute("BEGIN IMMEDIATE")
    try:
        futs = send_bets(ctx, [bet(alice, 1 + i, lo=LO + 1000) for i in range(5)])
        futs += send_bets(ctx, [bet(bob, 6 + i, lo=LO + 1000) for i in range(4)])
        settle_fut = ctx.writer.ask_async(
            Settle([Settlement(ok.bet, alice, COL, LO, 100, 250, WON, 250)]))
        acks = [f.get(10) for f in futs]
        with pytest.raises(Exception):
            settle_fut.get(5)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert [a.reason for a in acks] == ["overloaded"] * 9
    assert all(a.bet == 0 for a in acks)
    # the stakes are back, nothing is held for bets that do not exist
    assert ctx.ledger.balance(alice) == 10_000 - 100
    assert ctx.ledger.balance(bob) == 10_000
    assert ctx.ledger.open_bets(alice) == 1 and ctx.ledger.open_bets(bob) == 0
    assert ctx.ledger.liability((COL, LO + 1000)) == 0
    assert ctx.writer_stats.failures == 1 and ctx.writer_stats.pending_taps == 0
    assert rows(db_path, "SELECT count(*), max(id) FROM bets") == [(1, ok.bet)]
    assert ctx.status.is_open
    # the lock is gone: the next tap goes through with the next id
    again = send_bets(ctx, [bet(bob, 20)])[0].get(5)
    assert again.reason is None and again.bet == ok.bet + 1
    assert ctx.writer.ask(Settle([Settlement(ok.bet, alice, COL, LO, 100, 250, WON, 250)]))
    assert audit(db_path) == []


def test_full_database_rejects_disk_low_and_suspends_betting(system, db_path):
    ctx, store = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 100_000))
    assert send_bets(ctx, [bet(alice, 0)])[0].get(5).reason is None
    # SQLite's own size limit gives the real SQLITE_FULL a full disk gives.
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count={pages}")
    futs = send_bets(ctx, [bet(alice, 1 + i, lo=LO + 1000) for i in range(300)])
    acks = [f.get(10) for f in futs]
    assert {a.reason for a in acks} == {"disk_low"}
    assert ctx.status.reason == "disk_low" and ctx.status.reject_reason == "disk_low"
    assert ctx.ledger.balance(alice) == 100_000 - 100
    assert ctx.ledger.open_bets(alice) == 1
    assert rows(db_path, "SELECT count(*) FROM bets")[0][0] == 1
    assert audit(db_path) == []


FSIZE_CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    import gevent
    from engine import ActorSystem, Future
    from actors._config import Config
    from actors._context import MarketContext
    from actors._model import Bet, payout_for
    from actors.store._store import Store
    from actors._writer import Writer
    from actors._writes import EnsureUser, PlaceBets

    db = sys.argv[1]
    system = ActorSystem()
    ctx = MarketContext(Config(db=db))
    store = Store(db)
    ctx.writer = system.spawn(Writer, ctx, store, name="writer")
    user = ctx.writer.ask(EnsureUser("alice", 10**12))
    size = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
    # The file may grow by 256 KiB and no more: writes past that fail (EFBIG)
    # as on a disk that has filled up.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 256 * 1024, resource.RLIM_INFINITY))
    acked, rejected, expected = [], [], 10**12
    for round_ in range(2000):
        pairs = []
        for i in range(50):
            b = Bet(user, 1_800_000_000_000, 9_500_000 + 1000 * (i % 7), 100 + i, 250, 101,
                    i, "n%d-%d" % (round_, i), bytes(64), 0)
            ctx.ledger.reserve(user, b.stake, (b.col, b.lo), payout_for(b.stake, b.mult))
            pairs.append((b, Future()))
        ctx.writer_stats.pending_taps += len(pairs)
        ctx.writer.tell(PlaceBets(pairs))
        for b, f in pairs:
            ack = f.get(10)
            if ack.reason is None:
                acked.append([ack.bet, b.lo, b.stake])
                expected -= b.stake
            else:
                rejected.append(ack.reason)
        if rejected:
            break
    print(json.dumps({"acked": acked, "rejected": rejected, "balance": ctx.ledger.balance(user),
                      "expected": expected, "disk_low": ctx.status.reason == "disk_low",
                      "failures": ctx.writer_stats.failures}), flush=True)
    system.stop()
""")


def test_file_size_limit_in_a_child_rejects_with_disk_low(db_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", FSIZE_CHILD, db_path], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["acked"] and out["rejected"], "the child never hit its file-size limit"
    assert out["balance"] == out["expected"]         # every rejected stake released
    assert out["failures"] >= 1
    # nothing acknowledged is lost, nothing is corrupted
    on_disk = {r[0]: [r[0], r[1], r[2]] for r in rows(db_path, "SELECT id, lo, stake FROM bets")}
    assert [on_disk.get(a[0]) for a in out["acked"]] == out["acked"]
    assert len(on_disk) == len(out["acked"])
    assert audit(db_path) == []
    # a disk that cannot take the write is disk_low for the player, not "overloaded"
    assert set(out["rejected"]) == {"disk_low"}, out["rejected"][:3]
    assert out["disk_low"]


def test_same_settlement_twice_pays_once(system, db_path):
    ctx, _ = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 10_000))
    a, b, c = (f.get(5) for f in send_bets(ctx, [bet(alice, 0, stake=1000, mult=300),
                                                bet(alice, 1, stake=500, lo=LO + 1000),
                                                bet(alice, 2, stake=200, lo=LO + 2000)]))
    win = Settlement(a.bet, alice, COL, LO, 1000, 300, WON, 3000)
    void = Settlement(b.bet, alice, COL, LO + 1000, 500, 250, VOID, 500)
    lose = Settlement(c.bet, alice, COL, LO + 2000, 200, 250, LOST, 0)
    first = ctx.writer.ask(Settle([win, void, lose]))
    assert first == [(win, 10_000 - 1700 + 3000), (void, 10_000 - 1700 + 3500),
                     (lose, 10_000 - 1700 + 3500)]
    # again, in a later batch, and twice within one batch: nothing applies
    assert ctx.writer.ask(Settle([win, void, lose])) == []
    f1 = ctx.writer.ask_async(Settle([win]))
    f2 = ctx.writer.ask_async(Settle([win, void]))
    assert f1.get(5) == [] and f2.get(5) == []
    # an outcome arriving late with a different verdict changes nothing either
    assert ctx.writer.ask(Settle([Settlement(c.bet, alice, COL, LO + 2000, 200, 250, WON,
                                                 500)])) == []
    assert rows(db_path, "SELECT bet, kind, amount FROM ledger_all WHERE bet IS NOT NULL ORDER BY bet") \
        == [(a.bet, KIND_PAYOUT, 3000), (b.bet, KIND_REFUND, 500)]
    assert rows(db_path, "SELECT id, outcome, payout FROM bets ORDER BY id") == [
        (a.bet, WON, 3000), (b.bet, VOID, 500), (c.bet, LOST, 0)]
    assert rows(db_path, "SELECT balance FROM users WHERE id=?", (alice,))[0][0] \
        == ctx.ledger.balance(alice) == 10_000 - 1700 + 3500
    assert ctx.ledger.open_bets(alice) == 0 and ctx.ledger.liability((COL, LO)) == 0
    assert ctx.writer_stats.settlements == 3
    assert audit(db_path) == []


def test_two_settlements_of_one_bet_in_one_batch_pay_once(system, db_path):
    ctx, _ = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 10_000))
    a = send_bets(ctx, [bet(alice, 0, stake=1000, mult=300)])[0].get(5)
    win = Settlement(a.bet, alice, COL, LO, 1000, 300, WON, 3000)
    f1 = ctx.writer.ask_async(Settle([win]))
    f2 = ctx.writer.ask_async(Settle([win._replace(outcome=VOID, payout=1000)]))
    assert f1.get(5) == [(win, 12_000)] and f2.get(5) == []
    assert rows(db_path, "SELECT count(*) FROM ledger_all WHERE bet=?", (a.bet,))[0][0] == 1
    assert ctx.ledger.balance(alice) == 12_000
    assert audit(db_path) == []


def test_users_and_credits(system, db_path):
    ctx, _ = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 5_000))
    assert ctx.writer.ask(EnsureUser("alice", 5_000)) == alice      # no second welcome credit
    bob = ctx.writer.ask(EnsureUser("bob", 0))
    assert bob != alice and ctx.ledger.balance(bob) == 0
    assert ctx.writer.ask(Credit(alice, 2_500)) == 7_500
    assert ctx.writer.ask(Credit(bob, 100)) == 100
    ctx.writer.tell(Credit(bob, 50))            # a tell is written too
    wait_until(lambda: ctx.ledger.balance(bob) == 150, what="told credit")
    assert rows(db_path, "SELECT user, kind, amount FROM ledger ORDER BY id") == [
        (alice, KIND_CREDIT, 5_000), (alice, KIND_CREDIT, 2_500), (bob, KIND_CREDIT, 100),
        (bob, KIND_CREDIT, 50)]
    assert dict(rows(db_path, "SELECT id, balance FROM users")) == {alice: 7_500, bob: 150}
    # a user known only to the database (made by an earlier run) joins the ledger
    other = Store(db_path)
    carol = other.ensure_user("carol", credit=900)
    other.close()
    assert ctx.writer.ask(EnsureUser("carol", 900)) == carol
    assert ctx.ledger.balance(carol) == 900
    assert ctx.writer.ask(SaveSession((b"t" * 32, alice, b"k" * 65, 10**13))) is True
    assert rows(db_path, "SELECT user FROM sessions") == [(alice,)]
    with pytest.raises(Exception):
        ctx.writer.ask(("nonsense",))
    assert audit(db_path) == []


def _run_script(system, db_path, commit):
    ctx, _ = start_writer(system, db_path, commit=commit)
    alice = ctx.writer.ask(EnsureUser("alice", 5_000))
    bob = ctx.writer.ask(EnsureUser("bob", 5_000))
    before = ctx.writer_stats.batches
    futs = send_bets(ctx, [bet(alice, i, lo=LO + 1000 * (i % 4), stake=100 + 10 * i)
                           for i in range(12)])
    futs += send_bets(ctx, [bet(bob, 12 + i, stake=200) for i in range(6)])
    acks = [f.get(10) for f in futs]
    batches = ctx.writer_stats.batches - before
    done = ctx.writer.ask(Settle([Settlement(acks[0].bet, alice, COL, LO, 100, 250, WON, 250),
                                      Settlement(acks[1].bet, alice, COL, LO + 1000, 110, 250,
                                                 LOST, 0)]))
    table = rows(db_path, "SELECT id, user, col, lo, stake, mult, nonce, outcome, payout "
                          "FROM bets ORDER BY id")
    users = rows(db_path, "SELECT id, balance FROM users ORDER BY id")
    ledger = (ctx.ledger.balance(alice), ctx.ledger.balance(bob), ctx.ledger.open_bets(alice))
    system.stop()
    return acks, batches, [s for s, _ in done], table, users, ledger


def test_per_tap_commit_gives_the_same_results(tmp_path):
    from engine import ActorSystem
    group = _run_script(ActorSystem(), str(tmp_path / "group.db"), "group")
    per_tap = _run_script(ActorSystem(), str(tmp_path / "per_tap.db"), "per-tap")
    assert group[1] == 1 and per_tap[1] == 18          # one fsync vs one per bet
    assert group[0] == per_tap[0]
    assert group[2:] == per_tap[2:]
    assert audit(str(tmp_path / "per_tap.db")) == []


def test_a_refused_span_drop_fails_alone_and_taps_beside_it_are_acked(system, db_path):
    """The archiver's DROP_SPAN runs in a transaction of its own: when the
    Store refuses it (the span is not what the file holds), the taps queued
    with it are still written and acked, and the span stays."""
    from actors.store import DROP_SPAN, SpanChanged, span_days, span_of
    from actors._writes import ArchiveStep
    ctx, store = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 100_000))
    assert all(f.get(timeout=5).reason is None for f in send_bets(ctx, [bet(alice, 0)]))
    span = span_of(COL)
    drop = ctx.writer.ask_async(ArchiveStep([(DROP_SPAN, (span, 5, None))]))   # it holds 1 bet
    taps = send_bets(ctx, [bet(alice, i) for i in range(1, 4)])
    with pytest.raises(SpanChanged):
        drop.get(timeout=5)
    assert all(f.get(timeout=5).reason is None for f in taps)
    assert rows(db_path, "SELECT count(*) FROM bets") == [(4,)]
    assert span in span_days(store.conn)
    assert audit(db_path) == []
