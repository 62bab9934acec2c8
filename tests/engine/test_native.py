"""engine.NativePool: real threads, results back in the hub in one wake-up
per burst, and threads named after their pool (so a benchmark can read
each pool's CPU from /proc)."""
import glob
import os
import threading

import gevent
import pytest

from engine import NativePool


def thread_names():
    out = []
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/comm"):
        try:
            with open(path) as f:
                out.append(f.read().strip())
        except OSError:
            pass
    return out


def test_jobs_run_on_native_threads_and_callbacks_in_the_hub():
    pool = NativePool(2, name="t-native")
    try:
        main = threading.get_ident()
        ran_on = pool.call(threading.get_ident)
        assert ran_on != main
        got = []
        for i in range(50):
            pool.submit(pow, (i, 2), lambda v, exc: got.append((v, exc, threading.get_ident())))
        while len(got) < 50:
            gevent.sleep(0.001)
        assert sorted(v for v, _, _ in got) == [i * i for i in range(50)]
        assert all(exc is None and tid == main for _, exc, tid in got)
        with pytest.raises(ZeroDivisionError):
            pool.call(lambda: 1 / 0)
    finally:
        pool.close()


def test_threads_carry_their_pool_name():
    one, two = NativePool(1, name="t-commit"), NativePool(2, name="t-verify")
    try:
        one.call(int)
        two.call(int)
        # A call proves one of the pool's threads runs; its sibling names itself
        # when the OS first schedules it, which on a loaded box can be later.
        for _ in range(500):
            names = thread_names()
            if "t-verify-0" in names and "t-verify-1" in names:
                break
            gevent.sleep(0.01)
        assert names.count("t-commit") == 1
        assert "t-verify-0" in names and "t-verify-1" in names
    finally:
        one.close()
        two.close()


def test_submit_all_wakes_one_thread_which_wakes_the_next():
    # Two jobs that can only finish together (a barrier of two): the bundle
    # went to one thread in one put, and that thread handed the other job on.
    pool = NativePool(2, name="t-bundle")
    try:
        barrier = threading.Barrier(2, timeout=10)
        got = []

        def meet(i):
            barrier.wait()
            return i, threading.get_ident()

        pool.submit_all([(meet, (i,), lambda v, exc: got.append((v, exc))) for i in range(2)])
        for _ in range(1000):
            if len(got) == 2:
                break
            gevent.sleep(0.01)
        assert sorted(v[0] for v, _ in got) == [0, 1]
        assert all(exc is None for _, exc in got)
        assert got[0][0][1] != got[1][0][1]            # on two threads
        assert pool.jobs == 2 and pool._pending == 0
    finally:
        pool.close()


def test_close_with_a_bundle_out_still_runs_every_job_then_ends_the_threads():
    pool = NativePool(2, name="t-closing")
    got = []
    gate = threading.Event()
    pool.submit_all([(lambda i=i: (gate.wait(10), i)[1], (), lambda v, exc: got.append(v))
                     for i in range(5)])
    pool.close()                   # before any job ran: the rest is not yet re-queued
    with pytest.raises(RuntimeError):
        pool.submit_all([(int, (), lambda v, exc: None)])
    gate.set()
    for _ in range(1000):
        if len(got) == 5 and "t-closing-0" not in thread_names() \
                and "t-closing-1" not in thread_names():
            break
        gevent.sleep(0.01)
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert "t-closing-0" not in thread_names() and "t-closing-1" not in thread_names()
