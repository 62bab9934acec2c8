"""Shared fixtures, defined once: a running actor system, a temp database
path, a real redis-server on a free loopback port, servers in child
processes, a browser and its pages. The helpers tests import (wait_until, free_port, ServerProcess,
ROOT) live in tests/support.py."""
import shutil
import socket
import subprocess
import time

import pytest
from hypothesis import HealthCheck, settings

from tests.support import ServerProcess, free_port

# Property-based tests run a fixed, derandomised budget per test (set by
# each test with @settings(max_examples=...)), so `make test` takes the
# same time and finds the same things on every run; no example database.
settings.register_profile("tapgrid", deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile("tapgrid")


@pytest.fixture
def system():
    from engine import ActorSystem
    s = ActorSystem()
    yield s
    s.stop(timeout=5)


@pytest.fixture
def local_ws_server():
    """local_ws_server(app, scheme="ws", pre_start_hook=None, **server_kw) ->
    "ws://127.0.0.1:PORT": a gevent-websocket server running `app` (a test
    peer, e.g. one that plays an exchange); stopped at teardown."""
    from gevent.pywsgi import WSGIServer
    from geventwebsocket.handler import WebSocketHandler
    servers = []

    def start(app, scheme="ws", pre_start_hook=None, **kw):
        server = WSGIServer(("127.0.0.1", 0), app, log=None, handler_class=WebSocketHandler, **kw)
        server.pre_start_hook = pre_start_hook
        server.start()
        servers.append(server)
        return f"{scheme}://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.stop(timeout=1)


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


@pytest.fixture
def server_factory(tmp_path):
    """Start servers with extra flags: `server_factory("--seed", "1")`;
    all are stopped at the end of the test."""
    started = []

    def make(*args, db=None, start=True, env=None):
        s = ServerProcess(db or str(tmp_path / f"tapgrid{len(started)}.db"), *args, env=env)
        started.append(s)
        return s.start() if start else s

    yield make
    for s in started:
        s.kill()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """One demo server (sim feed, seed 1) shared by a test module."""
    db = str(tmp_path_factory.mktemp("live") / "tapgrid.db")
    s = ServerProcess(db, "--seed", "1").start()
    yield s
    s.kill()


@pytest.fixture
def ws_client(live_server):
    """A guest TapgridClient connected to the shared server, with a grid."""
    from web.client import TapgridClient
    clients = []

    def make(connect=True, **kw):
        c = TapgridClient(live_server.url, backoff_base=0.2, **kw)
        c.guest()
        if connect:
            c.connect()
            assert c.wait_for(lambda: c.grid is not None, 10), "no grid frame"
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright, one per test module (the
    browser tests share it; tests/web/browser.py says how it is launched)."""
    from playwright.sync_api import sync_playwright

    from tests.web.browser import launch
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        if not isinstance(b, str):
            b.close()


@pytest.fixture
def page_of(browser):
    """``page_of(url, phone=False, init_script=None, bindings=None)``:
    ``open_page`` on the module's browser, (page, watch); every context it
    opened is closed at the end of the test."""
    from tests.web.browser import open_page
    opened = []

    def make(url, phone=False, init_script=None, bindings=None):
        page, watch = open_page(browser, url, init_script=init_script, bindings=bindings, phone=phone)
        opened.append(page.context)
        return page, watch

    yield make
    for context in opened:
        context.close()
