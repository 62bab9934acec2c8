"""The settled-bets counters behind the live RTP: per multiplier bucket, won
and lost bets count, void ones (refunds) do not."""
from prometheus_client.parser import text_string_to_metric_families

from actors import LOST, MULT_BUCKETS, VOID, WON, Settlement, payout_for
from web._metrics import Metrics, _settled_families


def samples(metrics):
    out = {}
    for fam in _settled_families(metrics.settled):
        for s in fam.samples:
            out[(s.name, s.labels["bucket"])] = s.value
    return out


def settle(m, mult, outcome, stake=100):
    payout = payout_for(stake, mult) if outcome == WON else stake if outcome == VOID else 0
    m.result({WON: "won", LOST: "lost", VOID: "void"}[outcome],
             Settlement(1, 1, 0, 0, stake, mult, outcome, payout))


def test_stakes_and_payouts_per_bucket():
    m = Metrics()
    settle(m, 190, WON)
    settle(m, 190, LOST)
    settle(m, 4200, LOST, stake=250)
    settle(m, 10000, WON)
    settle(m, 4200, VOID)          # a refund: not part of the RTP
    got = samples(m)
    assert got[("tapgrid_settled_bets_total", "1.5-2")] == 2
    assert got[("tapgrid_settled_stake_total", "1.5-2")] == 200
    assert got[("tapgrid_settled_payout_total", "1.5-2")] == 190
    assert got[("tapgrid_settled_stake_total", "10-99.99")] == 250
    assert got[("tapgrid_settled_payout_total", "10-99.99")] == 0
    assert got[("tapgrid_settled_bets_total", "10-99.99")] == 1
    assert got[("tapgrid_settled_payout_total", "100")] == 10000
    # every bucket is exported, even empty, so a rate() has a series to start from
    assert {b for (_, b) in got} == {name for name, _, _ in MULT_BUCKETS}
    assert got[("tapgrid_settled_stake_total", "3-5")] == 0


def test_the_counters_parse_as_prometheus_text():
    from prometheus_client import CollectorRegistry, generate_latest

    m = Metrics()
    settle(m, 250, WON)
    reg = CollectorRegistry()

    class C:
        def collect(self):
            return _settled_families(m.settled)
    reg.register(C())
    text = generate_latest(reg).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {"tapgrid_settled_stake_total", "tapgrid_settled_payout_total"} <= names
    assert 'tapgrid_settled_payout_total{bucket="2-3"} 250.0' in text
