"""A private ``redis-server`` for ``tapgrid serve --gateways N`` without
``--redis``: owned by the supervisor, on a Unix socket in a 0700 directory
beside the database (no TCP port at all), supervised like the gateways and
killed with the supervisor.

Its append-only file (fsync every second) lives in the same directory, so
sessions and the taps stream survive a restart of Redis or of the whole
server. Money never depends on it: a bet is acknowledged only once the
market has committed it to SQLite, and the market is the final nonce judge.

The roles get it as ``--redis unix:///<db dir>/redis/redis.sock``.
"""
import fcntl
import logging
import os
import shutil
import stat
import sys
import tempfile
import time

import gevent

from engine import Child, ChildFailed

__all__ = ["PrivateRedis", "RedisMissing", "redis_server_path", "INSTALL_HINT"]

log = logging.getLogger("tapgrid.redis")

INSTALL_HINT = ("redis-server is not installed (not on PATH): install Redis 6.2 or newer "
                "(Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; "
                "macOS: brew install redis), or pass --redis URL to use a Redis you run")

# sockaddr_un's sun_path is 108 bytes on Linux, the terminating NUL included.
_SUN_PATH_MAX = 107


class RedisMissing(OSError):
    """No redis-server binary to start."""


def redis_server_path(name="redis-server"):
    found = shutil.which(name)
    if not found:
        raise RedisMissing(INSTALL_HINT)
    return found


def _private_dir(path):
    """Create ``path`` 0700, or accept it only if it is ours and 0700."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to us")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


class PrivateRedis:
    """``start()`` returns once Redis answers PING on its socket; ``url`` is
    what the roles get as ``--redis``."""

    def __init__(self, db_path, binary=None):
        self.binary = binary or redis_server_path()
        self.dir = _private_dir(os.path.join(os.path.dirname(os.path.abspath(db_path)), "redis"))
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self._sock_dir = None
        if len(self.socket_path) > _SUN_PATH_MAX:
            # A deep data directory: the socket goes to a short private one instead.
            self._sock_dir = tempfile.mkdtemp(prefix="tapgrid-redis-")
            self.socket_path = os.path.join(self._sock_dir, "redis.sock")
        # One owner per directory: a second supervisor on the same data
        # must not unlink the first one's socket.
        self._lock = open(os.path.join(self.dir, "owner.lock"), "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise OSError(f"another tapgrid serve owns the private Redis in {self.dir}") from None
        self.child = Child("redis", self.argv(), stdout=sys.stderr, stderr=sys.stderr,
                           cwd=self.dir, backoff=(0.2, 5.0), own_group=True)

    @property
    def url(self):
        return "unix://" + self.socket_path

    def argv(self):
        return [self.binary,
                "--port", "0",                       # no TCP listener
                "--unixsocket", self.socket_path, "--unixsocketperm", "700",
                "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--daemonize", "no", "--loglevel", "warning"]

    def session_secret(self):
        """A key for signing session records, kept (0600) beside Redis's
        data, so that a write to Redis cannot mint a session and sessions
        outlive a restart."""
        path = os.path.join(self.dir, "session_secret")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            with open(path) as f:
                return f.read().strip()
        import secrets
        key = secrets.token_hex(32)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key

    def _ping(self):
        import redis
        try:
            return redis.Redis(unix_socket_path=self.socket_path, socket_timeout=1,
                               socket_connect_timeout=1).ping()
        except (redis.RedisError, OSError):
            return False

    def start(self, timeout=15.0):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)     # left by a Redis that was killed: we hold the lock
        self.child.start()
        deadline = time.monotonic() + timeout
        while not self._ping():
            if not self.child.alive and self.child.restarts == 0:
                raise ChildFailed("redis-server", self.child.proc.returncode)
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server did not answer on {self.socket_path}")
            gevent.sleep(0.02)
        log.info("private redis-server on %s (pid %d)", self.socket_path, self.child.pid)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM: Redis flushes its append-only file, then exits."""
        rc = self.child.stop(timeout)
        if self._sock_dir:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
        self._lock.close()
        return rc
