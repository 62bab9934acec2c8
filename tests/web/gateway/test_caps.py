"""Per-client limits on the WebSocket side (issue 15, findings 5 and 6),
probed on loopback against real servers: connection caps per user and per
address, one tap bucket per user across connections, bad signatures as
strikes, a bounded send buffer, and a global handshake budget that bogus
tokens cannot drain. Each limit shows in /metrics."""
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.feeds import WSHandshakeError
from tests.support import wait_until
from tests.web.gateway.test_limits import guest, masked_text, raw_upgrade, unsent_to, upgrade
from tests.web.auth.test_session_end import wait_closed

import urllib.request


def metric(server, metric_name, **labels):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_connections_per_user_are_capped(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_MAX_CONNS_PER_USER": "3"})
    c = guest(s)
    socks = [upgrade(s, c.token) for _ in range(3)]
    with pytest.raises(WSHandshakeError) as err:
        upgrade(s, c.token)
    assert err.value.status == 429 and err.value.retry_after
    upgrade(s, guest(s).token).close()             # another player is not affected
    socks.pop().close()
    wait_until(lambda: _try(s, c.token), timeout=10, what="a slot to free up")
    assert metric(s, "tapgrid_connections_limited_total", reason="per_user") >= 1
    assert metric(s, "tapgrid_limit", name="max_conns_per_user") == 3
    for ws in socks:
        ws.close()


def _try(s, token):
    try:
        upgrade(s, token).close()
        return True
    except WSHandshakeError:
        return False


def test_connections_per_address_are_capped(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_MAX_CONNS_PER_ADDRESS": "4"})
    socks = [upgrade(s, guest(s).token) for _ in range(4)]
    with pytest.raises(WSHandshakeError) as err:
        upgrade(s, guest(s).token)
    assert err.value.status == 429
    assert metric(s, "tapgrid_connections_limited_total", reason="per_address") >= 1
    for ws in socks:
        ws.close()


def test_one_tap_bucket_per_user_across_connections(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_TAP_RATE": "0.001", "TAPGRID_TAP_BURST": "3"})
    a = guest(s)
    a.connect()
    b = guest(s)                       # a second socket on the same session
    b.token, b.signer = a.token, a.signer
    b.connect()
    assert a.wait_for(lambda: a.grid is not None and a.open_cell() is not None, 10)
    acks = []
    for i in range(8):
        who = a if i % 2 == 0 else b
        col, lo, _ = a.open_cell()
        acks.append(who.tap(col, lo, 100, timeout=10))
    taken = [x for x in acks if x["ok"]]
    limited = [x for x in acks if not x["ok"] and x["reason"] == "rate_limited"]
    assert len(taken) <= 3 and len(limited) >= 5, acks
    a.close()
    b.close()


def test_bad_signatures_are_strikes(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_MAX_STRIKES": "5"})
    c = guest(s)
    c.reconnect = False
    c.connect()
    assert c.wait_for(lambda: c.grid is not None and c.open_cell() is not None, 10)
    ws = upgrade(s, c.token)
    col, lo, _ = c.open_cell()
    for _ in range(10):
        frame, _ = c.signed_tap(col, lo, 100, 101)
        frame["sig"] = frame["sig"][:-4] + ("AAAA" if not frame["sig"].endswith("AAAA") else "BBBB")
        try:
            ws.send_text(json.dumps(frame))
        except Exception:
            break
    assert wait_closed(ws) == 1008
    assert metric(s, "tapgrid_connections_limited_total", reason="strikes") >= 1
    c.close()


def test_a_reader_past_its_send_buffer_is_cut_off(server_factory):
    """12,000 pongs never read: past the kernel's 256 KiB the queue grows in
    the server; with an 8 KiB bound the client is cut off long before the
    old 20,000-frame limit would have fired."""
    s = server_factory("--seed", "1", env={"TAPGRID_MAX_SEND_BUFFER": "8192"})
    c = guest(s)
    slow = raw_upgrade(s, c.token)
    port = slow.getsockname()[1]
    try:
        try:
            slow.sendall(masked_text(b'{"type":"ping"}') * 12_000)
        except OSError:
            pass
        wait_until(lambda: unsent_to(s, port) is None, timeout=30,
                   what="the server to cut off the slow reader")
        assert metric(s, "tapgrid_connections_limited_total", reason="slow_reader") >= 1
    finally:
        slow.close()


def test_bogus_upgrades_do_not_drain_the_handshake_budget(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_HANDSHAKE_RATE": "5"})
    c = guest(s)
    for _ in range(60):
        with pytest.raises(WSHandshakeError) as err:
            upgrade(s, "not-a-token")
        assert err.value.status == 401
    upgrade(s, c.token).close()          # before the fix: 503, the budget was gone


def test_upgrades_per_address_are_rate_limited(server_factory):
    s = server_factory("--seed", "1", env={"TAPGRID_HANDSHAKE_RATE_PER_ADDRESS": "2"})
    statuses = []
    for _ in range(6):
        try:
            upgrade(s, "not-a-token")
        except WSHandshakeError as e:
            statuses.append(e.status)
    assert statuses[:2] == [401, 401] and 429 in statuses, statuses
    assert metric(s, "tapgrid_connections_limited_total", reason="address_rate") >= 1
