"""The client's address, and small bounded per-key tables for limits.

Behind a reverse proxy every request comes from the proxy, so a limit
keyed on the socket address would put all players in one bucket. The
address comes from ``X-Forwarded-For`` only when the peer is one of
``cfg.trusted_proxies``: the rightmost entry that is not itself a trusted
proxy (entries to its left were written by the client and prove nothing).

    client_addr({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 1.2.3.4"},
                ["10.0.0.2"])                 # -> "1.2.3.4"
"""
from collections import OrderedDict

__all__ = ["client_addr", "peer_is_trusted", "LruTable"]


def peer_is_trusted(environ, trusted):
    return bool(trusted) and environ.get("REMOTE_ADDR", "") in trusted


def client_addr(environ, trusted):
    peer = environ.get("REMOTE_ADDR", "?")
    if not trusted or peer not in trusted:
        return peer
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if hop not in trusted:
            return hop[:64]
    real = environ.get("HTTP_X_REAL_IP", "").strip()
    return real[:64] or peer


class LruTable(OrderedDict):
    """A dict that forgets its least recently used keys past ``size``:
    a flood of new addresses evicts old entries one by one instead of
    resetting every limit at once."""

    def __init__(self, size=100_000):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make):
        value = self.get(key)
        if value is None:
            value = self[key] = make()
            if len(self) > self.size:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value
