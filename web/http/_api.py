"""Game state for a player: the markets and their grids, who am I, my bets
(SPEC section 9 and its v1.1 additions)."""
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
        market_id = bottle.request.query.get("market_id") or None
        unit = getattr(market, "unit", None)      # a handle without markets: the default only
        if market_id is not None and (unit is None or unit(market_id) is None):
            raise ApiError(400, "bad_request", "unknown market_id")
        return hub.grid_body(market_id)

    @app.get("/api/markets")
    @api
    def markets():
        # v1.1: every market, the default first
        return market.markets()

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
