"""Who a player is: Sign-In with Ethereum (challenges, message, signature
recovery), sessions (SQLite or Redis) and the tap nonce stores (memory or
Redis) that refuse replays."""
from ._nonces import MemoryNonceStore, NonceStats, RedisNonceStore
from ._redis_sessions import RedisSessionStore, new_token
from ._sessions import RedisSessions, Session, SqliteSessionStore, make_session_store
from ._tickets import MemoryTickets, RedisTickets, make_tickets
from ._siwe import (DEFAULT_STATEMENT, SESSION_KEY_URN, ChallengeStore, RedisChallengeStore,
                    SiweLogin, SiweMessage, build_message, checksum_address,
                    parse_message, recover_address, verify_login)

__all__ = [
    "SiweMessage", "SiweLogin", "ChallengeStore", "RedisChallengeStore",
    "build_message", "parse_message", "recover_address", "checksum_address", "verify_login",
    "SESSION_KEY_URN", "DEFAULT_STATEMENT",
    "Session", "SqliteSessionStore", "RedisSessions", "RedisSessionStore", "make_session_store",
    "new_token", "MemoryNonceStore", "RedisNonceStore", "NonceStats",
    "MemoryTickets", "RedisTickets", "make_tickets",
]
