"""Chaos: Redis killed and restarted (three times) while taps flow from
three connections of a `tapgrid serve --redis`. While Redis is down taps
are refused (`overloaded`: the nonce store fails closed); after it is back
the same connections are acked again without anyone stepping in; every
acked tap is in the database exactly once; and replaying every frame
acked during the run, after one more Redis restart, takes none of them."""
import json
import random
import sqlite3

import gevent
import pytest

from actors.store import audit
from tests.support import wait_until
from tests.web.auth.test_replay import NO_RATE_LIMIT
from tests.web.auth.test_replay_redis import own_redis  # noqa: F401  (fixture)
from web.client import TapgridClient, Wallet

LOAD = dict(NO_RATE_LIMIT, TAPGRID_MAX_OPEN_BETS="10000000",
            TAPGRID_CELL_LIABILITY_CAP="1000000000000", TAPGRID_GUEST_CREDIT="1000000000")
CYCLES = 3


def answer(fut):
    try:
        return fut.result()
    except Exception:          # the connection dropped: never acked
        return {"ok": False, "reason": "lost"}


def db_nonces(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(bid, n if isinstance(n, str) else None) for bid, n in
                conn.execute("SELECT id, nonce FROM bets")]
    finally:
        conn.close()


@pytest.mark.timeout(180)
def test_redis_killed_and_restarted_while_taps_flow(server_factory, own_redis):  # noqa: F811
    server = server_factory("--seed", "2", "--redis", own_redis.url, env=LOAD)
    clients = []
    for _ in range(3):
        c = TapgridClient(server.url, reconnect=False)
        c.login(Wallet())
        c.connect()
        assert c.wait_for(lambda c=c: c.grid is not None, 10)
        clients.append(c)
    log = []              # (phase, client, frame text, nonce, ack or None)
    phase = {"now": "up-0"}
    stop = gevent.event.Event()

    def tapper(i, c):
        rng = random.Random(i)
        while not stop.is_set():
            cell = c.open_cell(rng.randint(-1, 2))
            if cell:
                frame, nonce = c.signed_tap(cell[0], cell[1], 100, 101)
                entry = [phase["now"], i, json.dumps(frame, separators=(",", ":")), nonce, None]
                log.append(entry)
                fut = c.tap_async(cell[0], cell[1], 100, frame=frame)
                fut.add_done_callback(lambda f, e=entry: e.__setitem__(4, answer(f)))
            gevent.sleep(0.02)

    workers = [gevent.spawn(tapper, i, c) for i, c in enumerate(clients)]

    def acked_in(name):
        return sum(1 for e in log if e[0] == name and e[4] and e[4]["ok"])

    try:
        for cycle in range(CYCLES):
            wait_until(lambda: acked_in(phase["now"]) >= 10, timeout=20,
                       what=f"acks in {phase['now']}")
            own_redis.kill()
            phase["now"] = f"down-{cycle}"
            wait_until(lambda: sum(1 for e in log if e[0] == phase["now"] and e[4]) >= 10,
                       timeout=20, what="answers while Redis is down")
            own_redis.start()
            phase["now"] = f"up-{cycle + 1}"
        # Service resumes by itself after the last restart too.
        wait_until(lambda: acked_in(phase["now"]) >= 10, timeout=20, what="acks after restart")
    finally:
        stop.set()
        gevent.joinall(workers, timeout=10)
    wait_until(lambda: all(e[4] for e in log), timeout=20, what="every tap answered")

    for cycle in range(CYCLES):
        down = [e[4] for e in log if e[0] == f"down-{cycle}"]
        # Fail closed while Redis is away (a tap sent then may still be
        # checked and acked once Redis answers again, within the client's
        # connect timeout).
        assert any(a.get("reason") == "overloaded" for a in down), down[:5]
        assert all(a["ok"] or a["reason"] in ("overloaded", "expired", "column_closed")
                   for a in down), down
    acked = {e[3]: e for e in log if e[4]["ok"]}
    stored = db_nonces(server.db)
    nonces = [n for _, n in stored]
    assert len(nonces) == len(set(nonces)), "a nonce was taken twice"
    assert set(acked) <= set(nonces), "an acked tap is missing from the database"
    assert {e[4]["bet"] for e in acked.values()} <= {bid for bid, _ in stored}

    # Replays of everything acked, after one more restart: none is taken.
    own_redis.kill()
    own_redis.start()
    by_client = {}
    for e in acked.values():
        by_client.setdefault(e[1], []).append(e)
    for i, entries in by_client.items():
        c = clients[i]
        for e in entries:
            c.send_raw(e[2])
    replies = []

    def collect(msg):
        if msg.get("type") == "ack":
            replies.append(msg)
    for c in clients:
        c.on_event = collect
    wait_until(lambda: len(replies) >= len(acked), timeout=30, what="answers to the replays")
    assert not [r for r in replies if r["ok"]], "a replay was taken"
    assert len(db_nonces(server.db)) == len(stored)
    for c in clients:
        c.close()
    assert server.stop() == 0
    assert audit(server.db) == []
    print(f"\nredis chaos: {CYCLES} kill/restart cycles, {len(log)} taps, {len(acked)} acked,"
          f" all stored once; {len(replies)} replays refused")
