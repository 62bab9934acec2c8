"""A Python client for tapgrid, written from SPEC section 9 alone: guest or
wallet (SIWE) sign-in, a P-256 session key that signs every tap, and a
WebSocket that reconnects with exponential backoff and full jitter.

The tests, the locust user, the benchmarks and a REPL all use it::

    from web.client import TapgridClient
    c = TapgridClient("http://127.0.0.1:8080")
    c.guest()
    c.connect()
    col, lo, mult = c.open_cell()
    c.tap(col, lo, stake=500, min_mult=mult)     # {'type': 'ack', 'ok': True, 'bet': ...}

Sockets are gevent's, so thousands of clients share one process.
"""
import http.client
import json
import random
import secrets
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

import gevent
from coincurve import PrivateKey
from Crypto.Hash import keccak
from gevent import socket as gsocket

from actors.feeds import WSClient, WSHandshakeError
from actors.wire import SessionSigner, encode_tap_payload
from engine import Future

from .auth import build_message, checksum_address

__all__ = ["TapgridClient", "HttpError", "Wallet", "backoff_delays", "grid_from_grid2"]


def grid_from_grid2(msg):
    """A ``grid2`` frame as the v1 ``grid`` frame it stands for."""
    out = {k: v for k, v in msg.items() if k != "columns"}
    out["type"] = "grid"
    band = msg["band_cents"]
    out["columns"] = [{"t0": c["t0"], "cells": [{"lo": c["lo"] + i * band, "mult": m}
                                                 for i, m in enumerate(c["mults"]) if m is not None]}
                      for c in msg["columns"]]
    return out


class HttpError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def backoff_delays(base=5.0, cap=60.0, rng=random.random):
    """Full jitter: the n-th wait is uniform in [0, min(cap, base * 2**n)]."""
    attempt = 0
    while True:
        yield rng() * min(cap, base * (2 ** attempt))
        attempt += 1


def _keccak(data):
    return keccak.new(digest_bits=256, data=data).digest()


class Wallet:
    """A secp256k1 key that answers EIP-191 ``personal_sign`` (for tests,
    bots and the REPL; players use their own wallet in the browser)."""

    def __init__(self, private_key=None):
        self.key = PrivateKey(private_key) if private_key else PrivateKey()
        pub = self.key.public_key.format(compressed=False)[1:]
        self.address = checksum_address("0x" + _keccak(pub)[-20:].hex())

    def personal_sign(self, text):
        msg = text.encode()
        digest = _keccak(b"\x19Ethereum Signed Message:\n" + str(len(msg)).encode() + msg)
        sig = self.key.sign_recoverable(digest, hasher=None)
        return "0x" + (sig[:64] + bytes([sig[64] + 27])).hex()


class _GeventHTTPConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = gsocket.create_connection((self.host, self.port), self.timeout)


class TapgridClient:
    def __init__(self, base_url, *, signer=None, timeout=10.0, backoff_base=5.0, backoff_cap=60.0,
                 origin=None, reconnect=True, use_ticket=False, grid_version=1):
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port or 80
        self.ws_url = ("wss" if parts.scheme == "https" else "ws") + f"://{parts.netloc}/ws"
        self.signer = signer or SessionSigner.generate()
        self.timeout = timeout
        self.origin = origin
        self.reconnect = reconnect
        self.use_ticket = use_ticket  # /ws?ticket= (from /api/ws-ticket) instead of ?token=
        self.grid_version = grid_version   # 2: ask for compact grid2 frames
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.token = None
        self.user = None
        self.balance = None
        self.ws = None
        self.grid = None              # the default market's latest grid
        self.market = None            # the default market's latest market frame
        self.last_tick = None         # (price, ts) of the default market's asset
        # v1.1, several markets: the latest of each, by market id and by asset
        self.default_market = None    # learnt from the welcome's market frame
        self.default_asset = None     # learnt from the welcome's tick
        self.grids = {}
        self.markets_seen = {}
        self.ticks = {}
        self._welcome = False
        self.results = []
        self.errors = []
        self.on_event = None          # optional callable(msg dict)
        self.connected = gevent.event.Event()
        # Set once a hello and a grid have both arrived: only then can the
        # client pick a cell (open_cell) and tap.
        self.ready = gevent.event.Event()
        self.reconnects = 0
        self.clock_offset = 0
        self._pending = {}
        self._reader = None
        self._closing = False

    # --- HTTP ----------------------------------------------------------------------------

    def request(self, method, path, body=None, auth=True):
        conn = _GeventHTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = "Bearer " + self.token
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode(errors="replace")
        if resp.status >= 400:
            raise HttpError(resp.status, parsed)
        return parsed

    def guest(self, prove=True):
        """A guest session; ``prove`` signs the server's challenge with the
        session key (proof of possession, a v1 addition the server checks)."""
        body = {"session_key": self.signer.public_b64}
        if prove:
            try:
                nonce = self.request("POST", "/api/auth/challenge", auth=False)["nonce"]
            except HttpError as e:
                # No challenge for this Host (a proxy without public_url):
                # sign in the v1 way; a server that requires the proof says so.
                if e.status != 400:
                    raise
            else:
                body["proof"] = {"nonce": nonce, "sig": self.signer.sign("tapgrid-guest:" + nonce)}
        r = self.request("POST", "/api/auth/guest", body, auth=False)
        self.token, self.user, self.balance = r["token"], r["user"], r["balance"]
        return r

    def login(self, wallet, expires_in_s=3600):
        ch = self.request("POST", "/api/auth/challenge", auth=False)
        issued = datetime.fromisoformat(ch["issued_at"].replace("Z", "+00:00"))
        expires = (issued + timedelta(seconds=expires_in_s)).astimezone(timezone.utc)
        message = build_message(
            domain=ch["domain"], address=wallet.address, uri=ch["uri"], chain_id=ch["chain_id"],
            nonce=ch["nonce"], issued_at=ch["issued_at"],
            expiration_time=expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            session_key_b64=self.signer.public_b64)
        r = self.request("POST", "/api/auth/login",
                         {"message": message, "signature": wallet.personal_sign(message)}, auth=False)
        self.token, self.user, self.balance = r["token"], r["user"], r["balance"]
        return r

    def me(self):
        return self.request("GET", "/api/me")

    def history(self, cursor=None, limit=50):
        q = f"/api/history?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        return self.request("GET", q)

    def fetch_grid(self, market_id=None):
        q = "" if market_id is None else "?market_id=" + quote(market_id, safe="")
        return self.request("GET", "/api/grid" + q, auth=False)

    def fetch_markets(self):
        """``/api/markets`` (v1.1): ``{"default", "markets": [...]}``."""
        return self.request("GET", "/api/markets", auth=False)

    # --- WebSocket ----------------------------------------------------------------------------

    def connect(self, wait=True):
        """Open the socket; with ``wait``, return only when the client can
        tap: the hello and a grid have arrived (the grid comes in a frame of
        its own, so the hello alone is not enough for ``open_cell``)."""
        self._closing = False
        self._open()
        self._reader = gevent.spawn(self._read_loop)
        if wait:
            if not self.connected.wait(self.timeout):
                raise TimeoutError("no hello from the server")
            if not self.ready.wait(self.timeout):
                raise TimeoutError("no grid from the server")
        return self

    def _open(self):
        headers = {}
        if self.use_ticket:
            query = "ticket=" + self.request("POST", "/api/ws-ticket")["ticket"]
        else:
            query = f"token={self.token}"
        if self.grid_version == 2:
            query += "&grid=2"
        self.ws = WSClient.connect(f"{self.ws_url}?{query}", origin=self.origin,
                                   timeout=self.timeout, headers=headers)

    def _read_loop(self):
        delays = None
        while not self._closing:
            ws = self.ws
            while ws is not None:
                try:
                    raw = ws.recv()
                except Exception:
                    raw = None
                if raw is None:
                    break
                delays = None
                self._dispatch(json.loads(raw))
            self.connected.clear()
            self.ready.clear()
            self._fail_pending("disconnected")
            if self._closing or not self.reconnect:
                return
            delays = delays or backoff_delays(self.backoff_base, self.backoff_cap)
            while not self._closing:
                gevent.sleep(next(delays))
                try:
                    self._open()
                    self.reconnects += 1
                    break
                except WSHandshakeError as e:
                    self.ws = None
                    if e.status == 401:          # the session is gone: stop trying
                        self._closing = True
                        return
                    if e.retry_after:            # the server said when: honour it
                        gevent.sleep(e.retry_after * random.random())
                    continue
                except HttpError as e:            # the ticket request (use_ticket)
                    self.ws = None
                    if e.status == 401:
                        self._closing = True
                        return
                    continue
                except (OSError, TimeoutError, gevent.Timeout):
                    self.ws = None
                    continue

    def _dispatch(self, msg):
        kind = msg.get("type")
        if kind == "ack":
            fut = self._pending.pop(msg.get("nonce"), None)
            if msg.get("ok"):
                self.balance = msg["balance"]
            if fut is not None:
                fut.set(msg)
            elif msg.get("nonce") is None and self._pending and not msg.get("ok"):
                self.errors.append(msg)
        elif kind == "hello":
            self.user, self.balance = msg["user"], msg["balance"]
            self.clock_offset = msg["server_ts"] - int(time.time() * 1000)
            self._welcome = True      # the default market's market, grid and tick follow
            self.connected.set()      # the hub sends this connection's grid next
        elif kind == "tick":
            asset = msg.get("a")
            if self._welcome and self.default_asset is None:
                self.default_asset = asset
            self.ticks[asset] = (msg["p"], msg["t"])
            if asset == self.default_asset:
                self.last_tick = (msg["p"], msg["t"])
        elif kind in ("grid", "grid2"):
            grid = msg if kind == "grid" else grid_from_grid2(msg)
            mid = msg.get("market_id")
            self.grids[mid] = grid
            if mid == self.default_market:
                self.grid = grid
                if self.connected.is_set():
                    self.ready.set()
        elif kind == "market":
            mid = msg.get("market_id")
            if self._welcome and self.default_market is None:
                self.default_market = mid
            self.markets_seen[mid] = msg
            if mid == self.default_market:
                self.market = msg
        elif kind == "result":
            self.balance = msg["balance"]
            self.results.append(msg)
        elif kind == "error":
            self.errors.append(msg)
        if self.on_event is not None:
            self.on_event(msg)

    def _fail_pending(self, why):
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            fut.fail(ConnectionError(why))

    def close(self):
        self._closing = True
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
        if self._reader is not None:
            self._reader.join(2)

    # --- taps --------------------------------------------------------------------------------------

    def subscribe(self, markets, wait=True):
        """Receive the ticks and grids of these markets (v1.1; the default
        market's until then); with ``wait``, until each one's grid is here."""
        for m in markets:
            self.grids.pop(m, None)
        self.ws.send_text(json.dumps({"type": "subscribe", "markets": list(markets)}))
        if wait and not self.wait_for(lambda: all(m in self.grids for m in markets),
                                      self.timeout):
            raise TimeoutError(f"no grid for {markets} after subscribing")

    def signed_tap(self, col, lo, stake, min_mult, ts=None, nonce=None, market_id=None):
        """The ``tap`` frame (a dict) for a cell, signed with the session key;
        ``market_id`` leads the payload for a market other than the default
        (v1.1; a v1 payload without it is for the default market)."""
        ts = int(time.time() * 1000) + self.clock_offset if ts is None else ts
        nonce = nonce or secrets.token_urlsafe(12)
        payload = encode_tap_payload(col, lo, stake, min_mult, ts, nonce, market_id)
        return {"type": "tap", "payload": payload, "sig": self.signer.sign(payload)}, nonce

    def send_raw(self, text):
        self.ws.send_text(text)

    def tap_async(self, col, lo, stake, min_mult=101, frame=None, market_id=None):
        if frame is None:
            frame, nonce = self.signed_tap(col, lo, stake, min_mult, market_id=market_id)
        else:
            nonce = json.loads(frame["payload"])["nonce"]
        fut = Future()
        self._pending[nonce] = fut
        self.ws.send_text(json.dumps(frame, separators=(",", ":")))
        return fut

    def tap(self, col, lo, stake, min_mult=101, timeout=None, market_id=None):
        return self.tap_async(col, lo, stake, min_mult, market_id=market_id).get(
            timeout or self.timeout)

    def open_cell(self, offset_bands=1, margin_ms=800, market_id=None):
        """(col, lo, mult) of an open cell near the price from the last grid
        (of ``market_id``, once subscribed to it; None: the default market)."""
        g = self.grid if market_id is None else self.grids.get(market_id)
        if not g:
            return None
        now = int(time.time() * 1000) + self.clock_offset
        band = g["band_cents"]
        base = g["price"] // band * band + offset_bands * band
        for column in g["columns"]:
            if now < column["t0"] - g["lock_ms"] - margin_ms:
                for cell in column["cells"]:
                    if cell["lo"] == base:
                        return column["t0"], cell["lo"], cell["mult"]
        return None

    def wait_for(self, predicate, timeout=10.0):
        with gevent.Timeout(timeout, False):
            while not predicate():
                gevent.sleep(0.01)
            return True
        return False
