"""Server-side pieces the player's page needs: the stored price record
(`GET /api/ticks`, SPEC section 9 v1.1), the sim feed walking on from the
last stored price across a restart, and the README's Python client snippet
run exactly as written."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.support import ROOT


def get(url, path):
    try:
        with urllib.request.urlopen(url + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_ticks_serves_the_stored_price_record(live_server):
    now = int(time.time() * 1000)
    status, body = get(live_server.url, f"/api/ticks?asset=BTC-USD&from={now - 60000}&to={now + 1000}")
    assert status == 200 and set(body) == {"ticks", "next"}
    ticks = body["ticks"]
    assert ticks and body["next"] is None
    assert all(isinstance(t, int) and isinstance(p, int) for t, p in ticks)
    assert [t for t, _ in ticks] == sorted(t for t, _ in ticks)
    assert all(now - 60000 <= t < now + 1000 for t, _ in ticks)
    # No asset: BTC-USD; the same record.
    _, default = get(live_server.url, f"/api/ticks?from={now - 60000}&to={now + 1000}")
    assert default["ticks"][: len(ticks)] == ticks
    # An empty range is an empty page, not an error.
    assert get(live_server.url, "/api/ticks?from=1&to=2") == (200, {"ticks": [], "next": None})


@pytest.mark.parametrize("query", ["asset=DOGE-USD", "from=abc", "to=1.5", "from=10&to=5"])
def test_ticks_refuses_bad_requests_with_a_reason(live_server, query):
    status, body = get(live_server.url, "/api/ticks?" + query)
    assert status == 400 and body["error"] == "bad_request" and body["detail"]


def test_ticks_pages_at_ten_thousand(tmp_path):
    """The page limit and the cursor, against a store with 10,005 ticks."""
    from actors import Store
    from actors._runtime import _read_ticks
    from web.http._player_api import TICKS_MAX
    db = str(tmp_path / "t.db")
    store = Store(db)
    store.write_batch(ticks=[(1000 + i, 5_000_000 + i) for i in range(TICKS_MAX + 5)])
    store.close()
    rows = _read_ticks(db, 0, 10 ** 13, TICKS_MAX)
    assert len(rows) == TICKS_MAX + 1          # one more than a page: there is a next
    assert rows[TICKS_MAX][0] == 1000 + TICKS_MAX


def test_ticks_is_rate_limited_per_address(server_factory):
    server = server_factory("--seed", "2")
    codes = [get(server.url, "/api/ticks?from=1&to=2")[0] for _ in range(40)]
    assert codes[0] == 200 and 429 in codes
    status, body = get(server.url, "/api/ticks?from=1&to=2")
    assert status == 429 and body["error"] == "rate_limited"


def test_the_sim_feed_walks_on_from_the_last_stored_price(server_factory, tmp_path):
    db = str(tmp_path / "sim.db")
    server = server_factory("--seed", "5", db=db)
    now = int(time.time() * 1000)
    deadline = time.monotonic() + 10
    while True:
        _, body = get(server.url, f"/api/ticks?from={now - 60000}&to={now + 60000}")
        if len(body["ticks"]) > 8 and body["ticks"][-1][1] != 9_500_000:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    server.kill()
    # What the store holds last is where the restarted walk begins.
    from actors import open_readonly
    conn = open_readonly(db)
    last_ts, last_price = conn.execute("SELECT ts, price FROM ticks ORDER BY ts DESC LIMIT 1").fetchone()
    conn.close()
    assert last_price != 9_500_000
    server.start()
    _, body = get(server.url, f"/api/ticks?from={last_ts + 1}&to={int(time.time() * 1000) + 1000}")
    assert body["ticks"], body
    assert body["ticks"][0][1] == last_price


def readme_snippet():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"```python\n(from web\.client import TapgridClient\n.*?)```", text, re.S)
    assert m, "the README's Python client snippet is missing"
    return m.group(1)


def test_the_readme_client_snippet_runs_as_written(live_server):
    """Run several times: connect() used to return before a grid had come,
    and open_cell() then gave None one run in three."""
    code = readme_snippet().replace("http://127.0.0.1:8080", live_server.url)
    assert "c.connect()" in code and "open_cell()" in code
    runner = ("import gevent.monkey\n"
              "src = open(0).read()\n"
              "for i in range(6):\n"
              "    exec(compile(src, 'README.md', 'exec'), {})\n"
              "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", runner], input=code, capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def post(url, path, token=None, body=None):
    req = urllib.request.Request(url + path, data=json.dumps(body or {}).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def test_a_guest_tops_up_once_when_the_balance_ran_out(server_factory):
    from web.client import TapgridClient
    server = server_factory("--seed", "6", env={"TAPGRID_GUEST_CREDIT": "1500", "TAPGRID_TOPUP_EVERY_MS": "600000"})
    rich = TapgridClient(server.url)
    rich.guest()
    status, body, _ = post(server.url, "/api/topup", rich.token)
    assert (status, body["error"]) == (409, "limit") and "balance under" in body["detail"], body
    assert post(server.url, "/api/topup")[0:2][0] == 401

    poor = TapgridClient(server.url)
    poor.guest()
    poor.connect()
    for _ in range(20):                      # spend down to under 10.00 credits
        cell = poor.open_cell(offset_bands=3)
        if cell and poor.balance >= 600:
            poor.tap(*cell[:2], stake=500, min_mult=101)
        if poor.balance < 1000:
            break
        gevent_sleep(0.2)
    assert poor.balance < 1000, poor.balance
    status, body, _ = post(server.url, "/api/topup", poor.token)
    assert status == 200 and body["balance"] == 1500 and body["credited"] == 1500 - poor.balance, body
    assert poor.me()["balance"] == 1500
    # Spend again and ask again: one top-up per guest per topup_every_ms.
    for _ in range(20):
        cell = poor.open_cell(offset_bands=3)
        if cell and poor.me()["balance"] >= 600:
            poor.tap(*cell[:2], stake=500, min_mult=101)
        if poor.me()["balance"] < 1000:
            break
    status, body, headers = post(server.url, "/api/topup", poor.token)
    assert (status, body["error"]) == (429, "rate_limited") and int(headers["Retry-After"]) > 0, body
    poor.close()


def test_top_ups_are_for_demo_guests_only(server_factory):
    from web.client import TapgridClient, Wallet
    server = server_factory("--seed", "7", env={"TAPGRID_GUEST_CREDIT": "0"})
    c = TapgridClient(server.url)
    c.login(Wallet())
    status, body, _ = post(server.url, "/api/topup", c.token)
    assert (status, body["error"]) == (403, "bad_request") and "guests" in body["detail"], body
    off = server_factory("--seed", "7", "--no-demo")
    status, body, _ = post(off.url, "/api/topup", c.token)
    assert (status, body["error"]) == (404, "bad_request") and "demo" in body["detail"], body


def gevent_sleep(s):
    import gevent
    gevent.sleep(s)


def test_wins_feed_and_leaderboard_are_broadcast_at_a_bounded_rate(server_factory):
    """A winner shows up in every connection's feed frames (anonymised),
    and frames come no faster than feed_every_ms."""
    from web.client import TapgridClient
    server = server_factory("--seed", "8", env={"TAPGRID_COLUMN_MS": "2000", "TAPGRID_LOCK_MS": "1000",
                                                "TAPGRID_HORIZON_MS": "20000", "TAPGRID_FEED_EVERY_MS": "1000"})
    watcher = TapgridClient(server.url)
    watcher.guest()
    frames = []
    watcher.on_event = lambda m: m.get("type") == "feed" and frames.append((time.monotonic(), m))
    watcher.connect()
    player = TapgridClient(server.url)
    player.guest()
    player.connect()
    won = None
    for _ in range(40):                        # the price's own band, soon: a likely touch
        cell = player.open_cell(offset_bands=0)
        if cell is None:
            gevent_sleep(0.1)
            continue
        ack = player.tap(cell[0], cell[1], stake=1000, min_mult=101)
        if not ack.get("ok"):
            continue
        assert player.wait_for(lambda: any(r["bet"] == ack["bet"] for r in player.results), timeout=15)
        result = next(r for r in player.results if r["bet"] == ack["bet"])
        if result["outcome"] == "won":
            won = result
            break
    assert won is not None, "no win in 40 taps on the price's own band"
    assert watcher.wait_for(lambda: any(any(w["payout"] == won["payout"] for w in m["wins"]) for _, m in frames),
                            timeout=10)
    _, last = frames[-1]
    assert all(w["who"].startswith("player-") and player.user not in json.dumps(last) for w in last["wins"])
    net = sum(r["payout"] - 1000 for r in player.results)
    nets = [x["net"] for x in last["leaders"]]
    assert nets == sorted(nets, reverse=True) and all(n > 0 for n in nets)
    assert bool(nets) == (net > 0), (net, last["leaders"])
    gaps = [b - a for (a, _), (b, _) in zip(frames, frames[1:])]
    assert all(g >= 0.9 for g in gaps), gaps
    status, snap = get(server.url, "/api/feed")
    assert status == 200 and snap["wins"] and set(snap) == {"day", "wins", "leaders"}
    watcher.close()
    player.close()


def spend_down(client, below=1000, stake=500):
    for _ in range(40):
        if client.me()["balance"] < below:
            return
        cell = client.open_cell(offset_bands=3)
        if cell and client.me()["balance"] >= stake:
            client.tap(*cell[:2], stake=stake, min_mult=101)
        else:
            gevent_sleep(0.2)
    raise AssertionError(f"could not spend down: {client.me()}")


def test_the_top_up_limit_survives_a_server_restart(server_factory):
    """The limit is the market's, in the database: a restart (or another
    gateway process) does not hand out a second top-up."""
    from web.client import TapgridClient
    server = server_factory("--seed", "9", env={"TAPGRID_GUEST_CREDIT": "1500", "TAPGRID_TOPUP_EVERY_MS": "600000"})
    c = TapgridClient(server.url)
    c.guest()
    c.connect()
    spend_down(c)
    status, body, _ = post(server.url, "/api/topup", c.token)
    assert status == 200 and body["balance"] == 1500, body
    c.close()
    server.kill()
    server.start()
    again = TapgridClient(server.url, signer=c.signer)     # the same session, kept in the database
    again.token = c.token
    c = again
    c.connect()
    spend_down(c)
    status, body, headers = post(server.url, "/api/topup", c.token)
    assert (status, body["error"]) == (429, "rate_limited"), body
    assert 590 <= int(headers["Retry-After"]) <= 600, headers["Retry-After"]
    c.close()


def test_ticks_serves_each_configured_assets_price_record(server_factory):
    server = server_factory("--seed", "3", "--markets", "BTC-USD/5s,ETH-USD/15s")
    now = int(time.time() * 1000)
    deadline = time.monotonic() + 10
    while True:
        _, eth = get(server.url, f"/api/ticks?asset=ETH-USD&from={now - 60000}&to={now + 60000}")
        if eth["ticks"]:
            break
        assert time.monotonic() < deadline, eth
        time.sleep(0.2)
    _, btc = get(server.url, f"/api/ticks?from={now - 60000}&to={now + 60000}")
    assert btc["ticks"] and all(p > 2_000_000 for _, p in btc["ticks"])       # BTC by default
    assert all(p < 2_000_000 for _, p in eth["ticks"])                        # ETH's own record
    status, body = get(server.url, "/api/ticks?asset=SOL-USD")                # not configured here
    assert status == 400 and body["error"] == "bad_request"
