"""One writer per database, with real processes: a second server, credit and
archive refuse at once naming the holder; audit and backup (readers) run
beside it; a holder killed with SIGKILL does not block the next start."""
import json
import os
import signal
import subprocess
import sys
import time

from tests.support import ROOT, wait_until


def tapgrid(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "web.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=ROOT))


def test_second_writer_refused_readers_allowed(server_factory, tmp_path):
    db = str(tmp_path / "one.db")
    first = server_factory("--seed", "1", db=db)
    holder = json.load(open(db + ".lock"))
    assert holder["pid"] == first.pid

    t = time.monotonic()
    out = tapgrid("serve", "--db", db, "--port", "0", timeout=30)
    assert out.returncode != 0
    assert f"pid {first.pid}" in out.stderr and "started" in out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - t < 20        # refused at once, not after a timeout

    for args in (("credit", "bob", "100", "--db", db), ("archive", "--db", db)):
        out = tapgrid(*args)
        assert out.returncode != 0, args
        assert f"pid {first.pid}" in out.stderr, out.stderr

    out = tapgrid("audit", "--db", db)
    assert out.returncode == 0 and "audit ok" in out.stdout, out.stderr
    copy = str(tmp_path / "copy.db")
    out = tapgrid("backup", "--db", db, copy)
    assert out.returncode == 0, out.stderr
    out = tapgrid("audit", "--db", copy)
    assert out.returncode == 0, out.stderr
    assert first.alive()


def test_killed_holder_does_not_block(server_factory, tmp_path):
    db = str(tmp_path / "two.db")
    first = server_factory("--seed", "1", db=db)
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait()
    assert os.path.exists(db + ".lock")          # the stale file stays; the lock does not
    out = tapgrid("credit", "carol", "500", "--db", db)
    assert out.returncode == 0 and "balance 500" in out.stdout, out.stderr
    again = server_factory("--seed", "1", db=db)
    wait_until(lambda: json.load(open(db + ".lock"))["pid"] == again.pid, 5, what="new holder")
    assert again.alive()
