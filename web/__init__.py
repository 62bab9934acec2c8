"""The front end: HTTP API, WebSocket gateway, the page, and a Python client.

    from web import Server, TapgridClient
    # Server(cfg).start() runs what `tapgrid serve` runs;
    # TapgridClient("http://127.0.0.1:8080").guest() plays from Python.

Names load on first use (PEP 562), so ``import web.cli`` stays light and
``tapgrid serve`` can monkey-patch before sockets and threads are imported.
"""
import importlib

__all__ = ["Server", "serve", "build_app", "Gateway", "Fanout", "Metrics", "TapgridClient", "Wallet",
           "HttpError", "SessionSigner", "encode_tap_payload", "parse_tap_payload", "verify_tap",
           "build_message", "verify_login", "MemoryNonceStore", "RedisNonceStore",
           "ChallengeStore", "RedisChallengeStore", "SqliteSessionStore", "RedisSessions"]

# Where each name lives; the wire format is the market's (actors.wire).
_HOME = {
    "Server": "web._server", "serve": "web._server", "build_app": "web.http",
    "Gateway": "web.gateway", "Fanout": "web.gateway", "Metrics": "web._metrics",
    "TapgridClient": "web.client", "Wallet": "web.client", "HttpError": "web.client",
    "SessionSigner": "actors.wire", "encode_tap_payload": "actors.wire",
    "parse_tap_payload": "actors.wire", "verify_tap": "actors.wire",
    "build_message": "web.auth", "verify_login": "web.auth", "MemoryNonceStore": "web.auth",
    "RedisNonceStore": "web.auth", "ChallengeStore": "web.auth", "RedisChallengeStore": "web.auth",
    "SqliteSessionStore": "web.auth", "RedisSessions": "web.auth",
}


def __getattr__(name):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'web' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
