"""Player sessions: a bearer token (256 random bits) maps to the user and
the P-256 session key their sign-in authorised, until it expires.

Stored in the SQLite database by default (written through the market's
Writer, read through a read-only connection), so a restart keeps players
signed in; in Redis with ``--redis``. Only a SHA-256 of each token is kept.

    store = SqliteSessionStore(market, cfg.db)
    token = store.create("guest-ab12", uid=7, session_key=raw65, expires_ms=now + 86_400_000)
    store.get(token, now).uid
"""
import hashlib
import logging
from typing import NamedTuple

import redis

from actors import open_readonly

from ._redis_sessions import RedisSessionStore, new_token

__all__ = ["Session", "SessionsUnavailable", "SqliteSessionStore", "RedisSessions",
           "make_session_store"]

log = logging.getLogger("tapgrid.sessions")


class SessionsUnavailable(RuntimeError):
    """The session store cannot answer now (Redis down or too slow): the
    client is not at fault, so it is told to retry (503), never that its
    token is bad (401), which would send a player back to sign in."""


class Session(NamedTuple):
    user: str
    uid: int
    session_key: bytes
    expires_ms: int
    sid: str = ""          # hex SHA-256 of the token: names the session, never grants it


def _digest(token):
    return hashlib.sha256(token.encode()).digest()


class SqliteSessionStore:
    def __init__(self, market, db_path, cache_size=100_000):
        self.market = market
        self.db_path = db_path
        self._ro = None
        self._cache = {}
        self._cache_size = cache_size

    def _conn(self):
        if self._ro is None:
            self._ro = open_readonly(self.db_path)
        return self._ro

    def create(self, user, uid, session_key, expires_ms):
        token = new_token()
        digest = _digest(token)
        self.market.save_session((digest, uid, session_key, expires_ms))
        self._remember(digest, Session(user, uid, session_key, expires_ms, digest.hex()))
        return token

    def _remember(self, digest, session):
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = session

    def get(self, token, now_ms):
        if not token or len(token) > 128:
            return None
        digest = _digest(token)
        s = self._cache.get(digest)
        if s is None:
            row = self._conn().execute(
                "SELECT u.name, s.user, s.session_key, s.expires FROM sessions s "
                "JOIN users u ON u.id = s.user WHERE s.token = ?", (digest,)).fetchone()
            if row is None:
                return None
            s = Session(row[0], row[1], bytes(row[2]), row[3], digest.hex())
            self._remember(digest, s)
        if s.expires_ms <= now_ms:
            self._cache.pop(digest, None)
            return None
        return s

    def revoke(self, token):
        """End the session now: the row goes (through the Writer, off the
        loop) and so does the cached copy, which would otherwise keep it
        alive in this process."""
        if not token or len(token) > 128:
            return
        digest = _digest(token)
        self._cache.pop(digest, None)
        self.market.revoke_session(digest)
        self._cache.pop(digest, None)     # a get() that raced the delete

    def purge(self, now_ms):
        """Drop expired sessions: rows in the Writer's thread, the cache here."""
        self.market.purge_sessions(now_ms)
        for digest in [d for d, s in self._cache.items() if s.expires_ms <= now_ms]:
            self._cache.pop(digest, None)

    def watch_revocations(self, on_revoked):
        """One process owns a SQLite session table: nothing to hear about."""
        return None

    def close(self):
        if self._ro is not None:
            self._ro.close()


class RedisSessions:
    """Adapter: the Redis store keeps ``"uid:name"`` as its user field. The
    session key is also kept in the database (``session_keys``), so a
    receipt can be verified long after Redis forgot the session. A
    revocation is published so that every process closes that session's
    sockets (``watch_revocations``)."""

    def __init__(self, url, market=None, secret=None):
        self.url = url
        self.store = RedisSessionStore(url, secret=secret)
        self.market = market

    def create(self, user, uid, session_key, expires_ms):
        if self.market is not None:
            self.market.save_key(uid, session_key, expires_ms)
        return self.store.create(f"{uid}:{user}", session_key, expires_ms)

    def get(self, token, now_ms):
        try:
            s = self.store.get(token, now_ms)
        except redis.RedisError as exc:
            raise SessionsUnavailable(repr(exc)) from None
        if s is None:
            return None
        uid, _, name = s.user.partition(":")
        return Session(name, int(uid), s.session_key, s.expires_ms, s.sid)

    def revoke(self, token):
        sid = self.store.revoke(token)
        if sid:
            self.store.publish_revoked(sid)

    def purge(self, now_ms):
        """Redis expires session keys itself (PEXPIREAT at the session's end)."""

    def watch_revocations(self, on_revoked):
        """Run forever (in a greenlet): ``on_revoked(sid)`` for each session
        any process revoked; reconnects after Redis errors."""
        import gevent
        while True:
            try:
                for sid in self.store.revocations():
                    on_revoked(sid)
            except Exception as exc:       # Redis restarted or unreachable: retry
                log.warning("revocation feed from Redis lost: %r; retrying", exc)
                gevent.sleep(1.0)

    def close(self):
        self.store.close()


def make_session_store(cfg, market):
    if cfg.redis:
        return RedisSessions(cfg.redis, market, secret=cfg.session_secret)
    return SqliteSessionStore(market, cfg.db)
