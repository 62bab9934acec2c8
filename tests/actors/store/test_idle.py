"""Idle CPU priority for background work (actors/store/_idle.py) and the
backup that runs under it (actors/store/_backup.py)."""
import os
import threading

from actors.store import FAVOUR_NICE, Store, backup, favour_thread, idle_priority


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


def test_favour_thread_raises_only_the_calling_thread():
    def run():
        got = favour_thread(-5)
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        return got, mine
    process_before = os.getpriority(os.PRIO_PROCESS, 0)
    got, mine = _in_thread(run)
    if os.geteuid() != 0 and got is None:      # no CAP_SYS_NICE: left as it was
        return
    assert got == mine == -5
    assert os.getpriority(os.PRIO_PROCESS, 0) == process_before     # this thread untouched


def test_the_writers_commit_thread_runs_ahead_of_the_event_loop(tmp_path):
    from engine import ActorSystem
    from actors import Config, EnsureUser, MarketContext, Writer
    cfg = Config(db=str(tmp_path / "w.db"))
    system = ActorSystem()
    try:
        writer = system.spawn(Writer, MarketContext(cfg))
        writer.ask(EnsureUser("alice", 1_000), timeout=10)     # the commit thread is up
        # the commit thread, by name, read from /proc: the Writer set it
        threads = {}
        for tid in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{tid}/comm") as f:
                threads.setdefault(f.read().strip(), []).append(int(tid))
        assert "commit" in threads, threads
        nices = [os.getpriority(os.PRIO_PROCESS, t) for t in threads["commit"]]
        loop = os.getpriority(os.PRIO_PROCESS, 0)
        if os.geteuid() == 0:
            assert min(nices) == FAVOUR_NICE < loop
    finally:
        system.stop()
