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
