"""Bounded mailboxes, overflow policies, dead letters, batch receive."""
import gevent
import pytest
from gevent.event import Event

from engine import Actor, MailboxFull
from tests.support import wait_until


class Gated(Actor):
    def __init__(self, gate, seen, busy=None):
        self.gate = gate
        self.seen = seen
        self.busy = busy

    def receive(self, msg):
        if self.busy is not None:
            self.busy.set()
        self.gate.wait()
        self.seen.append(msg)
        return msg


def test_reject_policy_raises_in_the_sender_and_counts_a_dead_letter(system):
    gate, seen, busy = Event(), [], Event()
    ref = system.spawn(Gated, gate, seen, busy, mailbox_size=3)
    ref.tell(0)
    assert busy.wait(2)           # the actor took 0 and blocks on the gate
    for i in (1, 2, 3):
        ref.tell(i)
    with pytest.raises(MailboxFull):
        ref.tell(4)
    with pytest.raises(MailboxFull):
        ref.ask_async(5)
    assert ref.stats.rejected == 2
    assert system.dead_letters.by_reason["mailbox_full"] == 2
    gate.set()
    wait_until(lambda: len(seen) == 4)
    assert seen == [0, 1, 2, 3]
    assert ref.stats.peak == 3


def test_block_policy_makes_the_sender_wait_for_room(system):
    gate, seen, busy = Event(), [], Event()
    ref = system.spawn(Gated, gate, seen, busy, mailbox_size=2, overflow="block")
    ref.tell(0)
    assert busy.wait(2)
    ref.tell(1)
    ref.tell(2)
    sender = gevent.spawn(ref.tell, 3)
    gevent.idle()                 # every runnable greenlet has run: the sender too
    assert not sender.ready()     # blocked: mailbox full
    gate.set()
    sender.join(2)
    assert sender.successful()
    wait_until(lambda: len(seen) == 4)
    assert seen == [0, 1, 2, 3]


def test_tell_to_a_stopped_actor_is_a_dead_letter(system):
    ref = system.spawn(Gated, Event(), [])
    ref.stop()
    ref.tell("late")
    letters = [d for d in system.dead_letters.recent if d.message == "late"]
    assert letters and letters[0].reason == "stopped" and letters[0].recipient == ref


def test_batch_receive_takes_everything_queued(system):
    batches = []

    class Batcher(Actor):
        max_batch = 100

        def receive_batch(self, batch):
            batches.append([m for m, _ in batch])
            for msg, reply in batch:
                if reply is not None:
                    reply.set(msg * 10)

    ref = system.spawn(Batcher)
    for i in range(250):
        ref.tell(i)
    last = ref.ask_async(250)
    assert last.get(1) == 2500
    assert [len(b) for b in batches] == [100, 100, 51]
    assert sum(batches, []) == list(range(251))


def test_batch_failure_fails_every_unanswered_ask(system):
    class Flaky(Actor):
        def receive_batch(self, batch):
            batch[0][1].set("first answered")
            raise IOError("disk")

    ref = system.spawn(Flaky)
    gate = [ref.ask_async(i) for i in range(3)]
    assert gate[0].get(1) == "first answered"
    for fut in gate[1:]:
        with pytest.raises(IOError):
            fut.get(1)


def test_batch_actor_stops_gracefully_after_draining(system):
    seen = []

    class Batcher(Actor):
        def receive_batch(self, batch):
            seen.extend(m for m, _ in batch)

    ref = system.spawn(Batcher)
    for i in range(10):
        ref.tell(i)
    ref.stop()
    assert seen == list(range(10))
