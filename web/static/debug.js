// The page's read-only window for tests and curious players: window.tapgrid
// (its calls are listed at the top of app.js). Apart from app.js so the
// entry point keeps only the session and the board's wiring; the objects
// are app.js's own, passed in once the board exists.

import { verifyTap } from "/static/keys.js";
import { stackLabel } from "/static/cells.js";
import { marketList } from "/static/markets.js";

export function exposeDebug({ state, book, view, sounds, summary, stacks }) {
  const api = Object.freeze({
    state: () => ({
      connected: Boolean(state.conn && state.conn.connected),
      user: state.user,
      balance: state.balance,
      market: state.market,
      marketId: state.marketId,
      bets: book.snapshot(),
    }),
    openCells: () => view.openCells(),
    stacks: () => stacks().map((st) => ({ col: st.col, lo: st.lo, count: st.count, stake: st.stake, potential: st.potential,
      payout: st.payout, state: st.state, label: stackLabel(st) })),
    offscreen: () => view.offscreen(),
    markets: () => marketList(),
    centreOf: (t0, lo) => view.centreOf(t0, lo),
    layout: () => view.layout,
    view: () => ({ panned: view.panned, panCents: view.panCents, zoom: view.zoom, ticks: view.ticks.length,
      firstTick: view.ticks.length ? view.ticks[0].t : null, lockedColumns: [...view.locked.keys()], narrow: view.size.w < 600 }),
    conn: () => (state.conn ? { attempt: state.conn.attempt, status: state.conn.status, retryAt: state.conn.retryAt } : null),
    sounds: () => sounds.log.map((x) => ({ ...x })),
    summary: () => summary.totals(),
    verify: (payload, sig) => (state.key ? verifyTap(state.key.publicKey, payload, sig) : Promise.resolve(false)),
  });
  Object.defineProperty(window, "tapgrid", { value: api, writable: false, configurable: false });
}
