"""The page (index and static files) and the ``/ws`` route the gateway
serves once ``FastHandler`` has upgraded the connection."""
import json
import os

import bottle

__all__ = ["add_page_routes", "STATIC"]

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")
# Explicit types: with nosniff a stylesheet served without one is refused,
# and the system's mime table may not know .css or .js.
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml",
          ".html": "text/html", ".json": "application/json", ".ico": "image/x-icon"}


def add_page_routes(app, gateway):
    @app.get("/")
    def index():
        return bottle.static_file("index.html", root=STATIC)

    @app.get("/static/<path:path>")
    def static(path):
        return bottle.static_file(path, root=STATIC, mimetype=_TYPES.get(os.path.splitext(path)[1], "auto"))

    @app.get("/ws")
    def ws():
        socket = bottle.request.environ.get("wsgi.websocket")
        sess = bottle.request.environ.get("tapgrid.session")
        if socket is None or sess is None:
            bottle.response.status = 400
            bottle.response.content_type = "application/json"
            return json.dumps({"error": "bad_request", "detail": "WebSocket upgrade required"})
        gateway.serve(socket, sess, bottle.request.environ)
        return ""
