"""Shared fixtures, defined once: a running actor system, a temp database
path, a real redis-server on a free loopback port, and a small helper to wait
on a condition instead of sleeping a fixed time."""
import os
import shutil
import socket
import subprocess
import time

import gevent
import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=5.0, interval=0.005, what="condition"):
    """Poll `predicate` cooperatively until it is truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        gevent.sleep(interval)


@pytest.fixture
def system():
    from engine import ActorSystem
    s = ActorSystem()
    yield s
    s.stop(timeout=5)


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "tapgrid.db")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port, stopped at the end.
    CI installs the binary (`.ci/run`); a machine without it fails loudly."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
    yield url
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def redis_url(redis_server):
    """The session's redis-server, flushed so each test starts empty."""
    import redis
    r = redis.Redis.from_url(redis_server)
    r.flushall()
    r.close()
    return redis_server
