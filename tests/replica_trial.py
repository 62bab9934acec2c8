"""One disaster under load, for the replica test and perf/bench_ops.py:
a real ``tapgrid serve --replica file://...`` takes taps from real clients;
then the machine is lost at once (Litestream and the server SIGKILLed, the
database, WAL and shm deleted); ``tapgrid restore`` rebuilds it from the
replica; ``tapgrid audit`` checks it. The trial says which acknowledged bets
came back and how much acknowledged history was lost (the recovery point).

    from tests.replica_trial import run_trial
    r = run_trial("/tmp/t1", sync_ms=1000, load_s=5)
    r["lost_ms"], r["audit_rc"]
"""
import os
import signal
import subprocess
import sys
import time

import gevent

from tests.serverproc import LOAD_ENV, ROOT, ServerProcess
from tests.serverproc import children as _children

__all__ = ["run_trial", "tapgrid"]


def tapgrid(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "web.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=ROOT))


def _player(url, acked, stop):
    from web.client import TapgridClient
    c = TapgridClient(url, backoff_base=0.2, reconnect=False)
    c.guest()
    c.connect()
    c.wait_for(lambda: c.grid is not None, 15)
    try:
        while not stop[0]:
            cell = c.open_cell(offset_bands=(len(acked) % 5) - 2)
            if cell is None:
                gevent.sleep(0.05)
                continue
            try:
                ack = c.tap(cell[0], cell[1], 100, min_mult=101, timeout=10)
            except Exception:
                if stop[0]:
                    return
                raise
            if ack.get("ok"):
                acked.append((ack["bet"], time.time()))
    finally:
        c.close()


def run_trial(workdir, sync_ms=1000, load_s=5.0, players=6, seed=1):
    """A dict: acked [(bet, ack unix s)], kill_t, present (set of bet ids),
    lost_ms (kill time minus the oldest lost ack, 0 if none), audit_rc/out."""
    os.makedirs(workdir, exist_ok=True)
    db = os.path.join(workdir, "tapgrid.db")
    replica = "file://" + os.path.join(workdir, "replica")
    env = dict(LOAD_ENV, TAPGRID_LITESTREAM_ADDR="")
    server = ServerProcess(db, "--seed", str(seed), "--replica", replica, "--replica-sync-ms",
                           str(sync_ms), env=env).start()
    acked, stop = [], [False]
    try:
        jobs = [gevent.spawn(_player, server.url, acked, stop) for _ in range(players)]
        gevent.sleep(load_s)
        kids = _children(server.pid)
        kill_t = time.time()
        # the machine is gone: no final sync, no graceful anything
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
        server.kill()
        stop[0] = True
        gevent.joinall(jobs, timeout=15)
    finally:
        stop[0] = True
        server.kill()
    for pid in kids:
        while os.path.exists(f"/proc/{pid}") and _state(pid) not in ("Z", None):
            time.sleep(0.01)
    for side in ("", "-wal", "-shm"):
        if os.path.exists(db + side):
            os.remove(db + side)
    out = tapgrid("restore", "--replica", replica, "--db", db)
    if out.returncode != 0:
        raise RuntimeError("restore failed: " + out.stderr)
    audit = tapgrid("audit", "--db", db)
    import pysqlite3.dbapi2 as sqlite3
    conn = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
    present = {r[0] for r in conn.execute("SELECT id FROM bets")}
    conn.close()
    lost = [t for bet, t in acked if t <= kill_t and bet not in present]
    return {"db": db, "acked": acked, "kill_t": kill_t, "present": present,
            "lost": len(lost), "lost_ms": round((kill_t - min(lost)) * 1000, 1) if lost else 0.0,
            "audit_rc": audit.returncode, "audit_out": (audit.stdout + audit.stderr).strip(),
            "restore_out": out.stdout.strip()}


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
