"""A real `tapgrid serve --sources sim,sim,sim --quorum 2`: the price is the
median of three simulated sources, and /metrics shows each source's age
and deviation from the median and the quorum state."""
from tests.conftest import wait_until
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
