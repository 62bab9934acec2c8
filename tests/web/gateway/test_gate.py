"""The HandshakeGate (web/gateway/_gate.py): at most ``handshake_concurrency``
upgrades worked on at once; more wait in order for a slot, up to
``handshake_queue`` of them and ``handshake_wait_s`` each; beyond that, a
503 with Retry-After and a JSON reason (SPEC section 9). Before the gate,
``accept_batch`` connections at most are accepted per loop turn. A real
server (one slot, a queue of one); the test holds the slot through the
server's backdoor console, so nothing depends on timing."""
import json
import os
import shutil
import socket
import tempfile
import threading
import urllib.request

import gevent
import pytest

from tests.support import CONSOLE_PROMPT, ServerProcess, console_line, raw_upgrade as upgrade, wait_until
from web.client import TapgridClient
from web.gateway._gate import HandshakeGate, TurnPacer

def console(path, expr):
    """``repr(expr)`` evaluated in the server, through its backdoor."""
    out = console_line(path, f"print(repr({expr}))")[1]
    assert out.endswith(CONSOLE_PROMPT), "the console hung up"
    return out[:-len(CONSOLE_PROMPT)].decode().strip()


@pytest.fixture(scope="module")
def gated():
    top = tempfile.mkdtemp(prefix="tapgrid-gate-")
    path = os.path.join(top, "console", "backdoor.sock")
    server = ServerProcess(os.path.join(top, "tapgrid.db"), "--seed", "1", "--backdoor", path,
                           env={"TAPGRID_HANDSHAKE_CONCURRENCY": "1", "TAPGRID_HANDSHAKE_QUEUE": "1",
                                "TAPGRID_HANDSHAKE_WAIT_S": "60", "TAPGRID_ACCEPT_BATCH": "2"}).start()
    wait_until(lambda: os.path.exists(path), timeout=10, what="the backdoor socket")
    yield server, path
    server.kill()
    shutil.rmtree(top, ignore_errors=True)


def _metric(server, line_start):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return [line for line in text.splitlines() if line.startswith(line_start)]


def test_upgrades_queue_for_a_slot_and_beyond_the_queue_get_503_with_a_reason(gated):
    server, path = gated
    players = [TapgridClient(server.url) for _ in range(3)]
    for p in players:
        p.guest()
    gate = "server.gateway.gate"
    assert console(path, f"{gate}.enter()") == "True"       # the one slot, held by the test
    try:
        waiting = {}
        t = threading.Thread(target=lambda: waiting.update(r=upgrade(server.port, players[0].token)))
        t.start()
        wait_until(lambda: console(path, f"len({gate}.waiting)") == "1", timeout=10,
                   what="the first upgrade queued at the gate")
        assert "r" not in waiting                           # it waits: no answer yet

        # the queue (of one) is full: the next upgrade is refused at once
        status, headers, body = upgrade(server.port, players[1].token)
        assert status == 503 and headers["retry-after"] == "1", (status, headers, body)
        assert headers["content-type"] == "application/json"
        refusal = json.loads(body)
        assert refusal["error"] == "overloaded" and "upgrades" in refusal["detail"], refusal
        assert console(path, f"{gate}.refused") == "1"
    finally:
        console(path, f"{gate}.leave()")                   # the slot goes to the one queued
    t.join(20)
    assert waiting["r"][0] == 101
    # its slot is freed once its first frames are out: the next one gets in at once
    wait_until(lambda: console(path, f"({gate}.busy, len({gate}.waiting))") == "(0, 0)",
               timeout=10, what="the slot given back after the welcome")
    assert upgrade(server.port, players[2].token)[0] == 101
    assert _metric(server, "tapgrid_handshakes_gate_refused_total") == [
        "tapgrid_handshakes_gate_refused_total 1.0"]
    assert _metric(server, "tapgrid_handshakes_queued_total") == ["tapgrid_handshakes_queued_total 1.0"]
    assert _metric(server, 'tapgrid_limit{name="handshake_concurrency"}') == [
        'tapgrid_limit{name="handshake_concurrency"} 1.0']


def test_an_upgrade_that_waits_too_long_is_refused_and_leaves_the_queue(gated):
    server, path = gated
    player = TapgridClient(server.url)
    player.guest()
    gate = "server.gateway.gate"
    before = int(console(path, f"{gate}.refused"))
    console(path, f"setattr({gate}, 'wait_s', 0.2)")
    assert console(path, f"{gate}.enter()") == "True"
    try:
        status, headers, body = upgrade(server.port, player.token)
    finally:
        console(path, f"{gate}.leave()")
        console(path, f"setattr({gate}, 'wait_s', 60)")
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(body)["error"] == "overloaded"
    assert console(path, f"({gate}.busy, len({gate}.waiting), {gate}.refused)") == f"(0, 0, {before + 1})"
    assert upgrade(server.port, player.token)[0] == 101


def test_an_upgrade_let_in_after_the_server_filled_up_is_refused(gated):
    server, path = gated
    player = TapgridClient(server.url)
    player.guest()
    gate, cfg = "server.gateway.gate", "server.gateway.cfg"
    limit = console(path, f"{cfg}.max_connections")
    assert console(path, f"{gate}.enter()") == "True"
    try:
        waiting = {}
        t = threading.Thread(target=lambda: waiting.update(r=upgrade(server.port, player.token)))
        t.start()
        wait_until(lambda: console(path, f"len({gate}.waiting)") == "1", timeout=10,
                   what="the upgrade queued at the gate")
        # while it waits, the server fills up: no room left when its turn comes
        console(path, f"setattr({cfg}, 'max_connections', len(server.hub.conns))")
    finally:
        console(path, f"{gate}.leave()")
    t.join(20)
    console(path, f"setattr({cfg}, 'max_connections', {limit})")
    status, headers, body = waiting["r"]
    assert status == 503 and json.loads(body)["error"] == "overloaded", (status, body)
    assert "too many connections" in json.loads(body)["detail"]
    assert console(path, f"({gate}.busy, len({gate}.waiting))") == "(0, 0)"
    assert upgrade(server.port, player.token)[0] == 101


def test_a_loop_turn_accepts_a_few_connections_and_the_rest_wait_their_turn(gated):
    # accept_batch: at most 2 accepted per loop turn; 40 at once all get in all the same
    server, path = gated
    assert console(path, "server.http.max_accept") == "2"
    player = TapgridClient(server.url)
    player.guest()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(40)]
    try:
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = [s.recv(64) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
    assert upgrade(server.port, player.token)[0] == 101


def test_a_slot_handed_over_goes_to_the_longest_waiter():
    gate = HandshakeGate(limit=1, queue=2, wait_s=30)
    assert gate.enter()
    order = []
    waiters = [gevent.spawn(lambda i=i: order.append((i, gate.enter()))) for i in range(2)]
    gevent.sleep(0)
    assert len(gate.waiting) == 2 and gate.enter() is False     # a third: the queue is full
    gate.leave()
    gevent.sleep(0)
    assert order == [(0, True)] and gate.busy == 1
    gate.leave()
    gevent.joinall(waiters, timeout=5)
    assert order == [(0, True), (1, True)]
    gate.leave()
    assert gate.busy == 0 and not gate.waiting and gate.refused == 1 and gate.queued == 2



def test_the_pacer_lets_a_few_upgrades_go_per_loop_turn_in_arrival_order():
    pacer = TurnPacer(per_turn=3)
    went = []

    def upgrade(i):
        pacer.pace()
        went.append((i, gevent.get_hub().loop.iteration))

    greenlets = [gevent.spawn(upgrade, i) for i in range(10)]
    gevent.sleep(0)
    # the fourth and later wait for a later turn; one of them is killed (its client went)
    assert [i for i, _ in went] == [0, 1, 2] and pacer.waiting == 7
    greenlets[5].kill()
    gevent.joinall(greenlets, timeout=5)
    assert [i for i, _ in went] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    per_turn = {}
    for _, turn in went:
        per_turn[turn] = per_turn.get(turn, 0) + 1
    assert max(per_turn.values()) == 3 and len(per_turn) >= 3
    assert pacer.waiting == 0 and not pacer.line.timing
    gevent.sleep(0.001)                 # a later, quiet turn: straight through
    pacer.pace()
    assert pacer.parked == 7


def test_a_pacer_of_zero_never_parks():
    pacer = TurnPacer(per_turn=0)
    for _ in range(100):
        pacer.pace()
    assert pacer.parked == 0


def test_a_slot_handed_over_as_the_wait_runs_out_is_taken_not_lost():
    # The wait's timeout and the leave() that hands the slot over fall due in
    # the same loop turn: the waiter found its Event gone from the line and
    # raised, and the slot it had been handed was never given back.
    import time
    gate = HandshakeGate(limit=1, queue=2, wait_s=0.01)
    assert gate.enter()
    got = []
    waiter = gevent.spawn(lambda: got.append(gate.enter()))
    gevent.sleep(0)
    handover = gevent.get_hub().loop.timer(0.01)
    handover.start(gate.leave)
    time.sleep(0.03)                 # the loop blocked: both are overdue at once
    waiter.join(5)
    assert got == [True] and gate.busy == 1 and not gate.waiting
    gate.leave()
    assert gate.busy == 0 and gate.enter()
