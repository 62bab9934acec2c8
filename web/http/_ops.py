"""Operations: ``/healthz`` for load balancers, ``/metrics`` for Prometheus
(behind ``metrics_token`` when one is set)."""
import hmac
import json

import bottle

from ._kit import api

__all__ = ["add_ops_routes"]


def add_ops_routes(app, cfg, market, metrics):
    @app.get("/healthz")
    @api
    def healthz():
        ok, reason = market.health()
        if not ok:
            bottle.response.status = 503
            return {"status": "unavailable", "reason": reason}
        return {"status": "ok"}

    @app.get("/metrics")
    def prometheus():
        if cfg.metrics_token:
            given = bottle.request.environ.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(given.encode("latin-1"), f"Bearer {cfg.metrics_token}".encode()):
                # ``unauthorized`` is not a SPEC section 9 reason, and on
                # purpose: /metrics is the operator's (section 5), read by
                # Prometheus, not part of the player's wire protocol.
                bottle.response.status = 401
                bottle.response.content_type = "application/json"
                bottle.response.set_header("WWW-Authenticate", "Bearer")
                return json.dumps({"error": "unauthorized", "detail": "/metrics needs its bearer token"})
        data, ctype = metrics.render()
        bottle.response.content_type = ctype
        return data
