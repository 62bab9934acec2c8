"""The loop-lag timer (engine/_lagwatch.py): how late a 10 ms timer fires,
measured from the hub, with no greenlet switching in and out per wake."""
import time

import gevent
import greenlet

from engine import LagWatch
from tests.support import wait_until


def test_a_blocked_loop_is_measured_as_late():
    seen = []
    w = LagWatch(seen.append, 0.01).start()
    try:
        gevent.sleep(0.05)
        assert seen and max(seen) < 40                 # an idle loop is on time
        n = len(seen)
        time.sleep(0.08)                               # the loop held, as by a long job
        gevent.sleep(0.03)
        assert max(seen[n:]) >= 60
    finally:
        w.stop()


def test_it_wakes_no_greenlet():
    # The sleeping greenlet it replaces switched hub -> greenlet -> hub on
    # every wake: ~20 switches in 100 ms. Nothing else runs here meanwhile.
    switches = []
    seen = []
    w = LagWatch(seen.append, 0.01).start()
    old = greenlet.settrace(lambda event, args: switches.append(args) if event == "switch" else None)
    try:
        gevent.sleep(0.1)
    finally:
        greenlet.settrace(old)
        w.stop()
    assert len(seen) >= 5
    # only this test's own sleep: into the hub and back once
    assert len(switches) <= 2, switches


def test_stopped_it_calls_no_more():
    seen = []
    w = LagWatch(seen.append, 0.005).start()
    gevent.sleep(0.03)
    w.stop()
    n = len(seen)
    gevent.sleep(0.03)
    assert len(seen) == n > 0



def test_a_market_prices_its_grids_while_it_runs(system, db_path):
    # The grid's slices wait on gevent.idle(), which returns only when the
    # loop has nothing else pending: a one-shot timer re-armed from its own
    # callback kept three markets' grids from ever being priced.
    from actors import Config, start_market
    w = LagWatch(lambda ms: None, 0.01).start()
    try:
        cfg = Config(db=db_path, markets=["BTC-USD/5s", "BTC-USD/15s", "ETH-USD/5s:band_cents=100"])
        market = start_market(system, cfg)
        wait_until(lambda: all(u.ctx.grid.version >= 3 for u in market.units), timeout=10,
                   what="every market's grid priced, again and again")
    finally:
        w.stop()
