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
        bottle.response.content_type = "application/json"
        return json.dumps({"error": "not_found" if err.status_code == 404 else "error",
                           "detail": err.status_line})

    for code in (400, 404, 405, 413, 500):
        app.error(code)(json_error)
    return app
