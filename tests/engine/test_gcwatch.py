"""engine.GcWatch times real collections; GcPacer collects the young
generation on its clock even when frees cancel allocations."""
import gc

import gevent

from engine import GcPacer, GcWatch


def test_every_collection_is_timed_by_generation():
    w = GcWatch(notable_s=0.0).start()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        w.stop()
    assert w.stats[0].count >= 1 and w.stats[2].count >= 1
    assert sum(w.stats[2].buckets) == w.stats[2].count
    assert w.stats[2].seconds > 0 and w.worst >= w.stats[2].worst
    assert {g for _, g, _ in w.recent} >= {0, 2}


def test_a_stopped_watch_records_nothing():
    w = GcWatch().start()
    w.stop()
    gc.collect(0)
    assert all(s.count == 0 for s in w.stats)


def test_the_pacer_collects_while_frees_cancel_allocations():
    old = [[i] for i in range(50_000)]      # long-lived, then freed
    gc.collect()
    watch = GcWatch().start()
    pacer = GcPacer(period_s=0.005, gen1_every=3).start()
    try:
        young = []
        for i in range(50_000):
            young.append([i])               # an allocation ...
            old.pop()                       # ... and an old object's free: the count stays flat
            if i % 5000 == 0:
                gevent.sleep(0.01)
    finally:
        pacer.stop()
        watch.stop()
    assert pacer.ticks >= 5
    assert watch.stats[0].count + watch.stats[1].count >= 5
    assert watch.stats[1].count >= 1
