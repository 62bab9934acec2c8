"""Replies with a ``sink`` are acked in one call per commit and sink (the
gateway writes a whole commit's acks in one pass); other replies still get
``set(Ack)``, and both only after the commit (actors/_writer.py)."""
from actors._model import Ack, payout_for
from actors._writes import EnsureUser, PlaceBets
from engine import Future
from tests.support import wait_until

from .test_writer import bet, rows, start_writer


class _Reply:
    def __init__(self, sink):
        self.sink = sink


def test_a_commits_sink_replies_come_in_one_call_with_ids_and_balances(system, db_path):
    ctx, _ = start_writer(system, db_path)
    alice = ctx.writer.ask(EnsureUser("alice", 10_000))
    bob = ctx.writer.ask(EnsureUser("bob", 10_000))
    calls = []

    def sink(acks):
        # every bet is in the database by the time it is acked
        have = {r[0] for r in rows(db_path, "SELECT id FROM bets")}
        calls.append((acks, have))

    bets = [bet(alice if i % 2 else bob, i, stake=100 + i) for i in range(6)]
    plain = Future()
    pairs = []
    for i, b in enumerate(bets):
        ctx.ledger.reserve(b.user, b.stake, (b.col, b.lo), payout_for(b.stake, b.mult))
        pairs.append((b, plain if i == 3 else _Reply(sink)))
    ctx.writer_stats.pending_taps += len(pairs)
    ctx.writer.tell(PlaceBets(pairs))
    wait_until(lambda: calls and plain.done(), timeout=10)
    assert len(calls) == 1
    acks, have = calls[0]
    assert [r for r, *_ in acks] == [r for i, (_, r) in enumerate(pairs) if i != 3]
    ids = [bet_id for _, bet_id, _, _ in acks]
    assert set(ids) <= have and ids == sorted(ids)
    assert [m for _, _, m, _ in acks] == [b.mult for i, b in enumerate(bets) if i != 3]
    for _, _, _, balance in acks[-2:]:
        assert balance in (10_000 - sum(b.stake for b in bets if b.user == u) for u in (alice, bob))
    got = plain.get(5)
    assert type(got) is Ack and got.reason is None and got.bet == ids[2] + 1
