"""engine.ParkingLine: parked greenlets go oldest first, as the owner's rule
allows, a killed one leaves the line, and the timer runs only while someone
waits, even when the owner's rule raises."""
import gevent
from gevent import get_hub

from engine import ParkingLine


def test_the_owner_rule_lets_a_few_go_per_turn_oldest_first():
    went = []
    line = ParkingLine(0.0005, lambda: [line.release() for _ in range(2)])

    def work(i):
        line.park()
        went.append((i, get_hub().loop.iteration))

    greenlets = [gevent.spawn(work, i) for i in range(7)]
    gevent.sleep(0)
    assert line.waiting == 7 and line.timing
    gevent.joinall(greenlets, timeout=5)
    assert [i for i, _ in went] == list(range(7))
    per_turn = {}
    for _, turn in went:
        per_turn[turn] = per_turn.get(turn, 0) + 1
    assert max(per_turn.values()) == 2 and len(per_turn) == 4
    assert line.parked == 7 and line.worst_wait == 7
    assert line.waiting == 0 and not line.timing


def test_a_killed_greenlet_leaves_the_line_and_release_skips_the_dead():
    line = ParkingLine(0.0005, lambda: None)       # nobody goes on its own
    a, b = gevent.spawn(line.park), gevent.spawn(line.park)
    gevent.sleep(0)
    a.kill()
    assert line.waiting == 1
    out = []
    get_hub().loop.run_callback(lambda: out.extend([line.release(), line.release()]))
    b.join(timeout=1)
    assert b.dead and out == [True, False]
    gevent.sleep(0.002)
    assert not line.timing


def test_the_line_keeps_moving_when_the_owner_rule_raises():
    calls = []

    def rule():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the owner's bug")
        line.release()

    line = ParkingLine(0.0005, rule)
    g = gevent.spawn(line.park)
    gevent.sleep(0)
    errors = []
    hub = get_hub()
    hub.handle_error = lambda context, type_, value, tb: errors.append(value)
    try:
        g.join(timeout=1)
    finally:
        del hub.handle_error
    assert g.dead and len(calls) >= 2 and not line.timing
    assert [str(e) for e in errors] == ["the owner's bug"]


def test_the_hub_never_parks():
    line = ParkingLine(0.001, lambda: None)
    get_hub().loop.run_callback(line.park)
    gevent.sleep(0)
    gevent.sleep(0)
    assert line.parked == 0
