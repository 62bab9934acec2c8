"""The archive job in a child process at idle priority (actors/archive/_child.py):
its writes come back to the parent, a killed child loses nothing, and the
server's Archiver runs it that way."""
import os
import signal
import time

import gevent

from actors.archive import archive_dir_of
from actors.archive._child import run_child
from actors.archive._files import COMPRESSED
from actors._config import Config
from actors.feeds._local import SimFeed
from actors._runtime import start_market
from actors.store._audit import audit
from actors.store._store import Store
from engine import ActorSystem
from tests.actors.archive.test_archive import (NOW, _check_exactly_once, full_history, hot_ids,
                                               make_db)
from tests.support import wait_until


def _args(db):
    return {"db": db, "adir": archive_dir_of(None, db), "now_ms": NOW, "hot_days": 7}


def test_the_child_archives_through_the_parents_writer_at_idle_priority(tmp_path):
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=9, per_day=800, users=6)
    want = full_history(db, "u2")
    store = Store(db)
    seen = []

    def write(stmts):
        seen.append(len(stmts))
        store.write_batch(deletes=stmts, now=NOW)
    try:
        report = run_child(_args(db), write)
    finally:
        store.close()
    assert report["errors"] == [] and len(report["files"]) == 2
    assert report["priority"] == "sched_idle"       # Linux: any user may lower itself
    assert report["bets"] == len(bets) - len(hot_ids(db)) and len(seen) > 3
    files = _check_exactly_once(db, archive_dir_of(None, db), set(bets), final=True)
    assert all(st == COMPRESSED for st, _ in files.values())
    assert full_history(db, "u2") == want


def test_a_child_killed_after_any_of_its_writes_is_completed_by_the_next_run(tmp_path):
    """kill -9 of the child right after its k-th write was committed, for k
    spread over the whole run; then a run to the end: nothing lost, nothing
    twice, audit clean."""
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=10, per_day=1500, users=8)
    want = full_history(db, "u5")
    adir = archive_dir_of(None, db)
    store = Store(db)
    kills = 0
    try:
        for k in (1, 3, 5, 8, 12, 20):
            n = [0]
            child = []

            def write(stmts):
                store.write_batch(deletes=stmts, now=NOW)
                n[0] += 1
                if n[0] == k:
                    os.kill(child[0].pid, signal.SIGKILL)
                    child[0].wait()     # dead before its answer is written: a broken pipe
            report = run_child(_args(db), write, on_spawn=child.append)
            if child[0].returncode == -signal.SIGKILL:     # else it had finished first
                kills += 1
                assert report["errors"], report
            else:
                assert child[0].returncode == 0 and report["errors"] == [], report
            _check_exactly_once(db, adir, set(bets))
        report = run_child(_args(db), lambda stmts: store.write_batch(deletes=stmts, now=NOW))
    finally:
        store.close()
    assert report["errors"] == []
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert len(files) == 3 and all(st == COMPRESSED for st, _ in files.values())
    assert not [f for f in os.listdir(adir) if f.endswith((".building", ".tmp", ".db"))]
    assert full_history(db, "u5") == want
    assert kills >= 4


def test_a_write_the_writer_refuses_stops_the_child_and_the_next_run_resumes(tmp_path):
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=9, per_day=600, users=5)
    store = Store(db)
    calls = [0]

    def flaky(stmts):
        calls[0] += 1
        if calls[0] == 4:
            raise OSError("disk full (injected)")
        store.write_batch(deletes=stmts, now=NOW)
    try:
        report = run_child(_args(db), flaky)
        assert any("disk full (injected)" in e for e in report["errors"]), report
        assert calls[0] == 4            # the child went no further than the refused write
        report = run_child(_args(db), lambda stmts: store.write_batch(deletes=stmts, now=NOW))
    finally:
        store.close()
    assert report["errors"] == []
    _check_exactly_once(db, archive_dir_of(None, db), set(bets), final=True)


def _archive_children():
    """Pids of this process's archive children (from /proc)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == os.getpid() and b"archive._child" in cmd:
            out.append(int(pid))
    return out


def test_killing_the_servers_archive_child_loses_nothing(tmp_path):
    db = str(tmp_path / "live.db")
    now = int(time.time() * 1000)
    bets, _ = make_db(db, days=9, per_day=3000, now=now)
    cfg = Config(db=db, column_ms=1000, lock_ms=300, horizon_ms=3000, tick_interval_ms=100,
                 max_open_bets=10 ** 6, cell_liability_cap=10 ** 15, min_free_disk=0,
                 archive_every_s=0)
    system = ActorSystem()
    try:
        market = start_market(system, cfg, feed=SimFeed(seed=3, interval_ms=100))
        assert market.wait_ready(20)
        job = gevent.spawn(market.archive_now, 120)
        # the child is on its way once the first part's bets start leaving the hot DB
        before = len(hot_ids(db))
        wait_until(lambda: len(hot_ids(db)) < before or job.ready(), timeout=60)
        pids = _archive_children()
        assert pids and not job.ready()
        os.kill(pids[0], signal.SIGKILL)
        first = job.get(60)
        assert any("exited" in e for e in first["errors"]), first
        assert audit(db) == []
        again = market.archive_now(120)
        assert again["errors"] == [], again
    finally:
        system.stop()
    adir = archive_dir_of(None, db)
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert len(files) == 2 and all(st == COMPRESSED for st, _ in files.values())
