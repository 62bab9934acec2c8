"""The HTTP API and the page: ``build_app`` returns the bottle app that
``Server`` mounts (sign-in, session, history, health, static files)."""
from ._app import build_app
from ._ops import add_ops_routes
from ._guard import HEADERS, BodyTimeout, BodyTooLarge, LimitedInput, guard, security_headers

__all__ = ["build_app", "add_ops_routes", "guard", "security_headers", "HEADERS", "BodyTooLarge", "BodyTimeout",
           "LimitedInput"]
