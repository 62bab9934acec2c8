"""A replay that Redis forgets (issue 9, hole 1): with `--redis` and Redis
without persistence, a tap is acked, the same frame is refused, Redis
restarts (or is flushed, or its nonce keys are evicted), and the same frame
must still be refused: the nonce store's epoch refuses taps signed before
Redis lost its memory, and the market refuses a nonce it has already taken.
The balance is debited once. Also across a server restart."""
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from tests.support import free_port, wait_until
from tests.web.auth.test_replay import NO_RATE_LIMIT, bets_with_nonce, captured_tap, send_one
from web.client import TapgridClient, Wallet


class RedisProcess:
    """A redis-server of this test's own (no persistence) that it can kill
    and start again on the same port."""

    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                assert self.proc.poll() is None, "redis-server exited"
                return False
        wait_until(up, timeout=10, what="redis-server listening")
        return self

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def client(self):
        return redis.Redis.from_url(self.url)


@pytest.fixture
def own_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    r = RedisProcess(tmp_path).start()
    yield r
    r.kill()


def forget(how, red):
    """Make Redis lose the nonces, as a restart, a FLUSHALL or an eviction does."""
    if how == "restart":
        red.kill()
        red.start()
    elif how == "flushall":
        c = red.client()
        c.flushall()
        c.close()
    else:   # eviction: the nonce keys go (the epoch and the sessions stay)
        c = red.client()
        keys = c.keys("tapgrid:n:*")
        assert keys
        c.delete(*keys)
        c.close()


@pytest.mark.parametrize("how", ["restart", "flushall", "evict"])
def test_the_same_frame_after_redis_forgets_is_refused(server_factory, own_redis, how):
    server = server_factory("--seed", "1", "--redis", own_redis.url, env=NO_RATE_LIMIT)
    wallet = Wallet()
    client = TapgridClient(server.url)
    client.login(wallet)
    start_balance = client.me()["balance"]
    _, text, nonce = captured_tap(server, client, margin_ms=10_000)

    assert send_one(server, client.token, text, nonce)["ok"] is True
    assert send_one(server, client.token, text, nonce)["reason"] == "replay"

    forget(how, own_redis)
    if how != "evict":
        client.login(wallet)              # the sessions lived in Redis too; same key
    again = wait_until(lambda: (lambda a: a if a["reason"] != "overloaded" else None)(
        send_one(server, client.token, text, nonce)), timeout=10, what="Redis back")
    assert again["ok"] is False
    # Restart or flush: the epoch moved past the tap's ts. Eviction of the
    # nonce keys only: the store says fresh, the market says replay.
    assert again["reason"] == ("replay" if how == "evict" else "expired")
    assert bets_with_nonce(server.db, nonce) == 1
    assert client.me()["balance"] == start_balance - 100

    # Service resumes by itself: a fresh tap is taken.
    _, fresh, fresh_nonce = captured_tap(server, client, margin_ms=3000)
    assert send_one(server, client.token, fresh, fresh_nonce)["ok"] is True

    # And after a server restart on the same database (Redis forgetting
    # again meanwhile), the old frame is still refused.
    assert server.stop() == 0
    forget(how, own_redis)
    server.start()
    if how != "evict":
        client.login(wallet)
    last = send_one(server, client.token, text, nonce)
    assert last["ok"] is False and last["reason"] in ("replay", "expired")
    if how == "evict":
        assert last["reason"] == "replay"     # the market's record, rebuilt from the DB
    assert bets_with_nonce(server.db, nonce) == 1
    assert client.me()["balance"] == start_balance - 200


def test_a_real_lru_eviction_does_not_let_the_replay_through(server_factory, own_redis):
    """maxmemory with allkeys-lru, then enough other data that Redis evicts
    the nonce (and maybe the epoch and the session: the connection is
    already open). The same frame on the same connection is still refused."""
    from tests.web.auth.test_replay import open_ws, read_acks
    server = server_factory("--seed", "1", "--redis", own_redis.url, env=NO_RATE_LIMIT)
    client = TapgridClient(server.url)
    client.login(Wallet())
    _, text, nonce = captured_tap(server, client, margin_ms=10_000)
    ws = open_ws(server.url, client.token)
    try:
        ws.send_text(text)
        assert read_acks(ws, 1)[0]["ok"] is True
        r = own_redis.client()
        nonce_keys = r.keys("tapgrid:n:*")
        assert nonce_keys
        r.config_set("maxmemory-policy", "allkeys-lru")
        r.config_set("maxmemory", str(max(r.info("memory")["used_memory"] + (1 << 20), 4 << 20)))
        junk = b"x" * 4096
        i = 0
        while any(r.exists(k) for k in nonce_keys):
            pipe = r.pipeline(transaction=False)
            for _ in range(256):
                pipe.set(f"junk:{i}", junk)
                i += 1
            pipe.execute()
            assert i < 200_000, "Redis never evicted the nonce"
        assert r.info("stats")["evicted_keys"] > 0
        r.close()
        ws.send_text(text)
        again = read_acks(ws, 1)[0]
        assert again["ok"] is False and again["reason"] in ("replay", "expired"), again
        assert bets_with_nonce(server.db, nonce) == 1
    finally:
        ws.close()
