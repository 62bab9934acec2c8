// What the page's modules share: the player's state, the bet book, the
// sounds, the board's parts (made once at boot), and the small setters that
// keep the top bar, the banner and the stake chips in step with the state.
// Handlers run through guard(), so none throws into the void.
//
//   import { state, parts, setBalance, guard } from "/static/page.js";
//   setBalance(125000);                 // the top bar shows "1,250.00"
//   guard(() => parts.view.recenter());

import { BetBook } from "/static/bets.js";
import { Sounds } from "/static/sound.js";
import { dollars } from "/static/format.js";
import { byTestId as $, toast, showBalance, showStatus, showMarket, renderStakes } from "/static/ui.js";
import { showTopUp } from "/static/topup.js";

const STAKE_KEY = "tapgrid.stake";
// Chips are whole credits; the wire carries minor units (see format.js).
export const STAKE_CHIPS = [1, 5, 10, 25, 100];

export const state = {
  token: null,
  user: null,
  balance: null,
  key: null,
  conn: null,
  market: "open",
  marketId: null, // the market on the board (markets.js); null until /api/markets answers
  stakeChip: STAKE_CHIPS[1],
  demoOff: false,
  status: "idle",
  retryAt: 0,
};
export const book = new BetBook();
export const sounds = new Sounds();
// Set at boot, once the DOM is there: {view, history, summary, live}.
export const parts = { view: null, history: null, summary: null, live: null };

export function setBalance(minor) {
  if (!Number.isFinite(minor)) return;
  const before = state.balance;
  state.balance = minor;
  showBalance(minor, before);
  showTopUp();
}

export function setMarket(status, reason) {
  state.market = status === "suspended" ? "suspended" : "open";
  parts.view.setMarket(state.market);
  showMarket(state.market, reason);
}

export function setStatus(status, retryAt = 0) {
  state.status = status;
  state.retryAt = retryAt;
  parts.view.setLive(status === "connected" || !state.token);
  showStatus(status, retryAt, Boolean(state.token));
  $("retry-btn").hidden = !(state.token && (status === "reconnecting" || status === "offline"));
}

export function loadStake() {
  try {
    const saved = Number(localStorage.getItem(STAKE_KEY));
    if (STAKE_CHIPS.includes(saved)) state.stakeChip = saved;
  } catch (_) { /* private mode */ }
  renderStakes(STAKE_CHIPS, state.stakeChip, pickStake);
}

function pickStake(n) {
  state.stakeChip = n;
  try { localStorage.setItem(STAKE_KEY, String(n)); } catch (_) { /* private mode */ }
  renderStakes(STAKE_CHIPS, n, pickStake);
}

export function showPrice() {
  const p = parts.view.price;
  $("price").textContent = p === null ? "—" : dollars(p, { decimals: true });
}

// Handlers must never throw into the void: report, keep the page alive.
export function guard(fn) {
  try {
    const out = fn();
    if (out && typeof out.catch === "function") out.catch(onFailure);
  } catch (err) {
    onFailure(err);
  }
}

export function onFailure(err) {
  console.warn("tapgrid:", err);
  toast("Something went wrong on this page. It will keep trying.", "error", "client");
}
