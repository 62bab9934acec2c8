"""The front end: HTTP API, WebSocket gateway, the page, and a Python client.

    from web import Server, TapgridClient
    # Server(cfg).start() runs what `tapgrid serve` runs;
    # TapgridClient("http://127.0.0.1:8080").guest() plays from Python.

Names load on first use (PEP 562), so ``import web.cli`` stays light and
``tapgrid serve`` can monkey-patch before sockets and threads are imported.
"""
import importlib

__all__ = ["Server", "serve", "build_app", "Gateway", "Hub", "Metrics", "TapgridClient", "Wallet",
           "ApiError", "SessionSigner", "encode_tap_payload", "parse_tap_payload", "verify_tap",
           "build_message", "verify_login", "MemoryNonceStore", "RedisNonceStore",
           "ChallengeStore", "RedisChallengeStore", "SqliteSessionStore", "RedisSessions"]

_HOME = {
    "Server": "_server", "serve": "_server", "build_app": "_app", "Gateway": "_gateway",
    "Hub": "_hub", "Metrics": "_metrics", "TapgridClient": "client", "Wallet": "client",
    "ApiError": "client", "SessionSigner": "_tapsig", "encode_tap_payload": "_tapsig",
    "parse_tap_payload": "_tapsig", "verify_tap": "_tapsig", "build_message": "_siwe",
    "verify_login": "_siwe", "MemoryNonceStore": "_nonces", "RedisNonceStore": "_nonces",
    "ChallengeStore": "_siwe", "RedisChallengeStore": "_siwe",
    "SqliteSessionStore": "_sessions", "RedisSessions": "_sessions",
}


def __getattr__(name):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'web' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
