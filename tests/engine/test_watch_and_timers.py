"""Death watch, timers and the threadpool helper."""
import threading
import time

import gevent
from gevent.event import Event

from engine import Actor, Terminated, run_blocking
from tests.support import wait_until


class Recorder(Actor):
    def __init__(self, log):
        self.log = log

    def receive(self, msg):
        self.log.append(msg)
        return msg


def test_watch_delivers_terminated(system):
    log, watching = [], Event()
    target = system.spawn(Recorder, [])

    class Watcher(Recorder):
        def on_start(self):
            self.watch(target)
            watching.set()

    system.spawn(Watcher, log)
    assert watching.wait(2)
    target.stop()
    wait_until(lambda: log, what="Terminated")
    assert log == [Terminated(target)]


def test_watching_a_dead_actor_delivers_at_once(system):
    log = []
    target = system.spawn(Recorder, [])
    target.stop()

    class Watcher(Recorder):
        def on_start(self):
            self.watch(target)

    system.spawn(Watcher, log)
    wait_until(lambda: log)
    assert log == [Terminated(target)]


def test_schedule_once_and_every(system):
    log = []

    class Ticker(Recorder):
        def on_start(self):
            self.schedule_once(0.01, "once")
            self.schedule_every(0.005, "tick")

    system.spawn(Ticker, log)
    wait_until(lambda: "once" in log and log.count("tick") >= 3)
    assert log.count("once") == 1


def test_timers_are_cancelled_on_stop(system):
    log = []

    class Ticker(Recorder):
        def on_start(self):
            self.timer = self.schedule_every(0.002, "tick")

    ref = system.spawn(Ticker, log)
    wait_until(lambda: log.count("tick") >= 2)
    cell = ref._cell
    ref.stop()
    assert len(cell.timers) == 0
    count = len(log)
    gevent.sleep(0.02)            # under test: ten intervals pass and no tick comes
    assert len(log) == count
    assert not any(d.message == "tick" for d in system.dead_letters.recent)


def test_timer_cancel_handle(system):
    log = []

    class Ticker(Recorder):
        def on_start(self):
            self.t = self.schedule_once(0.01, "never")
            self.t.cancel()
            self.schedule_once(0.02, "done")

    system.spawn(Ticker, log)
    wait_until(lambda: "done" in log)
    assert "never" not in log


def test_run_blocking_keeps_other_greenlets_running():
    ticks = []
    stop = [False]

    def ticker():
        while not stop[0]:
            ticks.append(1)
            gevent.sleep(0.001)

    g = gevent.spawn(ticker)
    wait_until(lambda: ticks, what="the ticker to start")
    before = len(ticks)
    thread_ids = []

    def blocking():
        thread_ids.append(threading.get_ident())
        time.sleep(0.05)          # a real blocking call (like fsync)
        return "done"

    assert run_blocking(blocking) == "done"
    stop[0] = True
    g.join()
    assert thread_ids[0] != threading.get_ident()
    assert len(ticks) - before >= 5   # the hub kept scheduling the ticker


def test_run_blocking_propagates_exceptions():
    def bad():
        raise ZeroDivisionError("x")
    try:
        run_blocking(bad)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("exception swallowed")
