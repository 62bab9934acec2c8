"""web/cli.py: what ``main`` does before it loads the package."""
import os
import subprocess
import sys

from actors.store import Store
from tests.support import ROOT

_PROBE = """
import os, sys
import web.cli as cli
seen = []
real = cli.load_config
def load_config(args):
    seen.append((os.sched_getscheduler(0) == os.SCHED_IDLE, "actors" in sys.modules))
    return real(args)
cli.load_config = load_config
rc = cli.main(["backup", "--db", sys.argv[1], sys.argv[2]])
print(rc, seen)
"""


def test_backup_drops_to_idle_cpu_before_it_imports_the_package(tmp_path):
    # Loading the package is most of a backup's CPU; a live server's taps
    # come first from the start, not from after the imports.
    db, out = str(tmp_path / "t.db"), str(tmp_path / "copy.db")
    Store(db).close()
    r = subprocess.run([sys.executable, "-c", _PROBE, db, out], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[-2] == "0 [(True, False)]", r.stdout
    assert os.path.getsize(out) > 0
