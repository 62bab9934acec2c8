"""A replica off the box, under load, with real processes: `tapgrid serve
--replica file://...` (Litestream as its supervised child) takes taps; the
machine is lost (Litestream and the server SIGKILLed, db, WAL and shm
deleted); `tapgrid restore` rebuilds the database; the audit is clean, every
bet acked more than the recovery point before the loss is there, and the
server starts again on it."""
import os

from tests.replica_trial import run_trial, tapgrid
from tests.support import ServerProcess

SYNC_MS = 500
# Litestream ships the WAL every SYNC_MS; one upload and a loaded machine on top
RECOVERY_POINT_S = 3.0


def test_lost_disk_is_restored_from_the_replica(tmp_path):
    r = run_trial(str(tmp_path / "t"), sync_ms=SYNC_MS, load_s=6.0)
    assert len(r["acked"]) > 100, "too little load to mean anything"
    assert r["audit_rc"] == 0, r["audit_out"]
    old = [bet for bet, t in r["acked"] if t < r["kill_t"] - RECOVERY_POINT_S]
    assert old, "no bet acked before the recovery point"
    missing = [bet for bet in old if bet not in r["present"]]
    assert not missing, f"{len(missing)} bets acked > {RECOVERY_POINT_S} s before the loss are gone"
    # nothing unacked was invented: every restored bet id is one the server assigned in order
    assert max(r["present"]) <= max(b for b, _ in r["acked"]) + 1000

    again = ServerProcess(r["db"], "--seed", "1", env={"TAPGRID_LITESTREAM_ADDR": ""}).start()
    try:
        assert again.alive()
    finally:
        assert again.stop() == 0
    assert tapgrid("audit", "--db", r["db"]).returncode == 0


def test_restore_refuses_to_overwrite_a_database(tmp_path):
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    out = tapgrid("restore", "--replica", f"file://{tmp_path}/none", "--db", str(db))
    assert out.returncode != 0 and "exists" in out.stderr
    assert os.path.getsize(db) == 0


def test_litestream_is_supervised_restarted_and_dies_with_the_server(tmp_path):
    import signal
    import time
    import urllib.request

    from tests.replica_trial import _children
    from tests.support import wait_until
    s = ServerProcess(str(tmp_path / "s.db"), "--seed", "1", "--replica",
                      f"file://{tmp_path}/replica", env={"TAPGRID_LITESTREAM_ADDR": ""}).start()
    try:
        first = wait_until(lambda: _children(s.pid), 10, what="litestream child")
        os.kill(first[0], signal.SIGKILL)
        again = wait_until(lambda: [p for p in _children(s.pid) if p not in first], 15,
                           interval=0.1, what="litestream restarted")

        def metric(name):
            with urllib.request.urlopen(s.url + "/metrics", timeout=5) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " "):
                        return float(line.split()[1])
        wait_until(lambda: metric("tapgrid_replica_restarts") == 1.0, 10, what="restart counted")
        assert metric("tapgrid_replica_up") == 1.0
        s.kill()            # SIGKILL: the child gets SIGTERM from the kernel (PDEATHSIG)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{again[0]}") and time.monotonic() < deadline:
            with open(f"/proc/{again[0]}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{again[0]}") or open(
            f"/proc/{again[0]}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        s.kill()
