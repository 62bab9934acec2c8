"""``RemoteMarket``'s inbox (actors/bus/_remote.py), with the test as the
market: an inbox entry of acks, as the market writes it, handed to the
inbox's handler (the tests are not monkey-patched, so the greenlets that
read Redis are not started).

- the ``ok`` acks of one inbox read whose replies share a ``sink`` (the tap
  pipeline's) reach it in one call, in the order the market sent them, and
  their ``set`` is never called: the ack frames are written from the inbox
  greenlet's own turn, not corked for a later callback;
- a refusal, and a reply without a sink, are answered through ``set``.
"""
import json

import pytest

from actors import Ack, Config, Tap
from actors.bus import RemoteMarket


class Reply:
    """A tap's reply as the gateway's pipeline makes it: ``set``, and a ``sink``."""

    def __init__(self, sink=None):
        self.got = []
        if sink is not None:
            self.sink = sink

    def set(self, ack):
        self.got.append(ack)


@pytest.fixture
def remote(redis_url):
    market = RemoteMarket(Config(redis=redis_url, gateway_id="gw-test"))
    yield market
    market.close()


def _tap(n):
    return Tap(1, 1_000_000, 9_500_000, 100, 101, 999_000, f"n{n}", bytes(64))


def test_ok_acks_go_to_their_sink_in_one_call_and_refusals_through_set(remote, redis_url):
    calls = []
    sink = calls.append
    replies = [Reply(sink), Reply(sink), Reply(sink), Reply()]
    for i, reply in enumerate(replies):
        remote.place_order(_tap(i), reply)
    rids = sorted(remote._pending)
    rows = [[rids[0], None, 11, 150, 900], [rids[1], "replay", 0, 0, 0],
            [rids[2], None, 12, 160, 800], [rids[3], None, 13, 170, 700]]
    remote._inbox({b"k": b"a", b"d": json.dumps(rows).encode()})
    assert not remote._pending
    assert calls == [[(replies[0], 11, 150, 900), (replies[2], 12, 160, 800)]]
    assert replies[0].got == [] and replies[2].got == []
    assert replies[1].got == [Ack("replay", 0, 0, 0)]
    assert replies[3].got == [Ack(None, 13, 170, 700)]
    assert remote.acked == 4 and remote.balances[1] == 700
