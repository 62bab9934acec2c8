"""The HTTP API and the page: ``build_app`` returns the bottle app that
``Server`` mounts (sign-in, session, history, health, static files)."""
from ._app import build_app
from ._guard import HEADERS, BodyTimeout, BodyTooLarge, LimitedInput, guard, security_headers

__all__ = ["build_app", "guard", "security_headers", "HEADERS", "BodyTooLarge", "BodyTimeout",
           "LimitedInput"]
