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
import hmac
import re
import secrets
from typing import NamedTuple, Optional

import redis

__all__ = ["SessionRecord", "RedisSessionStore", "new_token", "REVOKED_CHANNEL"]

# 32 random bytes: 256 bits, 43 base64url chars.
_TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")


REVOKED_CHANNEL = "tapgrid:revoked"


class SessionRecord(NamedTuple):
    """What Redis holds for a token; ``RedisSessions`` turns it into a
    ``Session`` (its ``user`` field is ``"uid:name"`` there)."""
    user: str
    session_key: bytes
    expires_ms: int
    sid: str = ""


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(_TOKEN_BYTES)).rstrip(b"=").decode("ascii")


class RedisSessionStore:
    """``secret`` (the ``session_secret`` setting, shared by every process)
    signs each record with HMAC-SHA256: whoever can write to Redis but does
    not hold the secret cannot mint a session. Without it records are
    unsigned (and the server logs a warning)."""

    def __init__(self, url, prefix="tapgrid:s:", client=None, secret=None):
        self.prefix = prefix
        self.url = url
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._redis = client or redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2)

    @staticmethod
    def _sid(token: str) -> str:
        return hashlib.sha256(token.encode("ascii")).hexdigest()

    def _name(self, token: str) -> str:
        return self.prefix + self._sid(token)

    def _mac(self, sid, user, key, exp):
        msg = b"\0".join([sid.encode(), user, key, exp])
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest().encode()

    def create(self, user: str, session_key: bytes, expires_ms: int) -> str:
        token = new_token()
        name = self._name(token)
        record = {"user": user.encode("utf-8"), "key": bytes(session_key),
                  "exp": str(int(expires_ms)).encode()}
        if self._secret:
            record["mac"] = self._mac(self._sid(token), record["user"], record["key"], record["exp"])
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(name, mapping=record)
        pipe.pexpireat(name, int(expires_ms))
        pipe.execute()
        return token

    def get(self, token, now_ms: int) -> Optional[SessionRecord]:
        """The live session for ``token``, or None (unknown, revoked,
        expired or not even shaped like a token)."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return None
        sid = self._sid(token)
        user, key, exp, mac = self._redis.hmget(self.prefix + sid, "user", "key", "exp", "mac")
        if user is None or key is None or exp is None:
            return None
        if self._secret and (mac is None or not hmac.compare_digest(
                mac, self._mac(sid, user, key, exp))):
            return None            # written by someone without the server's key
        expires_ms = int(exp)
        if expires_ms <= now_ms:
            return None
        return SessionRecord(user.decode("utf-8"), bytes(key), expires_ms, sid)

    def revoke(self, token) -> Optional[str]:
        """Delete the session; its sid if the token was shaped like one."""
        if isinstance(token, str) and _TOKEN.fullmatch(token):
            self._redis.delete(self._name(token))
            return self._sid(token)
        return None

    def publish_revoked(self, sid: str) -> None:
        self._redis.publish(REVOKED_CHANNEL, sid)

    def revocations(self):
        """Yield the sid of every session revoked by any process, forever
        (a connection of its own, with no read timeout)."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=2)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(REVOKED_CHANNEL)
            for msg in pubsub.listen():
                if msg.get("type") == "message":
                    yield msg["data"].decode("ascii", "replace")
        finally:
            pubsub.close()
            client.close()

    def close(self):
        self._redis.close()
