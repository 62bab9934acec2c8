"""Protocol v1.1 with several markets (SPEC 9): /api/markets, /api/grid
with market_id, subscribe, market_id in frames and history, the keyed tap
payload; and every v1 client's view unchanged. A real server with three
markets, the Python client; the checks are shared with the split
(tests/web/markets_checks.py, tests/web/test_split_markets.py)."""
import pytest

from tests.web import markets_checks as checks
from web.client import TapgridClient


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.serverproc import ServerProcess
    db = str(tmp_path_factory.mktemp("markets") / "tapgrid.db")
    s = ServerProcess(db, "--seed", "1", "--markets", checks.MARKETS).start()
    yield s
    s.kill()


def client(server, **kw):
    c = TapgridClient(server.url, **kw)
    c.guest()
    c.connect()
    return c


def test_api_markets_lists_every_market_and_api_grid_serves_each(server):
    checks.check_markets_and_grids(TapgridClient(server.url))


def test_a_v1_connection_sees_the_default_market_only(server):
    c = client(server)
    try:
        checks.check_v1_connection(c)
    finally:
        c.close()


def test_subscribe_then_tap_another_market(server):
    c = client(server)
    try:
        checks.check_subscribe_then_tap(c)
    finally:
        c.close()


def test_unknown_markets_are_bad_request(server):
    c = client(server)
    try:
        checks.check_unknown_markets(c)
    finally:
        c.close()


def test_metrics_show_every_market_and_the_price_age(server):
    text = checks.check_markets_in_metrics(server.url)
    assert 'tapgrid_tap_price_age_seconds{quantile="0.99"}' in text


def test_api_ticks_serves_each_assets_record(server):
    checks.check_ticks_per_asset(server.url)
