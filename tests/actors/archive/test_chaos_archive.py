"""Chaos: the disk fills during an archive run. The archiver runs in a child
process whose files may not grow past a limit (RLIMIT_FSIZE, SIGXFSZ
ignored: writes fail with EFBIG as on a full disk), at several limits so
the failure lands in different phases. Each time: every bet is exactly
once in the hot DB or a recorded archive file, the audit is clean and the
history a player sees is unchanged; then a run with room finishes the job."""
import os
import resource
import signal
import subprocess
import sys

import pytest

from actors.archive import COMPRESSED
from actors.archive import archive_dir_of
from tests.actors.archive.test_archive import (CHILD, NOW, ROOT, _check_exactly_once, full_history,
                                       make_db)


def _limited(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def archive_child(db, limit=None):
    return subprocess.run([sys.executable, "-c", CHILD, db, str(NOW)], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                          preexec_fn=_limited(limit) if limit else None, timeout=120)


@pytest.mark.timeout(240)
def test_the_disk_filling_during_an_archive_run_loses_nothing(tmp_path):
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=11, per_day=2000, users=20)      # 4 days past hot_days
    want = full_history(db, "u3")
    adir = archive_dir_of(None, db)
    db_size = os.path.getsize(db)
    failed = 0
    # Smaller than an archive file, then larger ones: the WAL and the hot DB
    # fill too once the limit is below their sizes.
    for limit in (16_384, 120_000, 400_000, db_size + 40_000):
        result = archive_child(db, limit)
        failed += result.returncode != 0 or b"'errors': []" not in result.stdout
        assert b"Traceback" not in result.stdout
        _check_exactly_once(db, adir, set(bets))
        assert full_history(db, "u3") == want
    assert failed >= 2, "the limits never made a run fail"
    result = archive_child(db)
    assert result.returncode == 0, result.stderr[-2000:]
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert files and all(st == COMPRESSED for st, _ in files.values())
    assert not [f for f in os.listdir(adir) if f.endswith((".building", ".tmp"))]
    assert full_history(db, "u3") == want


@pytest.mark.timeout(240)
def test_tapgrid_archive_on_a_full_disk_says_so_and_the_next_run_finishes(tmp_path):
    """The operator's command: no traceback, exit 1 and what to do, and
    nothing lost; run again with room, it finishes the job."""
    import time
    db = str(tmp_path / "hot.db")
    bets, _ = make_db(db, days=11, per_day=2000, users=20, now=int(time.time() * 1000))
    cmd = [sys.executable, "-m", "web.cli", "archive", "--db", db]
    full = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited(120_000))
    assert full.returncode == 1, (full.stdout, full.stderr)
    assert "Traceback" not in full.stderr + full.stdout, full.stderr
    assert full.stderr.startswith("tapgrid archive: the disk is full or failing"), full.stderr
    adir = archive_dir_of(None, db)
    _check_exactly_once(db, adir, set(bets))
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    files = _check_exactly_once(db, adir, set(bets), final=True)
    assert files and all(st == COMPRESSED for st, _ in files.values())
