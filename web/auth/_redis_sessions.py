"""Player sessions in Redis (``--redis``): an opaque bearer token maps to
the user and the P-256 session key their login authorised.

Redis holds only a SHA-256 of each token, so a dump of Redis (or a peek
with MONITOR) does not hand out live sessions; the key expires in Redis at
the session's own expiry, and ``get`` checks the time too.

Needs a redis-server, so the lines are skipped under doctest:

>>> import time; now_ms = int(time.time() * 1000)
>>> store = RedisSessionStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
>>> token = store.create("0xAbC", b"\\x04" + bytes(64), now_ms + 3_600_000)  # doctest: +SKIP
>>> store.get(token, now_ms).user  # doctest: +SKIP
'0xAbC'
>>> store.revoke(token); store.get(token, now_ms) is None  # doctest: +SKIP
True
"""
import base64
import hashlib
import re
import secrets
from typing import NamedTuple, Optional

import redis

__all__ = ["Session", "RedisSessionStore", "new_token"]

# 32 random bytes: 256 bits, 43 base64url chars.
_TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")


class Session(NamedTuple):
    user: str
    session_key: bytes
    expires_ms: int


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(_TOKEN_BYTES)).rstrip(b"=").decode("ascii")


class RedisSessionStore:
    def __init__(self, url, prefix="tapgrid:s:", client=None):
        self.prefix = prefix
        self._redis = client or redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2)

    def _name(self, token: str) -> str:
        return self.prefix + hashlib.sha256(token.encode("ascii")).hexdigest()

    def create(self, user: str, session_key: bytes, expires_ms: int) -> str:
        token = new_token()
        name = self._name(token)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(name, mapping={"user": user, "key": bytes(session_key),
                                 "exp": str(int(expires_ms))})
        pipe.pexpireat(name, int(expires_ms))
        pipe.execute()
        return token

    def get(self, token, now_ms: int) -> Optional[Session]:
        """The live session for ``token``, or None (unknown, revoked,
        expired or not even shaped like a token)."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return None
        user, key, exp = self._redis.hmget(self._name(token), "user", "key", "exp")
        if user is None or key is None or exp is None:
            return None
        expires_ms = int(exp)
        if expires_ms <= now_ms:
            return None
        return Session(user.decode("utf-8"), bytes(key), expires_ms)

    def revoke(self, token) -> None:
        if isinstance(token, str) and _TOKEN.fullmatch(token):
            self._redis.delete(self._name(token))

    def close(self):
        self._redis.close()
