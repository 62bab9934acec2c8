"""The disk guard (SPEC section 6, issue 6).

1. Below ``min_free_disk`` betting is suspended with ``disk_low`` (and
   /healthz's ``market.health()`` says so), settlement of open bets still
   completes, and betting reopens by itself when space returns. The
   threshold is moved live, the free space measured is real.
2. A real write failure: the market runs in a child process under
   ``RLIMIT_FSIZE`` (SIGXFSZ ignored, so writes fail with EFBIG) until its
   commits fail. Nothing acked is lost, nothing is corrupted, later taps get
   ``disk_low``/``overloaded``, and the child still stops cleanly.
"""
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors.store._audit import audit
from actors._config import Config
from actors._context import Sinks
from actors.feeds._local import SimFeed
from actors._runtime import start_market
from actors.store._store import open_readonly
from engine import ActorSystem
from tests.support import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = os.path.join(ROOT, "tests", "actors", "market_child.py")


class Results(Sinks):
    def __init__(self):
        self.by_bet = {}

    def on_result(self, user, settlement, balance):
        self.by_bet[settlement.bet] = settlement


def test_low_disk_suspends_betting_settles_open_bets_and_reopens(db_path):
    cfg = Config(db=db_path, column_ms=1000, lock_ms=300, horizon_ms=3000, tick_interval_ms=100,
                 max_open_bets=10 ** 6, cell_liability_cap=10 ** 15, min_free_disk=0)
    results = Results()
    system = ActorSystem()
    try:
        market = start_market(system, cfg, sinks=results, feed=SimFeed(seed=5, interval_ms=100))
        alice = market.create_user("alice", 10 ** 7)
        assert market.wait_ready(20)
        placed = []
        for offset in (-1, 0, 1, 2):
            col, lo, _ = market.pick_cell(offset)
            ack = market.tap(alice, col, lo, 100).get(5)
            assert ack.reason is None
            placed.append(ack.bet)
        # the disk "fills": every byte of it is now below the limit
        cfg.min_free_disk = "100%"
        wait_until(lambda: market.status.holds("disk_low"), timeout=5, what="disk_low")
        assert market.health() == (False, "disk_low")
        col, lo, _ = market.pick_cell()
        assert market.tap(alice, col, lo, 100).get(5).reason == "disk_low"
        # open bets still settle while betting is suspended
        wait_until(lambda: all(b in results.by_bet for b in placed), timeout=15,
                   what="the open bets to settle")
        assert market.status.holds("disk_low") and market.health()[0] is False
        # space comes back: betting reopens without anyone touching it
        cfg.min_free_disk = 0
        wait_until(lambda: market.status.is_open, timeout=5, what="the market to reopen")
        assert market.health() == (True, None)
        col, lo, _ = market.pick_cell()
        assert market.tap(alice, col, lo, 100).get(5).reason is None
    finally:
        system.stop()
    assert audit(db_path) == []


def _limit_file_size(limit):
    def apply():
        # writes past the limit fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.timeout(120)
def test_a_real_write_failure_loses_nothing_and_corrupts_nothing(tmp_path):
    db = str(tmp_path / "small.db")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, CHILD, "--db", db, "--seed", "4"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0, preexec_fn=_limit_file_size(400_000))
    state = {"ready": None, "grid": None, "acks": {}, "order": []}
    lock = threading.Lock()

    def read():
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            with lock:
                if msg.get("type") == "ready":
                    state["ready"] = msg
                elif msg.get("type") == "grid":
                    state["grid"] = msg
                elif msg.get("type") == "ack":
                    state["acks"][msg["id"]] = msg
                    state["order"].append(msg["id"])

    err = []
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    err_reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    err_reader.start()
    rng = random.Random(4)
    sent = {}
    try:
        wait_until(lambda: state["ready"] is not None, timeout=30, what="the child")
        lock_ms = state["ready"]["lock_ms"]
        deadline = time.monotonic() + 60
        tap_id = 0

        def failures():
            return [a for a in state["acks"].values()
                    if a["reason"] in ("disk_low", "overloaded")]

        while len(failures()) < 30:
            assert time.monotonic() < deadline, "the child never hit its file-size limit"
            assert proc.poll() is None, f"the child died: {err}"
            now = time.time() * 1000
            cells = [c for c in (state["grid"] or {}).get("cells", [])
                     if now < c[0] - lock_ms - 150]
            for _ in range(4 if cells else 0):
                col, lo, _ = rng.choice(cells)
                tap_id += 1
                sent[tap_id] = (col, lo, rng.randrange(100, 500))
                proc.stdin.write((json.dumps({"id": tap_id, "col": col, "lo": lo,
                                              "stake": sent[tap_id][2]}) + "\n").encode())
            time.sleep(0.01)                # pacing the taps (load shape), not synchronisation
        proc.stdin.close()                  # a clean stop, even with a full disk
        assert proc.wait(30) == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        err_reader.join(10)
    stderr = err[0].decode() if err else ""
    # gevent's threadpool prints the failed commit it handed back (the Writer
    # handles it); any other traceback would be a crash
    for block in stderr.split("Traceback (most recent call last):")[1:]:
        assert "gevent/threadpool.py" in block and "OperationalError" in block, block[:3000]
    acks = state["acks"]
    oks = {i: a for i, a in acks.items() if a["ok"]}
    assert oks, "nothing was acknowledged before the failure"
    first_fail = next(n for n, i in enumerate(state["order"])
                      if acks[i]["reason"] in ("disk_low", "overloaded"))
    after = [acks[i]["reason"] for i in state["order"][first_fail:]]
    # once writes fail, a tap is refused with a clear reason (or acked when a
    # commit fits again: the market reopens when free space looks fine)
    assert set(after) <= {None, "disk_low", "overloaded", "column_closed"}, set(after)
    assert "disk_low" in after or "overloaded" in after
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    ro = open_readonly(db)
    try:
        on_disk = {r[0]: r[1:] for r in ro.execute("SELECT id, col, lo, stake FROM bets")}
    finally:
        ro.close()
    lost = {a["bet"]: sent[i] for i, a in oks.items() if on_disk.get(a["bet"]) != sent[i]}
    assert not lost, f"acknowledged bets lost: {lost}"
    assert audit(db) == []
