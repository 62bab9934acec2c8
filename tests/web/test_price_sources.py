"""A real `tapgrid serve --sources sim,sim,sim --quorum 2`: the price is the
median of three simulated sources, and /metrics shows each source's age
and deviation from the median and the quorum state."""
import subprocess
import sys

from tests.support import wait_until
from tests.web.test_ops import scrape, value
from web.client import TapgridClient


def test_three_sim_sources_in_metrics(server_factory):
    s = server_factory("--seed", "3", "--sources", "sim,sim,sim", "--quorum", "2",
                       "--divergence-bp", "80")
    c = TapgridClient(s.url)
    c.guest()
    wait_until(lambda: c.fetch_grid()["columns"], timeout=10, what="a priced grid")
    m = wait_until(lambda: (lambda m: m if value(m, "tapgrid_price_sources_fresh",
                                                 asset="BTC-USD") == 3 else None)(scrape(s.url)),
                   timeout=10, what="three fresh sources")
    assert value(m, "tapgrid_price_quorum", asset="BTC-USD") == 2
    assert value(m, "tapgrid_price_state", asset="BTC-USD", state="ok") == 1
    assert value(m, "tapgrid_price_state", asset="BTC-USD", state="divergence") == 0
    for name in ("sim-1", "sim-2", "sim-3"):
        assert 0 <= value(m, "tapgrid_price_source_age_seconds", source=name) < 2
        assert abs(value(m, "tapgrid_price_source_deviation_bp", source=name)) < 80
        assert value(m, "tapgrid_price_source_fresh", source=name) == 1
    assert value(m, "tapgrid_market_open") == 1


def test_the_default_is_one_sim_source(live_server):
    m = scrape(live_server.url)
    assert value(m, "tapgrid_price_source_fresh", asset="BTC-USD", source="sim") == 1
    assert value(m, "tapgrid_price_source_deviation_bp", source="sim") == 0
    assert value(m, "tapgrid_price_quorum", asset="BTC-USD") == 1
    assert [lbl["source"] for lbl, _ in m["tapgrid_price_source_fresh"]] == ["sim"]


def test_bets_placed_over_the_wire_verify(server_factory):
    """Signed taps through the real gateway, settled by the real server from
    three sources: `tapgrid verify` recomputes and checks every one."""
    env = {"TAPGRID_COLUMN_MS": "1000", "TAPGRID_LOCK_MS": "300", "TAPGRID_HORIZON_MS": "4000",
           "TAPGRID_TICK_INTERVAL_MS": "250"}
    s = server_factory("--seed", "5", "--sources", "sim,sim,sim", "--quorum", "2", env=env)
    c = TapgridClient(s.url, backoff_base=0.2)
    c.guest()
    c.connect()
    assert c.wait_for(lambda: c.grid is not None, 10)
    acks = []
    for offset in (0, 1, -1, 3):
        cell = wait_until(lambda: c.open_cell(offset, margin_ms=100), what="an open cell")
        # min_mult 1.01x: the grid reprices on every tick, and this test is
        # about verify, not about the odds moving between grid and tap.
        acks.append(c.tap(cell[0], cell[1], 100, min_mult=101))
    assert all(a["ok"] for a in acks), acks
    assert c.wait_for(lambda: len(c.results) == len(acks), 15), c.results
    assert s.stop() == 0
    out = subprocess.run([sys.executable, "-m", "web.cli", "verify", "--db", s.db,
                          "--column-ms", "1000", "--tick-interval-ms", "250"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"verify ok: {len(acks)} settled bets"), out.stdout
