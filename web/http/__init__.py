"""The HTTP API and the page: ``build_app`` returns the bottle app that
``Server`` mounts (sign-in, session, history, health, static files)."""
from ._app import build_app

__all__ = ["build_app"]
