"""Session keys outlive their sessions in ``session_keys`` (what `tapgrid
verify` checks receipts against): written with a SQLite session in the
same transaction, and through the Writer for a Redis session."""
from actors import Config, open_readonly, start_market
from engine import ActorSystem
from tests.support import wait_until
from web.auth import RedisSessions, SqliteSessionStore


def keys(db):
    conn = open_readonly(db)
    try:
        return conn.execute("SELECT user, key, expires FROM session_keys ORDER BY expires"
                            ).fetchall()
    finally:
        conn.close()


def test_both_session_stores_keep_the_key(db_path, redis_url):
    system = ActorSystem()
    try:
        market = start_market(system, Config(db=db_path, seed=1))
        uid = market.create_user("alice", 0)
        now = market.ctx.now()
        k1, k2 = b"\x04" + bytes(range(64)), b"\x04" + bytes(range(1, 65))
        SqliteSessionStore(market, db_path).create("alice", uid, k1, now + 1000)
        assert keys(db_path) == [(uid, k1, now + 1000)]
        token = RedisSessions(redis_url, market).create("alice", uid, k2, now + 2000)
        assert token and keys(db_path) == [(uid, k1, now + 1000), (uid, k2, now + 2000)]
        # the same key signed in again: one row, the later expiry
        SqliteSessionStore(market, db_path).create("alice", uid, k1, now + 5000)
        wait_until(lambda: len(keys(db_path)) == 2 and keys(db_path)[-1][2] == now + 5000,
                   what="the later expiry")
    finally:
        system.stop()
