"""Game state for a player: the grid, who am I, my bets (SPEC section 9)."""
import bottle

from actors.store import next_cursor

from ._kit import ApiError, api

__all__ = ["add_api_routes"]


def add_api_routes(app, kit, market, hub):
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
        # The market's read-only connection, or a call to it from a gateway.
        bets = market.read_history(s.uid, cursor, limit)
        return {"bets": bets, "next": next_cursor(bets, limit)}
