"""The HTTP side (bottle), put together from its route groups: the page,
sign-in (``_auth``), game state (``_api``) and operations (``_ops``).

Every error answers JSON with a reason; no traceback ever reaches a client
(bottle's debug mode stays off and ``_kit.api`` turns surprises into 500).
"""
import json

import bottle

from .._addr import client_addr
from ._api import add_api_routes
from ._auth import add_auth_routes
from ._kit import ApiError, Kit, api
from ._ops import add_ops_routes
from ._page import add_page_routes
from ._player_api import add_player_routes

__all__ = ["build_app"]

# Every status bottle itself answers with (routing, static files, bodies)
BOTTLE_ERRORS = (400, 401, 403, 404, 405, 408, 411, 413, 414, 416, 431, 500, 501, 503)


def build_app(cfg, market, hub, gateway, sessions, challenges, metrics):
    app = bottle.Bottle(catchall=False)
    kit = Kit(cfg, sessions)
    add_page_routes(app, gateway)
    add_auth_routes(app, kit, market, gateway, sessions, challenges)
    add_api_routes(app, kit, market, hub)
    add_ops_routes(app, cfg, market, metrics)
    add_player_routes(app, cfg, api, ApiError,
                      lambda: client_addr(bottle.request.environ, cfg.trusted_proxies),
                      kit.session, market, hub)

    def json_error(err):
        # bottle's own refusals (no such route, wrong method, a static file
        # that is not there or a Range it cannot serve): the client's fault,
        # so SPEC's ``bad_request`` with the status saying which; a 500 is
        # ours, ``internal``, logged and never shown.
        bottle.response.content_type = "application/json"
        bottle.response.set_header("Cache-Control", "no-store")
        reason = "internal" if err.status_code >= 500 else "bad_request"
        return json.dumps({"error": reason, "detail": err.status_line}, separators=(",", ":"))

    for code in BOTTLE_ERRORS:
        app.error(code)(json_error)
    return app
