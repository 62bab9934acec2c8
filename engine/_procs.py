"""Supervised OS processes on gevent: the same idea as an actor supervisor,
one level down. A ``Child`` is a command that is started, restarted with
exponential backoff when it dies (the backoff starts over once a run has
lasted ``stable_s``), and stopped with SIGTERM, then SIGKILL after a grace
period. It dies with this process however this process dies, ``kill -9``
included: the kernel sends it SIGTERM (PR_SET_PDEATHSIG), and a child whose
parent was already gone by the time it could ask for that exits at once.

Readiness uses systemd's notify protocol, so the same program can run as a
``Type=notify`` unit: with ``notify_dir`` given, the child finds a datagram
socket in ``NOTIFY_SOCKET`` and sends ``READY=1`` once it serves
(``notify_ready()`` is the child's side).

    >>> import sys
    >>> c = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"]).start()
    >>> c.alive
    True
    >>> c.stop() in (-15, 0)
    True
"""
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time

import gevent
import gevent.socket
import gevent.subprocess
from gevent.event import Event

__all__ = ["Child", "ChildFailed", "die_with_parent", "notify_ready"]

log = logging.getLogger("engine.procs")

_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """A child exited before it said it was ready."""

    def __init__(self, name, returncode):
        super().__init__(f"{name} exited with {returncode} before it was ready")
        self.name, self.returncode = name, returncode


def die_with_parent(parent_pid, sig=signal.SIGTERM):
    """Run in the child between fork and exec (``preexec_fn``): ask the
    kernel for ``sig`` when the parent dies. The parent may have died in
    the instant before the request; then nobody would ever send it, so the
    child leaves instead."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):      # not Linux: the pipe-less best effort
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def notify_ready(status="READY=1"):
    """The child's side of the notify protocol: a no-op when nobody listens."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(status.encode(), path)
        except OSError:
            return False
    return True


class Child:
    """One supervised command. ``env`` replaces the environment when given;
    ``stdout``/``stderr`` are file objects or descriptors (default: ours);
    ``own_group`` puts it in a process group of its own."""

    def __init__(self, name, argv, *, env=None, cwd=None, stdout=None, stderr=None,
                 backoff=(0.5, 30.0), stable_s=10.0, notify_dir=None, own_group=False):
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.stdout, self.stderr = stdout, stderr
        self.backoff = backoff
        self.stable_s = stable_s
        self.own_group = own_group
        self.proc = None
        self.restarts = 0
        self.ready = Event()
        self.started_at = None
        self._stopping = False
        self._wake = Event()        # cuts a backoff wait short when stopping
        self._watch = None
        self._notify = None
        self._notify_path = None
        self._listener = None
        if notify_dir is not None:
            self._notify_path = os.path.join(notify_dir, f"notify-{name}.sock")
            if os.path.exists(self._notify_path):
                os.unlink(self._notify_path)
            # gevent's socket even without monkey-patching: recv waits cooperatively
            self._notify = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(self._notify_path)

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def _spawn(self):
        env = dict(os.environ if self.env is None else self.env)
        if self._notify_path:
            env["NOTIFY_SOCKET"] = self._notify_path
        parent, own_group = os.getpid(), self.own_group

        def preexec():
            die_with_parent(parent)
            if own_group:
                # A terminal's Ctrl-C (or a signal to our group) reaches only
                # the supervisor, which stops its children in order.
                os.setpgid(0, 0)

        self.ready.clear()
        self.proc = gevent.subprocess.Popen(
            self.argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=self.stdout, stderr=self.stderr, preexec_fn=preexec)
        self.started_at = time.monotonic()
        log.info("%s started (pid %d)", self.name, self.proc.pid)

    def start(self):
        self._spawn()
        if self._notify is not None:
            self._listener = gevent.spawn(self._listen)
        self._watch = gevent.spawn(self._supervise)
        return self

    def _listen(self):
        while True:
            data = self._notify.recv(4096)
            if b"READY=1" in data.split(b"\n"):
                self.ready.set()

    def wait_ready(self, timeout):
        """Until the child says READY=1; ChildFailed if it exits first,
        TimeoutError if it says nothing in time."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self.ready.is_set():
                raise ChildFailed(self.name, proc.returncode)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not become ready in {timeout} s")
        return self

    def _supervise(self):
        delay = self.backoff[0]
        while not self._stopping:
            rc = self.proc.wait()
            if self._stopping:
                return
            if time.monotonic() - self.started_at >= self.stable_s:
                delay = self.backoff[0]     # it ran a good while: this is a new failure
            log.error("%s exited %s; restarting in %.1f s", self.name, rc, delay)
            self._wake.wait(delay)
            delay = min(delay * 2, self.backoff[1])
            if not self._stopping:
                # Count once the new child is ours: Popen yields while it
                # forks, and a reader must not see restarts=N beside the dead one.
                self._spawn()
                self.restarts += 1

    def signal(self, sig):
        if self.alive:
            self.proc.send_signal(sig)

    def _terminate(self, timeout):
        if not self.alive:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in %.1f s: killed", self.name, timeout)
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=10.0):
        """SIGTERM, SIGKILL after ``timeout``; no restart after this.
        Returns the exit code (None if it never ran)."""
        self._stopping = True
        self._wake.set()
        self._terminate(timeout)
        if self._watch is not None:
            # It leaves at once now; a fork it had in flight is stopped below.
            self._watch.join(timeout)
            self._terminate(timeout)
        if self._listener is not None:
            self._listener.kill(block=False)
        if self._notify is not None:
            self._notify.close()
            try:
                os.unlink(self._notify_path)
            except OSError:
                pass
        return self.proc.returncode if self.proc is not None else None
