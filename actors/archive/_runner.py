"""Running the archiver (``_archive``): inside the server as the
``Archiver`` actor, and offline as ``archive_offline`` (``tapgrid archive``).

In the server the job runs in a child process at idle CPU priority
(``_child``): its copy, read-back and lzma work take neither the GIL nor
CPU the server wants; its writes come back up a pipe and go through the
Writer (riding in the next batch's transaction), so a tap waits at most on
one small delete chunk. Offline, this process is
the writer. A lock file keeps it to one archiver per archive directory.

    >>> import tempfile, os
    >>> from actors import Config, Store
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "t.db"))
    >>> Store(cfg.db).close()
    >>> report = archive_offline(cfg)       # nothing is older than hot_days yet
    >>> report["files"], report["bets"], report["errors"]
    ([], 0, [])
"""
import fcntl
import logging
import os
import time

import gevent
import gevent.subprocess
from gevent.threadpool import ThreadPool

from engine import Actor

from ._child import run_child, run_steps
from ._job import archive_steps, new_report
from ._files import archive_dir_of
from ..store import Store
from .._writes import ArchiveStep

__all__ = ["Archiver", "archive_offline"]

log = logging.getLogger("tapgrid.archive")



class _Lock:
    """One archiver at a time per archive directory (server or command)."""

    def __init__(self, adir):
        os.makedirs(adir, exist_ok=True)
        self.fd = os.open(os.path.join(adir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.held = True
        except BlockingIOError:
            self.held = False

    def release(self):
        os.close(self.fd)   # drops the flock


def archive_offline(cfg, now_ms=None):
    """``tapgrid archive``: run the job to the end on the database file,
    writing through a ``Store`` (this process is then the writer). Returns
    the report dict (files made, bets moved, shipped, errors)."""
    if not os.path.exists(cfg.db):
        raise FileNotFoundError(cfg.db)
    adir = archive_dir_of(cfg.archive_dir, cfg.db)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    lock = _Lock(adir)
    report = new_report()
    if not lock.held:
        report["errors"].append("another archiver is running")
        lock.release()
        return report
    t = time.monotonic()
    store = Store(cfg.db, cfg.synchronous)
    try:
        gen = archive_steps(cfg.db, adir, now_ms, cfg.hot_days, cfg.archive_cmd,
                            cfg.archive_delete_shipped, report)
        run_steps(gen, lambda statements: store.write_batch(deletes=statements, now=now_ms))
        # the spans it emptied: dropped now, since no tap waits on this
        # process (a server drops them with its next new span)
        store.drop_retired()
    finally:
        store.close()
        lock.release()
    report["seconds"] = round(time.monotonic() - t, 3)
    return report


class Archiver(Actor):
    """The archiver inside the server: runs every ``archive_every_s`` (first
    a minute after start) and on ``ask("run")``. The job runs in a child
    process at idle priority; its deletes go through the Writer."""

    def __init__(self, ctx, first_s=60.0, pause_s=0.005):
        self.ctx = ctx
        self.first_s = first_s
        self.pause_s = pause_s

    def on_start(self):
        self.pool = ThreadPool(1)
        self.last = None
        self.child = None
        every = self.ctx.cfg.archive_every_s
        if every and every > 0:
            self.schedule_every(every, "tick", first=min(self.first_s, every))

    def on_stop(self):
        if self.child is not None and self.child.poll() is None:
            self.child.kill()       # what it leaves, the next run completes
        self.pool.kill()

    def receive(self, msg):
        if msg in ("tick", "run"):
            try:
                self.last = self._run()
            except Exception as exc:
                log.exception("archive run failed")
                self.last = dict(new_report(), errors=[repr(exc)])
                if msg == "run":
                    raise
            return self.last
        if msg == "status":
            return self.last
        raise ValueError(f"archiver: unknown message {msg!r}")

    def _run(self):
        cfg = self.ctx.cfg
        adir = archive_dir_of(cfg.archive_dir, cfg.db)
        lock = self.pool.apply(_Lock, (adir,))
        if not lock.held:
            lock.release()
            return dict(new_report(), errors=["another archiver is running"])
        t = time.monotonic()
        args = {"db": cfg.db, "adir": adir, "now_ms": self.ctx.now(), "hot_days": cfg.hot_days,
                "archive_cmd": cfg.archive_cmd, "delete_shipped": cfg.archive_delete_shipped}
        try:
            report = run_child(args, self._write, popen=gevent.subprocess.Popen,
                               on_spawn=self._spawned)
        finally:
            self.child = None
            lock.release()
        report["seconds"] = round(time.monotonic() - t, 3)
        return report

    def _spawned(self, proc):
        self.child = proc

    def _write(self, statements):
        # Answer the child only after as long again as the step took: at
        # most every other Writer batch then carries a delete chunk (each
        # rewrites ~1 KB of index pages per bet: the cost taps feel).
        t = time.monotonic()
        self.ctx.writer.ask(ArchiveStep(statements), timeout=60)
        gevent.sleep(max(self.pause_s, time.monotonic() - t))
