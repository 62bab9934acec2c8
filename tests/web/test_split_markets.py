"""Several markets over the split (issues 10 and 11): a market process
running three markets, two gateways told nothing of them but what the
market publishes, and players on the Python client. The same checks as
the one-process server's (tests/web/markets_checks.py):

- ``/api/markets`` and ``/api/grid?market_id=`` on each gateway answer
  from the market's list; an unknown market is HTTP 400 ``bad_request``;
- ``subscribe`` works as in one process: another market's ticks, grids and
  market frames (heard on one gateway while the tap goes through the other);
- a tap for a non-default market reaches that market's Column through the
  bus: acked, in the history with its market_id, its receipt verifies, its
  result carries its market_id;
- a tap or a subscription naming an unknown market is ``bad_request``, and
  the connection stays;
- a v1 client (no market_id anywhere) sees and taps the default market only;
- a gateway's ``/metrics`` has every market, ``/api/ticks`` every asset;
- ``serve --gateways 2 --markets ...`` serves them all behind its one port.
"""
import contextlib

import pytest

from tests.serverproc import ClusterProcess, exited
from tests.support import wait_until
from tests.web import markets_checks as checks
from tests.web.splitrig import ENV, Rig
from web.client import TapgridClient


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    # --markets goes to the market only: the gateways learn them from it
    r = Rig(tmp_path_factory.mktemp("split_markets"), gateways=2,
            market_args=("--markets", checks.MARKETS)).start()
    yield r
    r.close()


@contextlib.contextmanager
def players(*gateways):
    """One signed-in, connected player per gateway given, closed after."""
    cs = []
    try:
        for gw in gateways:
            c = TapgridClient(gw.url)
            cs.append(c)
            c.guest()
            c.connect()
            assert c.wait_for(lambda c=c: c.grid is not None, 10), "no grid after the welcome"
        yield cs
    finally:
        for c in cs:
            c.close()


@pytest.mark.timeout(60)
def test_every_gateway_lists_the_markets_the_market_runs(rig):
    for gw in rig.gateways:
        checks.check_markets_and_grids(TapgridClient(gw.url))


@pytest.mark.timeout(90)
def test_subscribe_on_one_gateway_tap_another_market_through_the_other(rig):
    with players(*rig.gateways) as (watcher, c):
        checks.check_subscribe_then_tap(c, watcher)


@pytest.mark.timeout(60)
def test_unknown_markets_are_bad_request_and_the_connection_stays(rig):
    with players(rig.gateways[0]) as (c,):
        checks.check_unknown_markets(c)


@pytest.mark.timeout(60)
def test_a_v1_client_sees_and_taps_the_default_market_only(rig):
    with players(rig.gateways[1]) as (c,):
        checks.check_v1_connection(c)


@pytest.mark.timeout(60)
def test_a_gateways_metrics_and_price_record_cover_every_market(rig):
    for gw in rig.gateways:
        checks.check_markets_in_metrics(gw.url)
        checks.check_ticks_per_asset(gw.url)


@pytest.mark.timeout(120)
def test_serve_gateways_runs_every_market_behind_one_port(tmp_path):
    """``tapgrid serve --gateways 2 --markets ...``: every child gets the
    flag, the market runs them, the gateways serve what it publishes."""
    server = ClusterProcess(str(tmp_path / "cluster.db"), "--seed", "2", "--markets",
                            checks.MARKETS, gateways=2, env=ENV).start()
    pids = list(server.roles().values())
    try:
        checks.check_markets_and_grids(TapgridClient(server.url))
        with players(server) as (c,):
            checks.check_subscribe_then_tap(c)
    finally:
        server.kill()
        for pid in pids:
            wait_until(lambda pid=pid: exited(pid), 20, interval=0.05, what=f"child {pid} gone")
