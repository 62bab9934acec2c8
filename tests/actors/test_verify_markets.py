"""`tapgrid verify` and the archive with several markets: bets on a BTC and
an ETH market, signed v1 and keyed payloads, settle from their own asset's
record; the database verifies before and after archiving (each asset's
record goes into the archive file), and a tampered ETH tick or a bet moved
to another market is named."""
import os
import shutil

import pysqlite3.dbapi2 as sqlite3
import pytest

from actors._config import Config
from actors._model import Tap
from actors._runtime import start_market
from actors._verify import VerifyError, verify
from actors.archive import archive_offline, open_file
from actors.store import audit, open_readonly
from actors.wire import (SessionSigner, b64url_decode, b64url_encode, encode_tap_payload,
                         load_session_key, verify_tap)
from engine import ActorSystem
from tests.actors.test_resolver import PushFeed, Results
from tests.support import wait_until

DAY_MS = 86_400_000
BTC, ETH = 9_500_500, 350_050
MARKETS = ["BTC-USD/1s", "ETH-USD/1s:band_cents=100"]


def check(key, payload, sig):
    return verify_tap(load_session_key(key), payload, b64url_encode(sig))


def cfg_for(db):
    return Config(db=db, markets=MARKETS, lock_ms=300, horizon_ms=3000, tick_interval_ms=100,
                  max_bands=10)


def signed(market, signer, user, col, lo, market_id):
    ts = market.ctx.now()
    nonce = b64url_encode(os.urandom(12))
    payload = encode_tap_payload(col, lo, 1000, 101, ts, nonce, market_id)
    return Tap(user, col, lo, 1000, 101, ts, nonce, b64url_decode(signer.sign(payload)),
               market_id)


@pytest.fixture(scope="module")
def settled_db(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("verify-markets") / "tapgrid.db")
    system = ActorSystem()
    feeds = {"BTC-USD": PushFeed(BTC, 40), "ETH-USD": PushFeed(ETH, 40)}
    results = Results()
    market = start_market(system, cfg_for(db), sinks=results, feed=feeds)
    try:
        assert market.wait_ready(10, "*")
        signer = SessionSigner.generate()
        alice = market.create_user("alice", 1_000_000)
        market.save_session((b"t" * 32, alice, signer.public_raw, market.ctx.now() + 3_600_000))
        placed = []
        debug = []
        for market_id, price, band in ((None, BTC, 1000), ("BTC-USD/1s", BTC, 1000),
                                       ("ETH-USD/1s", ETH, 100)):
            ctx = market.unit(market_id).ctx
            now = ctx.now()
            col = min(c for c in ctx.grid.columns if now < c - 300 - 150)
            base = price // band * band
            cells = ctx.grid.columns[col]
            # a bet near the price (a win when its band holds the price) and
            # a loss (an offered band at least three above it) in each
            far = min(lo for lo in cells if lo >= base + 3 * band)
            # the band holding the price is not offered when its touch is
            # all but sure (a flat feed): then the next one up
            near = base if base in cells else min(lo for lo in cells if lo > base)
            debug.append((market_id, col, ctx.grid.price, near, far, cells.get(near),
                          cells.get(far)))
            for lo in (near, far):
                placed.append(market.place(signed(market, signer, alice, col, lo, market_id)))
        acks = [f.get(5) for f in placed]
        assert all(a.reason is None for a in acks), (acks, debug)
        wait_until(lambda: len(results.by_bet) == len(acks), timeout=15, what="all settled")
    finally:
        system.stop()
    return db


def copy_of(db, tmp_path):
    path = str(tmp_path / "copy.db")
    shutil.copy(db, path)
    return path


def test_several_markets_verify(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    report = verify(db, cfg_for(db), check)
    assert report["bets"] == 6 and report["windows"] >= 2
    conn = open_readonly(db)
    try:
        outcomes = conn.execute("SELECT m.name, b.outcome FROM bets b JOIN markets m"
                                " ON m.id = b.mkt >> 1 ORDER BY b.id").fetchall()
    finally:
        conn.close()
    # near the price won where its band held the price; far above it lost, in each
    assert [o for _, o in outcomes][1::2] == [2, 2, 2]
    assert audit(db) == []


def test_a_tampered_eth_tick_is_named(settled_db, tmp_path):
    conn = sqlite3.connect(settled_db)
    col = conn.execute("SELECT max(col) FROM bets WHERE mkt >> 1 = 1").fetchone()[0]
    ts = conn.execute("SELECT min(ts) FROM ticks_eth_usd WHERE ts > ?", (col,)).fetchone()[0]
    conn.close()
    db = copy_of(settled_db, tmp_path)
    conn = sqlite3.connect(db)
    # the ETH price jumps to the losing band: that bet would have won
    conn.execute("UPDATE ticks_eth_usd SET price = price + 300 WHERE ts = ?", (ts,))
    conn.commit()
    conn.close()
    with pytest.raises(VerifyError) as e:
        verify(db, cfg_for(db), check)
    assert str(e.value).startswith("outcome: bet "), e.value


def test_a_bet_moved_to_another_market_is_named(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    conn = sqlite3.connect(db)
    bid = conn.execute("SELECT max(id) FROM bets WHERE mkt = 3").fetchone()[0]   # ETH, keyed
    conn.execute("UPDATE bets SET mkt = 1 WHERE id = ?", (bid,))      # now "BTC, keyed"
    conn.commit()
    conn.close()
    with pytest.raises(VerifyError) as e:
        verify(db, cfg_for(db), check)
    # on BTC's record an ETH band is far from the price: lost, or the receipt fails
    assert str(e.value).split(":")[0] in ("outcome", "signature"), e.value


def test_archived_markets_verify_with_each_assets_record(settled_db, tmp_path):
    db = copy_of(settled_db, tmp_path)
    cols = [c for (c,) in sqlite3.connect(db).execute("SELECT DISTINCT col FROM bets")]
    report = archive_offline(cfg_for(db), now_ms=max(cols) + 8 * DAY_MS)
    assert report["errors"] == [] and report["files"]
    conn = open_readonly(db)
    try:
        assert conn.execute("SELECT count(*) FROM bets").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ticks_eth_usd").fetchone()[0] == 0   # pruned
    finally:
        conn.close()
    adir = os.path.join(os.path.dirname(db), "archive")
    (name,) = [n for (n,) in sqlite3.connect(db).execute("SELECT name FROM archive_files")]
    fconn = open_file(adir, name)
    try:
        assert fconn.execute("SELECT count(*) FROM ticks_eth_usd").fetchone()[0] > 10
        assert sorted(m for (m,) in fconn.execute("SELECT DISTINCT mkt FROM bet_rows")) == \
            [0, 1, 3]
    finally:
        fconn.close()
    report = verify(db, cfg_for(db), check)
    assert report["bets"] == 6 and report["files"] == 1
    assert audit(db) == []
