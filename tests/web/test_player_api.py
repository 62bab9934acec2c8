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

from tests.conftest import ROOT


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
    from web._player_api import TICKS_MAX, _read_ticks
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
