"""engine.wake_soon and engine.BulkGate: under a long callback queue, urgent
wake-ups run ahead of it, and bulk work waits until the queue is short."""
import time

import gevent
from gevent import get_hub

from engine import URGENT_AFTER, BulkGate, callback_queue_len, wake_soon


def test_a_short_queue_keeps_the_callback_order():
    loop = get_hub().loop
    order = []
    loop.run_callback(order.append, "first")
    wake_soon(loop, order.append, "second")
    gevent.sleep(0)
    gevent.sleep(0)
    assert order == ["first", "second"]


def test_a_long_queue_is_overtaken_by_wake_soon():
    loop = get_hub().loop
    order = []
    def slow(i):                            # a teardown's worth of work each
        t = time.perf_counter()
        while time.perf_counter() - t < 0.00005:
            pass
        order.append(i)
    for i in range(URGENT_AFTER * 20):
        loop.run_callback(slow, i)
    wake_soon(loop, order.append, "urgent")
    gevent.sleep(0.5)
    assert len(order) == URGENT_AFTER * 20 + 1
    # it ran before most of the queue that was there when it was scheduled
    assert order.index("urgent") < URGENT_AFTER * 20 // 2


def test_bulk_work_keeps_the_callback_queue_short():
    gate = BulkGate(max_queue=50, per_turn=10)
    loop = get_hub().loop
    seen = []
    sampler = loop.timer(0.0005, 0.0005)
    sampler.start(lambda: seen.append(callback_queue_len(loop)))

    def teardown():
        gate.wait()
        for _ in range(5):                  # what a closing socket queues
            loop.run_callback(lambda: None)

    workers = [gevent.spawn(teardown) for _ in range(400)]
    gevent.joinall(workers, timeout=10)
    sampler.stop()
    assert all(w.dead for w in workers)
    assert gate.parked > 300               # most had to wait their turn
    assert gate.waiting == 0
    # 400 greenlets x 5 callbacks would have queued 2,000 at once
    assert max(seen) <= 50 + 10 * 5 + 400


def test_a_quiet_gate_does_not_park():
    gate = BulkGate(max_queue=128, per_turn=32)
    done = []
    gevent.spawn(lambda: (gate.wait(), done.append(1))).join()
    assert done == [1] and gate.parked == 0


def test_a_parked_greenlet_can_be_killed():
    gate = BulkGate(max_queue=0, per_turn=1)
    loop = get_hub().loop
    for _ in range(200):
        loop.run_callback(lambda: None)
    g = gevent.spawn(gate.wait)
    gevent.sleep(0)
    g.kill()
    assert g.dead and gate.waiting == 0
