"""Idle CPU priority for background work (actors/store/_idle.py) and the
backup that runs under it (actors/store/_backup.py)."""
import os
import threading

from actors.store import Store, backup, idle_priority


def _in_thread(fn):
    # the policy is per thread on Linux: a thread of its own keeps the test's untouched
    out = []
    th = threading.Thread(target=lambda: out.append(fn()))
    th.start()
    th.join()
    return out[0]


def test_idle_priority_lowers_the_thread_and_restores_it():
    def run():
        before = os.sched_getscheduler(0)
        with idle_priority() as how:
            inside = os.sched_getscheduler(0)
        return before, how, inside, os.sched_getscheduler(0)
    before, how, inside, after = _in_thread(run)
    assert how == "sched_idle" and inside == os.SCHED_IDLE
    assert before == after == os.SCHED_OTHER


def test_backup_runs_at_idle_priority_and_copies_whole(tmp_path):
    db = str(tmp_path / "t.db")
    s = Store(db)
    uid = s.ensure_user("alice", credit=12345)
    s.close()
    out = str(tmp_path / "copy.db")
    r = _in_thread(lambda: (backup(db, out), os.sched_getscheduler(0)))
    assert r[0]["priority"] == "sched_idle" and r[1] == os.SCHED_OTHER
    s = Store(out)
    try:
        assert s.conn.execute("SELECT balance FROM users WHERE id=?", (uid,)).fetchone()[0] == 12345
    finally:
        s.close()
