"""tell/ask, lifecycle hooks, registry and graceful stop."""
import gevent
import pytest
from gevent.event import Event

from engine import Actor, ActorDeadError, ActorSystem, AskTimeout


class Counter(Actor):
    def on_start(self):
        self.n = 0

    def receive(self, msg):
        if msg == "inc":
            self.n += 1
        elif msg == "get":
            return self.n
        elif msg == "boom":
            raise ValueError("boom")


def test_tell_then_ask_sees_all_tells(system):
    ref = system.spawn(Counter, name="counter")
    for _ in range(1000):
        ref.tell("inc")
    assert ref.ask("get", timeout=1) == 1000
    assert ref.stats.processed == 1001


def test_exception_in_handler_reaches_the_asker(system):
    ref = system.spawn(Counter)
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=1)
    # the actor was restarted by the default strategy and still answers
    assert ref.ask("get", timeout=1) == 0


def test_ask_timeout(system):
    class Silent(Actor):
        def receive(self, msg):
            self.defer_reply()  # never answered

    ref = system.spawn(Silent)
    with pytest.raises(AskTimeout):
        ref.ask("x", timeout=0.05)


def test_ask_to_a_dead_actor_fails_fast(system):
    ref = system.spawn(Counter)
    ref.stop()
    assert not ref.alive
    with pytest.raises(ActorDeadError):
        ref.ask("get", timeout=5)


def test_registry_lookup_and_unique_names(system):
    ref = system.spawn(Counter, name="c1")
    assert system.lookup("c1") == ref
    assert system.lookup("/c1") == ref
    assert system.lookup("nope") is None
    with pytest.raises(ValueError):
        system.spawn(Counter, name="c1")
    ref.stop()
    assert system.lookup("c1") is None


def test_child_paths_and_lookup(system):
    class Parent(Actor):
        def on_start(self):
            self.child = self.spawn(Counter, name="kid")

        def receive(self, msg):
            return self.child

    parent = system.spawn(Parent, name="parent")
    child = parent.ask("?")
    assert child.path == "/parent/kid"
    assert system.lookup("/parent/kid") == child


def test_graceful_stop_drains_the_mailbox(system):
    seen = []
    gate = Event()

    class Slow(Actor):
        def receive(self, msg):
            gate.wait()
            seen.append(msg)

        def on_stop(self):
            seen.append("stopped")

    ref = system.spawn(Slow)
    for i in range(5):
        ref.tell(i)
    stopper = gevent.spawn(ref.stop)
    gevent.idle()           # the stopper has run: the stop is requested (stop() then waits)
    ref.tell("after-stop")  # refused: the stop was already requested
    gate.set()
    stopper.join(2)
    assert seen == [0, 1, 2, 3, 4, "stopped"]
    assert any(d.message == "after-stop" for d in system.dead_letters.recent)


def test_pending_asks_fail_when_the_actor_stops_without_draining(system):
    gate, busy = Event(), Event()

    class Blocked(Actor):
        def receive(self, msg):
            busy.set()
            gate.wait()
            return msg

    ref = system.spawn(Blocked)
    first = ref.ask_async(1)
    queued = ref.ask_async(2)
    assert busy.wait(2)         # 1 is taken, 2 still queued
    ref.stop(drain=False, wait=False)
    gate.set()
    assert first.get(1) == 1
    with pytest.raises(ActorDeadError):
        queued.get(1)


def test_system_stop_is_reverse_spawn_order():
    order = []

    class Named(Actor):
        def __init__(self, label):
            self.label = label

        def receive(self, msg):
            pass

        def on_stop(self):
            order.append(self.label)

    system = ActorSystem()
    for label in ("a", "b", "c"):
        system.spawn(Named, label)
    system.stop()
    assert order == ["c", "b", "a"]
    assert system.actors() == []


def test_children_stop_before_their_parent(system):
    order, kid_up = [], Event()

    class Kid(Actor):
        def on_start(self):
            kid_up.set()

        def on_stop(self):
            order.append("kid")

    class Parent(Actor):
        def on_start(self):
            self.spawn(Kid)

        def on_stop(self):
            order.append("parent")

    ref = system.spawn(Parent)
    assert kid_up.wait(2)
    ref.stop()
    assert order == ["kid", "parent"]


def test_an_actor_cannot_ask_itself(system):
    class Selfish(Actor):
        def receive(self, msg):
            if msg == "go":
                return self.ref.ask("x")

    ref = system.spawn(Selfish)
    with pytest.raises(RuntimeError, match="itself"):
        ref.ask("go", timeout=1)


def test_actors_listing_shows_stats(system):
    ref = system.spawn(Counter, name="listed")
    ref.tell("inc")
    ref.ask("get", timeout=1)
    table = system.actors()
    row = [s for s in table if s.name == "listed"][0]
    assert (row.state, row.processed, row.depth) == ("running", 2, 0)
    assert "listed" in repr(table) and "processed" in repr(table)


def test_deferred_reply_answered_by_another_actor(system):
    class Worker(Actor):
        def receive(self, msg):
            value, reply = msg
            reply.set(value * 2)

    class Front(Actor):
        def on_start(self):
            self.worker = self.spawn(Worker)

        def receive(self, msg):
            self.worker.tell((msg, self.defer_reply()))

    front = system.spawn(Front)
    assert front.ask(21, timeout=1) == 42
