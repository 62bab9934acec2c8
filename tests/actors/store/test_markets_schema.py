"""The bets table keeps its market (schema 3): a schema-2 database (no
``mkt``) is migrated in place, its v1 receipts still verify, ``tapgrid
audit`` still passes, and new bets record their market and whether the
signed payload named it."""
import pysqlite3.dbapi2 as sqlite3

from actors._model import Bet
from actors.store import SCHEMA_VERSION, Store, audit, history, open_readonly, record_tables
from actors.wire import SessionSigner, b64url_decode, encode_tap_payload, load_session_key, \
    verify_tap

# schema 2 as it was: bet_rows without mkt, its index and view
OLD_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema_version', 2);
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, balance INTEGER NOT NULL,
                   created INTEGER NOT NULL);
CREATE TABLE bet_rows(id INTEGER PRIMARY KEY, user INTEGER NOT NULL, col INTEGER NOT NULL,
    lo INTEGER NOT NULL, stake INTEGER NOT NULL, mult INTEGER NOT NULL,
    outcome INTEGER NOT NULL DEFAULT 0, mm_off INTEGER NOT NULL, ts_off INTEGER NOT NULL,
    placed_off INTEGER NOT NULL, settled_off INTEGER NOT NULL DEFAULT -8388608,
    pay_adj INTEGER NOT NULL DEFAULT 0, nonce NOT NULL, sig BLOB NOT NULL);
CREATE INDEX bets_open ON bet_rows(col, lo, user, stake, mult) WHERE outcome = 0;
CREATE INDEX bets_user ON bet_rows(user, id);
CREATE VIEW bets(id, user, col, lo, stake, mult, min_mult, ts, nonce, sig, placed,
                 outcome, payout, settled) AS
    SELECT id, user, col, lo, stake, mult, mult - mm_off, col - ts_off, nonce, sig,
           col - ts_off + placed_off, outcome,
           (CASE outcome WHEN 1 THEN stake * mult / 100 WHEN 3 THEN stake ELSE 0 END) + pay_adj,
           CASE settled_off WHEN -8388608 THEN NULL ELSE col + settled_off END
    FROM bet_rows;
CREATE TABLE ledger(id INTEGER PRIMARY KEY, user INTEGER NOT NULL, kind INTEGER NOT NULL,
    amount INTEGER NOT NULL, bet INTEGER, ts INTEGER NOT NULL);
CREATE TABLE ticks(ts INTEGER PRIMARY KEY, price INTEGER NOT NULL, src TEXT) WITHOUT ROWID;
CREATE TABLE stale_spans(start INTEGER PRIMARY KEY, end INTEGER) WITHOUT ROWID;
CREATE TABLE sessions(token BLOB PRIMARY KEY, user INTEGER NOT NULL, session_key BLOB NOT NULL,
    expires INTEGER NOT NULL) WITHOUT ROWID;
"""


def old_database(path, signer):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(OLD_SCHEMA)
    col, lo, stake, mult, ts, nonce = 1_800_000_010_000, 9_500_000, 500, 235, 1_800_000_001_000, \
        "old-nonce-1"
    sig = b64url_decode(signer.sign(encode_tap_payload(col, lo, stake, mult, ts, nonce)))
    conn.execute("INSERT INTO users VALUES (1, 'alice', 10000 - 500, 0)")
    conn.execute("INSERT INTO ledger VALUES (1, 1, 1, 10000, NULL, 0)")
    conn.execute("INSERT INTO bet_rows(id, user, col, lo, stake, mult, mm_off, ts_off, placed_off,"
                 " nonce, sig) VALUES (1, 1, ?, ?, ?, ?, 0, ?, 20, ?, ?)",
                 (col, lo, stake, mult, col - ts, nonce, sig))
    conn.execute("INSERT INTO sessions VALUES (x'01', 1, ?, ?)", (signer.public_raw, 1 << 50))
    conn.close()


def test_a_schema_2_database_is_migrated_and_its_receipts_verify(tmp_path):
    path = str(tmp_path / "old.db")
    signer = SessionSigner.generate()
    old_database(path, signer)
    store = Store(path)
    try:
        assert store.market_numbers(["BTC-USD/5s", "ETH-USD/5s"]) == \
            {"BTC-USD/5s": 0, "ETH-USD/5s": 1}
        users, open_bets = store.load_state()
        assert open_bets == [(1, 1, 1_800_000_010_000, 9_500_000, 500, 235, 0)]
    finally:
        store.close()
    conn = open_readonly(path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == \
            (SCHEMA_VERSION,) == (4,)
        assert conn.execute("SELECT mkt FROM bets").fetchall() == [(0,)]
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name='bets_open'").fetchone()[0]
        assert "mkt" in sql
        (receipt,) = history(conn, 1)
    finally:
        conn.close()
    # the v1 receipt: the same payload as signed, market 0 (the default then)
    assert receipt["payload"].startswith('{"col":') and receipt["market_id"] == "BTC-USD/5s"
    key = load_session_key(signer.public_raw)
    assert verify_tap(key, receipt["payload"], receipt["sig"])
    assert audit(path) == []
    # migrating twice changes nothing
    Store(path).close()
    assert audit(path) == []


def test_new_bets_record_their_market_and_keyed_payloads(tmp_path):
    path = str(tmp_path / "new.db")
    signer = SessionSigner.generate()
    store = Store(path)
    try:
        numbers = store.market_numbers(["BTC-USD/5s", "ETH-USD/15s"])
        uid = store.ensure_user("alice", credit=10_000, now=0)
        col, ts = 1_800_000_015_000, 1_800_000_001_000
        bets = []
        for i, (market_id, keyed) in enumerate((("BTC-USD/5s", False), ("BTC-USD/5s", True),
                                                ("ETH-USD/15s", True))):
            nonce = f"nonce-mkt-{i}"
            payload = encode_tap_payload(col, 350_000, 100, 150, ts, nonce,
                                         market_id if keyed else None)
            bets.append(Bet(uid, col, 350_000, 100, 150, 150, ts, nonce,
                            b64url_decode(signer.sign(payload)), ts + 5,
                            2 * numbers[market_id] + keyed))
        store.write_batch(bets=bets)
    finally:
        store.close()
    conn = open_readonly(path)
    try:
        got = history(conn, uid)
    finally:
        conn.close()
    key = load_session_key(signer.public_raw)
    assert [(r["market_id"], r["payload"][:12]) for r in reversed(got)] == [
        ("BTC-USD/5s", '{"col":18000'), ("BTC-USD/5s", '{"market_id"'),
        ("ETH-USD/15s", '{"market_id"')]
    assert all(verify_tap(key, r["payload"], r["sig"]) for r in got)
    assert audit(path) == []


def test_each_asset_has_its_own_record_tables(tmp_path):
    path = str(tmp_path / "rec.db")
    store = Store(path)
    try:
        store.ensure_record("ETH-USD")
        store.write_batch(ticks=[(1000, 350_000, None, record_tables("ETH-USD")[0]),
                                 (1000, 9_500_000, None)])
        assert store.last_tick("ticks_eth_usd") == (1000, 350_000)
        assert store.last_tick() == (1000, 9_500_000)
    finally:
        store.close()
