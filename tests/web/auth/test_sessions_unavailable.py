"""A session store that cannot answer (Redis stalled or down) is the
server's trouble, not the player's: HTTP says 503 with Retry-After and the
WebSocket upgrade 503, never the 401 that would send a signed-in player
back to sign in. Once a stalled Redis answers again, the same token works."""
import http.client
import json
import signal
from urllib.parse import urlsplit

import pytest

from tests.serverproc import free_port
from tests.support import wait_until
from tests.web.auth.test_replay import NO_RATE_LIMIT
from tests.web.auth.test_replay_redis import own_redis  # noqa: F401  (fixture)
from web.auth import RedisSessions, SessionsUnavailable
from web.auth._tickets import RedisTickets
from web.client import TapgridClient, Wallet


def get(url, path, headers):
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_an_unreachable_redis_is_unavailable_not_an_unknown_token():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(SessionsUnavailable):
        RedisSessions(dead).get("A" * 43, 0)
    with pytest.raises(SessionsUnavailable):
        RedisTickets(dead).redeem("B" * 30)


@pytest.mark.timeout(120)
def test_redis_down_answers_503_and_the_token_survives(server_factory, own_redis):  # noqa: F811
    server = server_factory("--seed", "1", "--redis", own_redis.url, env=NO_RATE_LIMIT)
    client = TapgridClient(server.url)
    client.login(Wallet())
    auth = {"Authorization": "Bearer " + client.token}
    assert get(server.url, "/api/me", auth)[0] == 200
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}

    def refused_for_now():
        status, headers, body = get(server.url, "/api/me", auth)
        assert status == 503 and b'"overloaded"' in body and int(headers["Retry-After"]) >= 1
        status, headers, body = get(server.url, "/ws?token=" + client.token, upgrade)
        assert status == 503 and "Retry-After" in headers
        assert json.loads(body)["error"] == "overloaded", body     # JSON, a SPEC reason

    own_redis.proc.send_signal(signal.SIGSTOP)          # too slow: the reads time out
    try:
        refused_for_now()
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: get(server.url, "/api/me", auth)[0] == 200, timeout=20,
               what="the same token accepted once Redis answers again")
    own_redis.kill()                                     # down: the connection is refused
    refused_for_now()
