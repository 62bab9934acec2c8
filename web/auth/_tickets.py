"""Single-use WebSocket tickets (a v1 protocol addition): ``POST
/api/ws-ticket`` with the bearer token returns a ticket valid for a few
seconds, and ``/ws?ticket=T`` upgrades with it once. The long-lived token
then never appears in a URL, where proxies and browser histories log it.
``/ws?token=`` keeps working.

    tickets = MemoryTickets(ttl_ms=30_000)
    t = tickets.issue(token)
    tickets.redeem(t) == token and tickets.redeem(t) == ""

With ``--redis`` the tickets live in Redis (any process may take the
upgrade); a ticket is deleted as it is read (GETDEL), so it works once.
"""
import secrets
import time

from .._addr import LruTable
from ._sessions import SessionsUnavailable

__all__ = ["MemoryTickets", "RedisTickets", "make_tickets"]


class MemoryTickets:
    def __init__(self, ttl_ms=30_000, size=100_000):
        self.ttl_ms = ttl_ms
        self._issued = LruTable(size)

    def issue(self, token):
        ticket = secrets.token_urlsafe(24)
        self._issued[ticket] = (token, time.monotonic() + self.ttl_ms / 1000)
        if len(self._issued) > self._issued.size:
            self._issued.popitem(last=False)
        return ticket

    def redeem(self, ticket):
        """The token the ticket stands for, once; "" if unknown, used or expired."""
        entry = self._issued.pop(ticket, None)
        if entry is None or entry[1] < time.monotonic():
            return ""
        return entry[0]


class RedisTickets:
    def __init__(self, url, ttl_ms=30_000, prefix="tapgrid:t:"):
        import redis
        self.ttl_ms = ttl_ms
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def issue(self, token):
        ticket = secrets.token_urlsafe(24)
        self._redis.set(self.prefix + ticket, token, px=self.ttl_ms)
        return ticket

    def redeem(self, ticket):
        if not isinstance(ticket, str) or len(ticket) > 64:
            return ""
        try:
            value = self._redis.getdel(self.prefix + ticket)
        except Exception as exc:        # the ticket may exist: not a bad ticket
            raise SessionsUnavailable(repr(exc)) from None
        return value.decode("ascii", "replace") if value else ""


def make_tickets(cfg):
    if cfg.redis:
        return RedisTickets(cfg.redis, cfg.ws_ticket_ttl_ms)
    return MemoryTickets(cfg.ws_ticket_ttl_ms)
