// Entry point: builds the board and its panels, wires the buttons, and
// signs the player in. The rest lives in one module per idea:
//   page.js     the shared state and the small setters (balance, status, market, stake)
//   account.js  signed out / signed in / signing out, the WebSocket session
//   frames.js   frames from the server, results announced, the chart's past filled
//   taps.js     a cell turned into a signed bet; lost acks recovered from history
//   hints.js    the payout preview, the focused cell in words, the explainer
//   topup.js    the demo top-up
//   markets.js  the markets and the switcher (shown when there are several)
//
//   <script type="module" src="/static/app.js"></script>
//   // then, for tests and curious players (read-only, see debug.js):
//   window.tapgrid.state()      // {connected, user, balance, market, marketId, bets: [{nonce, bet, state, col, lo, market, ...}]}
//   window.tapgrid.markets()    // [{market_id, asset, column_ms, band_cents}] from /api/markets
//   window.tapgrid.openCells()  // [{t0, lo, mult, x, y}]  x, y: CSS px inside the canvas
//   window.tapgrid.stacks()     // the board's market's [{col, lo, count, stake, potential, payout, state, label: [top, bottom]}]
//   window.tapgrid.offscreen()  // {above, below}: the player's bets off the visible prices

import { apiGet } from "/static/net.js";
import { LivePanel } from "/static/live.js";
import { cryptoAvailable } from "/static/keys.js";
import { GridView } from "/static/grid.js";
import { HistoryPanel } from "/static/history.js";
import { Summary } from "/static/summary.js";
import { exposeDebug } from "/static/debug.js";
import { byTestId as $ } from "/static/ui.js";
import { state, book, sounds, parts, setStatus, loadStake, guard, onFailure } from "/static/page.js";
import { resume, signIn, signOut, showSignIn, setBusy } from "/static/account.js";
import { fillPriceHistory } from "/static/frames.js";
import { tap, reconcile, refreshHistory } from "/static/taps.js";
import { loadTolerance } from "/static/slippage.js";
import { showPreview, describeFocus, closeExplainer } from "/static/hints.js";
import { topUp } from "/static/topup.js";
import { loadMarkets, boardBets, boardStacks, marketOf, several } from "/static/markets.js";

function setMuted(muted) {
  sounds.setMuted(muted);
  const b = $("mute-btn");
  b.setAttribute("aria-pressed", String(muted));
  b.textContent = muted ? "Sound off" : "Sound on";
}

function toggleHistory(open) {
  const drawer = $("history-drawer");
  const want = open ?? !drawer.classList.contains("open");
  drawer.classList.toggle("open", want);
  $("history-toggle").setAttribute("aria-expanded", String(want));
}

function buildBoard() {
  const view = new GridView($("grid-canvas"), {
    now: () => (state.conn ? state.conn.serverNow() : Date.now()),
    bets: boardBets,
    stacks: boardStacks,
    onTap: (cell) => guard(() => tap(cell)),
    onHover: (cell, point) => showPreview(cell, point),
    onFocusCell: (cell) => describeFocus(cell),
    onViewChange: (panned) => { $("recenter-btn").hidden = !panned; },
  });
  const summary = new Summary($("summary"));
  Object.assign(parts, {
    view,
    summary,
    live: new LivePanel($("live")),
    history: new HistoryPanel($("history"), {
      token: () => state.token,
      market: (id) => marketOf(id),
      named: () => several(),
      sessionKey: () => state.key,
      onBets: (rows) => summary.addRows(rows),
    }),
  });
  exposeDebug({ state, book, view, sounds, summary, stacks: boardStacks });
  view.start();
}

function wireButtons() {
  const { view, live } = parts;
  $("guest-btn").addEventListener("click", () => guard(() => signIn("guest")));
  $("wallet-btn").addEventListener("click", () => guard(() => signIn("wallet")));
  $("signout-btn").addEventListener("click", () => guard(() => signOut()));
  $("history-refresh").addEventListener("click", () => guard(refreshHistory));
  $("retry-btn").addEventListener("click", () => { if (state.conn) state.conn.retryNow(); });
  $("recenter-btn").addEventListener("click", () => view.recenter());
  $("mute-btn").addEventListener("click", () => setMuted(!sounds.muted));
  $("history-toggle").addEventListener("click", () => toggleHistory());
  $("explainer-ok").addEventListener("click", closeExplainer);
  $("topup-btn").addEventListener("click", () => guard(topUp));
  apiGet("/api/feed").then((f) => live.show(f)).catch(() => { /* the frames will come */ });
}

async function boot() {
  loadStake();
  loadTolerance();
  buildBoard();
  setStatus("idle");
  setInterval(() => {
    if (state.status === "reconnecting" || state.status === "offline") setStatus(state.status, state.retryAt);
    if (state.token) {
      guard(() => reconcile(false));
      book.prune(parts.view.now(), parts.view.grid.column_ms);
    }
  }, 500);
  wireButtons();
  setMuted(sounds.muted);
  await loadMarkets();
  guard(fillPriceHistory);

  if (!cryptoAvailable()) {
    setBusy(true);
    showSignIn("This page needs a secure context (https or localhost) to create your signing key.");
    return;
  }
  await resume();
}

boot().catch(onFailure);
