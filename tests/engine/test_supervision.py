"""Supervision: restart strategies, restart intensity and escalation."""
import gevent
import pytest

from engine import (ESCALATE, RESUME, STOP, Actor, ActorSystem, OneForAll, OneForOne)
from tests.support import wait_until


class Fragile(Actor):
    starts = []

    def __init__(self, label="x"):
        self.label = label

    def on_start(self):
        self.n = 0
        Fragile.starts.append(self.label)

    def receive(self, msg):
        if msg == "crash":
            raise RuntimeError("crash " + self.label)
        if msg == "inc":
            self.n += 1
        return self.n


@pytest.fixture(autouse=True)
def _reset():
    Fragile.starts = []


def test_one_for_one_restarts_only_the_failed_child(system):
    class Sup(Actor):
        supervisor_strategy = OneForOne(max_restarts=5, within=60)

        def on_start(self):
            self.a = self.spawn(Fragile, "a", name="a")
            self.b = self.spawn(Fragile, "b", name="b")

        def receive(self, msg):
            return self.a, self.b

    a, b = system.spawn(Sup).ask("refs")
    a.tell("inc")
    b.tell("inc")
    with pytest.raises(RuntimeError):
        a.ask("crash")
    assert a.ask("get") == 0          # a restarted with fresh state
    assert b.ask("get") == 1          # b untouched
    assert a.stats.restarts == 1 and b.stats.restarts == 0


def test_one_for_all_restarts_every_sibling(system):
    class Sup(Actor):
        supervisor_strategy = OneForAll(max_restarts=5, within=60)

        def on_start(self):
            self.a = self.spawn(Fragile, "a", name="a")
            self.b = self.spawn(Fragile, "b", name="b")

        def receive(self, msg):
            return self.a, self.b

    a, b = system.spawn(Sup).ask("refs")
    b.tell("inc")
    assert b.ask("get") == 1
    with pytest.raises(RuntimeError):
        a.ask("crash")
    assert b.ask("get") == 0
    assert b.stats.restarts == 1


def test_messages_queued_behind_a_crash_survive_the_restart(system):
    ref = system.spawn(Fragile)
    ref.tell("crash")
    ref.tell("inc")
    ref.tell("inc")
    assert ref.ask("get") == 2


def test_restart_limit_escalates_to_the_parent(system):
    failures = []

    class Sup(Actor):
        supervisor_strategy = OneForOne(max_restarts=2, within=60)

        def on_start(self):
            self.kid = self.spawn(Fragile, "k", name="kid")

        def on_failure(self, exc):
            failures.append(exc)

        def receive(self, msg):
            return self.kid

    sup = system.spawn(Sup, name="sup")
    kid = sup.ask("kid")
    for _ in range(2):
        with pytest.raises(RuntimeError):
            kid.ask("crash")
    assert kid.stats.restarts == 2
    with pytest.raises(RuntimeError):
        kid.ask("crash")              # third crash within the window: escalate
    wait_until(lambda: failures, what="escalation to reach the supervisor")
    assert failures[0].child_path == "/sup/kid"
    # the supervisor was restarted by the system: it spawned a fresh kid
    wait_until(lambda: sup.stats.restarts == 1, what="supervisor restart")
    new_kid = sup.ask("kid")
    assert new_kid != kid and new_kid.ask("get") == 0


def test_escalation_at_the_top_stops_the_actor_and_is_recorded():
    system = ActorSystem(strategy=OneForOne(max_restarts=1, within=60))
    ref = system.spawn(Fragile, name="top")
    with pytest.raises(RuntimeError):
        ref.ask("crash")
    with pytest.raises(RuntimeError):
        ref.ask("crash")
    wait_until(lambda: not ref.alive, what="top actor to stop")
    assert system.escalations and system.escalations[0][0] == "/top"
    system.stop()


def test_decider_can_resume_or_stop(system):
    class Sup(Actor):
        supervisor_strategy = OneForOne(decider=lambda e: RESUME if isinstance(e, KeyError) else STOP)

        def on_start(self):
            self.kid = self.spawn(Picky)

        def receive(self, msg):
            return self.kid

    class Picky(Actor):
        def on_start(self):
            self.n = 0

        def receive(self, msg):
            self.n += 1
            if msg == "key":
                raise KeyError(msg)
            if msg == "value":
                raise ValueError(msg)
            return self.n

    kid = system.spawn(Sup).ask("?")
    with pytest.raises(KeyError):
        kid.ask("key")
    assert kid.ask("n") == 2          # resumed: state kept
    with pytest.raises(ValueError):
        kid.ask("value")
    wait_until(lambda: not kid.alive, what="stop directive")


def test_on_failure_hook_sees_the_exception(system):
    seen = []

    class Hooked(Fragile):
        def on_failure(self, exc):
            seen.append(str(exc))

    ref = system.spawn(Hooked, "h")
    with pytest.raises(RuntimeError):
        ref.ask("crash")
    assert seen == ["crash h"]


def test_failing_on_start_is_supervised(system):
    attempts = []

    class BadStart(Actor):
        def on_start(self):
            attempts.append(1)
            if len(attempts) < 3:
                raise OSError("not yet")

        def receive(self, msg):
            return "up"

    ref = system.spawn(BadStart)
    assert ref.ask("?", timeout=2) == "up"
    assert len(attempts) == 3


def test_escalate_directive_goes_straight_up(system):
    class Sup(Actor):
        supervisor_strategy = OneForOne(decider=lambda e: ESCALATE)

        def on_start(self):
            self.kid = self.spawn(Fragile)

        def receive(self, msg):
            return self.kid

    sup = system.spawn(Sup)
    kid = sup.ask("?")
    with pytest.raises(RuntimeError):
        kid.ask("crash")
    wait_until(lambda: sup.stats.restarts == 1, what="supervisor restart")
    wait_until(lambda: not kid.alive, what="the old child to be gone")
