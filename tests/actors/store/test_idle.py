"""Idle CPU priority for background work (actors/store/_idle.py) and the
backup that runs under it (actors/store/_backup.py)."""
import os
import threading

import pytest

from actors.store import FAVOUR_RT_PRIORITY, Store, backup, favour_thread, idle_priority


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


def test_idle_priority_puts_the_threads_io_in_the_idle_class_and_restores_it():
    from actors.store._idle import IO_IDLE, io_priority
    def run():
        before = io_priority()
        with idle_priority():
            inside = io_priority()
            child = _in_thread(io_priority)       # a thread started meanwhile inherits it
        return before, inside, child, io_priority()
    before, inside, child, after = _in_thread(run)
    assert inside[0] == IO_IDLE and child[0] == IO_IDLE
    assert after == before and before[0] != IO_IDLE


def test_backup_runs_at_idle_priority_and_copies_whole(tmp_path):
    db = str(tmp_path / "t.db")
    s = Store(db)
    uid = s.ensure_user("alice", credit=12345)
    s.close()
    out = str(tmp_path / "copy.db")
    r = _in_thread(lambda: (backup(db, out), os.sched_getscheduler(0)))
    assert r[0]["priority"] == "sched_idle" and r[1] == os.SCHED_OTHER
    assert r[0]["io_class"] == 3
    s = Store(out)
    try:
        assert s.conn.execute("SELECT balance FROM users WHERE id=?", (uid,)).fetchone()[0] == 12345
    finally:
        s.close()


def test_favour_thread_raises_only_the_calling_thread():
    def run():
        got = favour_thread()
        return got, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    got, policy, prio = _in_thread(run)
    if got is None:         # no CAP_SYS_NICE: left as it was
        assert policy == os.SCHED_OTHER
        return
    assert got == "fifo" and policy == os.SCHED_FIFO and prio == FAVOUR_RT_PRIORITY
    assert os.sched_getscheduler(0) == os.SCHED_OTHER      # this thread untouched


def test_the_writers_commit_thread_runs_ahead_of_the_event_loop(tmp_path, system):
    from actors import Config, EnsureUser, MarketContext, Writer
    db = str(tmp_path / "w.db")
    store = Store(db)
    ctx = MarketContext(Config(db=db))
    ctx.ledger.load(*store.load_state())
    writer = system.spawn(Writer, ctx, store)
    writer.ask(EnsureUser("alice", 1_000), timeout=60)     # the commit thread is up
    # the commit threads, by name, read from /proc: the Writer set them
    commit = []
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{tid}/comm") as f:
            if f.read().strip() == "commit":
                commit.append(int(tid))
    assert commit
    if os.geteuid() == 0:
        assert {os.sched_getscheduler(t) for t in commit} == {os.SCHED_FIFO}
        assert os.sched_getscheduler(0) == os.SCHED_OTHER       # the loop's own


def _commit_threads():
    found = set()
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{tid}/comm") as f:
                if f.read().strip() == "commit":
                    found.add(int(tid))
        except FileNotFoundError:        # a thread that ended meanwhile
            pass
    return found


@pytest.mark.parametrize("how, policy, nice", [("nice", os.SCHED_OTHER, -10),
                                               ("normal", os.SCHED_OTHER, 0)])
def test_commit_priority_chooses_how_the_commit_thread_is_favoured(tmp_path, system, how,
                                                                   policy, nice):
    from actors import Config, EnsureUser, MarketContext, Writer
    db = str(tmp_path / "w.db")
    store = Store(db)
    ctx = MarketContext(Config(db=db, commit_priority=how))
    ctx.ledger.load(*store.load_state())
    before = _commit_threads()
    writer = system.spawn(Writer, ctx, store)
    writer.ask(EnsureUser("alice", 1_000), timeout=60)
    mine = _commit_threads() - before
    assert len(mine) == 1
    (tid,) = mine
    if os.geteuid() != 0 and how == "nice":
        pytest.skip("lowering nice below 0 needs root or CAP_SYS_NICE")
    assert os.sched_getscheduler(tid) == policy
    assert os.getpriority(os.PRIO_PROCESS, tid) == nice


def test_commit_priority_is_checked():
    from actors import Config
    with pytest.raises(ValueError, match="commit_priority"):
        Config.load(env={"TAPGRID_COMMIT_PRIORITY": "realtime"})
