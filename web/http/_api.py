"""Game state for a player: the grid, who am I, my bets (SPEC section 9)."""
import bottle

from actors import open_readonly
from actors.store import history, next_cursor

from ._kit import ApiError, api

__all__ = ["add_api_routes"]


def add_api_routes(app, kit, market, hub):
    ro = {"conn": None}

    def reader():
        if ro["conn"] is None:
            ro["conn"] = open_readonly(kit.cfg.db)
        return ro["conn"]

    @app.get("/api/grid")
    @api
    def grid():
        return hub.grid_body()

    @app.get("/api/me")
    @api
    def me():
        s = kit.session()
        return {"user": s.user, "balance": market.balance(s.uid)}

    @app.get("/api/history")
    @api
    def get_history():
        s = kit.session()
        q = bottle.request.query
        try:
            limit = max(1, min(int(q.get("limit") or 50), 200))
            cursor = int(q["cursor"]) if q.get("cursor") else None
        except ValueError:
            raise ApiError(400, "bad_request", "cursor and limit are integers")
        if cursor is not None and not 0 < cursor < 1 << 63:
            # SQLite integers are 64-bit: a bigger one raises OverflowError.
            raise ApiError(400, "bad_request", "cursor is out of range")
        bets = history(reader(), s.uid, cursor, limit)
        return {"bets": bets, "next": next_cursor(bets, limit)}
