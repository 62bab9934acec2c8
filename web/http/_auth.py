"""Signing in and out: guest accounts (demo mode), the SIWE challenge and
login, logout, and WebSocket tickets (SPEC section 9 and its additions)."""
import secrets
import time

import bottle

from actors import UserExists
from actors.wire import Rejected, b64url_decode, load_session_key, verify_tap

from .._addr import peer_is_trusted
from ..auth import verify_login
from ..gateway import TokenBucket
from ._kit import ApiError, api, iso

__all__ = ["add_auth_routes", "CHAIN_ID", "GUEST_PROOF_PREFIX"]

CHAIN_ID = 1
GUEST_PROOF_PREFIX = "tapgrid-guest:"


def add_auth_routes(app, kit, market, gateway, sessions, challenges):
    cfg = kit.cfg
    guest_budget = TokenBucket(cfg.guest_rate, cfg.guest_burst, time.monotonic())

    def sign_in(user, key_raw, credit, expires_ms, new=False):
        uid = market.create_user(user, credit, new=new)
        token = sessions.create(user, uid, key_raw, expires_ms)
        return {"token": token, "user": user, "balance": market.balance(uid)}

    @app.post("/api/auth/guest")
    @api
    def guest():
        if not cfg.demo:
            raise ApiError(404, "bad_request", "guest accounts exist in demo mode only")
        kit.auth_limit()
        data = kit.body()
        key_b64 = data.get("session_key")
        try:
            key_raw = b64url_decode(key_b64) if isinstance(key_b64, str) else b""
            key = load_session_key(key_raw)
        except Rejected:
            raise ApiError(400, "bad_request", "session_key must be a base64url P-256 point")
        check_guest_proof(data.get("proof"), key)
        if not guest_budget.take(time.monotonic()):
            # Server-wide: many addresses (or a proxy's worth) together.
            bottle.response.set_header("Retry-After", "2")
            raise ApiError(503, "overloaded", "too many new guests right now; retry shortly")
        expires = int(time.time() * 1000) + cfg.session_ttl_ms
        for _ in range(3):
            # 128 random bits, and insert-only: a collision (never expected)
            # draws again instead of signing into the existing account.
            try:
                return sign_in("guest-" + secrets.token_hex(16), key_raw, cfg.guest_credit,
                               expires, new=True)
            except UserExists:
                continue
        raise ApiError(503, "overloaded", "could not allocate a guest name; retry")

    def check_guest_proof(proof, key):
        """Proof of possession (a v1 addition): ``{"nonce": N, "sig": S}``,
        N from ``/api/auth/challenge`` and S the session key's signature of
        ``tapgrid-guest:N``. Checked when given; required only with
        ``guest_proof_required`` (v1 clients send none)."""
        if proof is None:
            if cfg.guest_proof_required:
                raise ApiError(401, "bad_signature", "a proof of the session key is required")
            return
        if (not isinstance(proof, dict) or not isinstance(proof.get("nonce"), str)
                or not isinstance(proof.get("sig"), str) or len(proof["sig"]) > 200):
            raise ApiError(400, "bad_request", "proof is {nonce, sig}")
        if not verify_tap(key, GUEST_PROOF_PREFIX + proof["nonce"], proof["sig"]):
            raise ApiError(401, "bad_signature", "the proof is not signed by the session key")
        if not challenges.consume(proof["nonce"]):
            raise ApiError(401, "expired", "unknown, used or expired challenge nonce")

    def site():
        """(domain, uri) a SIWE message must name. With ``public_url`` set it
        is that; otherwise the request's Host, but only if it is one of this
        server's own names: a phishing site must not get a login by sending
        its own Host header with a message signed for its domain."""
        if cfg.public_url:
            scheme, _, netloc = cfg.public_url.partition("://")
            return netloc.rstrip("/"), f"{scheme}://{netloc.rstrip('/')}"
        host = kit.header("Host")
        port = f":{cfg.port}"
        own = {cfg.host + port, "127.0.0.1" + port, "localhost" + port, "[::1]" + port}
        own |= {o.split("://", 1)[-1].rstrip("/") for o in cfg.allowed_origins}
        if host not in own:
            raise ApiError(400, "bad_request", "this server does not answer to that host name")
        # bottle's urlparts believes X-Forwarded-Proto from anyone: only a
        # trusted proxy may say the client spoke https.
        scheme = bottle.request.environ.get("wsgi.url_scheme", "http")
        forwarded = kit.header("X-Forwarded-Proto")
        if forwarded in ("http", "https") and peer_is_trusted(bottle.request.environ,
                                                              cfg.trusted_proxies):
            scheme = forwarded
        return host, f"{scheme}://{host}"

    @app.post("/api/auth/challenge")
    @api
    def challenge():
        kit.auth_limit()
        domain, uri = site()
        return {"nonce": challenges.issue(), "domain": domain, "uri": uri, "chain_id": CHAIN_ID,
                "issued_at": iso(int(time.time() * 1000))}

    @app.post("/api/auth/login")
    @api
    def login():
        kit.auth_limit()                 # before the body is read or parsed
        data = kit.body()
        message, signature = data.get("message"), data.get("signature")
        if not isinstance(message, str) or not isinstance(signature, str) or len(message) > 4096:
            raise ApiError(400, "bad_request", "message and signature are required strings")
        domain, uri = site()
        try:
            ok = verify_login(message, signature, domain=domain, uri=uri,
                              chain_id=CHAIN_ID, now_ms=int(time.time() * 1000),
                              consume_nonce=challenges.consume)
        except Rejected as e:
            raise ApiError(401, e.code, str(e))
        credit = cfg.guest_credit if cfg.demo else 0
        return sign_in(ok.address, ok.session_key, credit, ok.expiration_ms)

    @app.post("/api/auth/logout")
    @api
    def logout():
        """Revoke the bearer token everywhere: the stored session, this
        process's cache, other processes' (Redis pub/sub), open sockets."""
        s = kit.session()
        sessions.revoke(kit.bearer())
        gateway.end_session(s.sid)
        return {"ok": True}

    @app.post("/api/ws-ticket")
    @api
    def ws_ticket():
        """A single-use ticket for ``/ws?ticket=``: the token stays out of URLs."""
        kit.session()
        if gateway.tickets is None:
            raise ApiError(404, "bad_request", "this server offers no tickets")
        return {"ticket": gateway.tickets.issue(kit.bearer()), "expires_in_ms": cfg.ws_ticket_ttl_ms}
