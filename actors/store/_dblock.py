"""One writer per database: an OS lock on ``<db>.lock`` held while a
``Store`` is open.

``flock`` belongs to the open file, so the kernel drops it when the holder
dies, however it dies (``kill -9`` included): a stale lock file never blocks
the next start, only a live holder does. The holder writes its pid, start
time and command line into the file so the refusal can name it. Readers
(``tapgrid audit``, ``tapgrid backup``, history) never take it: WAL lets them
read beside the writer.

Within one process the lock is shared (counted): tests and the offline
commands may open a second ``Store`` on the file they already hold.

    >>> import tempfile, os
    >>> db = os.path.join(tempfile.mkdtemp(), "t.db")
    >>> lock = acquire(db)
    >>> holder(db)["pid"] == os.getpid()
    True
    >>> release(lock)
"""
import fcntl
import json
import os
import sys
import threading
import time

__all__ = ["DatabaseLocked", "acquire", "release", "holder", "lock_path",
           "acquire_lock", "release_lock", "lock_holder"]

_held = {}          # realpath -> [fd, count]
_guard = threading.Lock()


class DatabaseLocked(OSError):
    """Another live process writes this database."""


def lock_path(db_path):
    return os.path.abspath(db_path) + ".lock"


def holder(db_path):
    """What the lock file says about its holder (a dict), or None."""
    try:
        with open(lock_path(db_path)) as f:
            return json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None


def _describe(info, db_path):
    if not info:
        return f"{db_path} is in use by another process (it has not written its name yet)"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("started_ms", 0) / 1000))
    return (f"{db_path} is in use by pid {info.get('pid')} ({info.get('cmd', '?')}, started"
            f" {started}); one process writes a database: stop that one first"
            " (tapgrid audit and tapgrid backup only read, and run beside it)")


def acquire(db_path):
    """Take the database's writer lock or raise ``DatabaseLocked`` at once."""
    key = os.path.realpath(lock_path(db_path))
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
            return key
        os.makedirs(os.path.dirname(key), exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseLocked(_describe(holder(db_path), db_path)) from None
        info = {"pid": os.getpid(), "started_ms": _process_start_ms(),
                "cmd": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:2]) if sys.argv else "?"}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[key] = [fd, 1]
        return key


def release(key):
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            os.close(entry[0])      # drops the flock; the file stays (harmless)


def _process_start_ms():
    """This process's start time (Linux /proc), else now."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return int((boot + ticks / os.sysconf("SC_CLK_TCK")) * 1000)
    except (OSError, ValueError, StopIteration, IndexError):
        return int(time.time() * 1000)


# the names the package exports
acquire_lock, release_lock, lock_holder = acquire, release, holder
