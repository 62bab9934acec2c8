"""The ``grid2`` protocol addition (README, "Protocol addition: grid2"): a
connection that asks with ``?grid=2`` gets compact grid frames standing for
exactly the v1 grid; every other connection keeps v1's frames, unchanged.
A real server, two raw WebSockets side by side."""
import json
import time
from urllib.parse import urlsplit

from actors.feeds import WSClient
from web.client import TapgridClient, grid_from_grid2


def frames(ws, seconds):
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            raw = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if raw is None:
            break
        out.append(raw)
    return out


def test_grid2_is_the_v1_grid_in_fewer_bytes_and_only_when_asked(server_factory):
    server = server_factory("--seed", "1")
    netloc = urlsplit(server.url).netloc
    a, b = TapgridClient(server.url), TapgridClient(server.url)
    a.guest()
    b.guest()
    v1 = WSClient.connect(f"ws://{netloc}/ws?token={a.token}", timeout=10)
    v2 = WSClient.connect(f"ws://{netloc}/ws?token={b.token}&grid=2", timeout=10)
    got1, got2 = frames(v1, 3.0), frames(v2, 0.5)
    kinds1 = [json.loads(r)["type"] for r in got1]
    kinds2 = [json.loads(r)["type"] for r in got2]
    assert "grid" in kinds1 and "grid2" not in kinds1
    assert "grid2" in kinds2 and "grid" not in kinds2
    assert "tick" in kinds2 and kinds2[0] == "hello"

    # the maker reprices on every tick and when a column rolls in, so one
    # tick can price several grids: a grid2 matches one of its tick's grids
    grids1 = {}
    for r in got1:
        m = json.loads(r)
        if m["type"] == "grid":
            grids1.setdefault(m["price_ts"], []).append((m, len(r)))
    matched = 0
    for r in got2:
        m = json.loads(r)
        if m["type"] != "grid2" or m["price_ts"] not in grids1:
            continue
        same = [n for g, n in grids1[m["price_ts"]] if g == grid_from_grid2(m)]
        assert same, "a grid2 that is none of its tick's grids"
        assert len(r) * 3 < same[0], (len(r), same[0])
        matched += 1
    assert matched, "no grid priced at the same tick reached both connections"
    v1.close()
    v2.close()
