// Taps: a cell turned into a signed bet on the socket, and the bets kept
// honest afterwards: lost acks (a reconnect, a dropped frame) recovered
// from history, where each bet carries the payload, and so the nonce, it
// was placed with; the history refreshed once after a burst of results.
// A tap carries the player's odds tolerance (slippage.js) as its min_mult;
// one refused because the odds moved further says what they are now and
// offers to tap again at them.
//
//   import { tap, reconcile, refused } from "/static/taps.js";
//   await tap({t0, lo, mult, open: true});   // pending in the book, then acked
//   await reconcile(true);                   // settle the pending from history
//   await refused(bet, "odds_changed");      // the toast, with the new multiplier

import { signTap, newNonce } from "/static/keys.js";
import { reasonText, MINOR_PER_CREDIT, seconds, multLabel } from "/static/format.js";
import { apiGet } from "/static/net.js";
import { byTestId as $, toast } from "/static/ui.js";
import { state, book, sounds, parts, guard } from "/static/page.js";
import { isDefault } from "/static/markets.js";
import { minMult } from "/static/slippage.js";

const PENDING_CHECK_MS = 8000; // an ack normally takes milliseconds; this long means it was lost
const PENDING_GIVE_UP_MS = 40000; // past the server's 30 s ts window a tap can no longer land
const HISTORY_SETTLE_MS = 600; // results come in bursts at column end: refresh once after them
const RETRY_MS = 8000; // how long "tap again at the new odds" stays offered

let historyTimer = null;
let lastReconcile = 0;

export async function tap(cell) {
  const { view } = parts;
  if (!state.token || !state.key) return;
  if (cell.locked) {
    return toast(`This column is locked: betting closes ${seconds(view.grid.lock_ms)} before its window starts. Tap a column further right.`, "error", "column_locked");
  }
  if (!state.conn || !state.conn.connected) return toast("Not connected. Your tap was not sent.", "error", "offline");
  if (state.market !== "open") return toast(reasonText("market_suspended"), "error", "market_suspended");
  if (!cell.open) return toast(reasonText("column_closed"), "error", "column_closed");
  const stake = state.stakeChip * MINOR_PER_CREDIT;
  const nonce = newNonce();
  const ts = Math.round(state.conn.serverNow());
  // Key order is part of the signed bytes (SPEC §9): do not reorder. A tap
  // for another market than the default names it first (v1.1).
  const market = state.marketId;
  // The server takes the bet at its current multiplier if it is at least
  // min_mult: what was shown, less the player's tolerance.
  const floor = minMult(cell.mult);
  const fields = { col: cell.t0, lo: cell.lo, stake, min_mult: floor, ts, nonce };
  const payload = JSON.stringify(isDefault(market) ? fields : { market_id: market, ...fields });
  const pending = book.addPending({ nonce, col: cell.t0, lo: cell.lo, stake, mult: cell.mult, market });
  pending.shown = cell.mult;
  pending.minMult = floor;
  hideRetry();
  let sig;
  try {
    sig = await signTap(state.key, payload);
  } catch (_) {
    book.reject(nonce, "bad_signature");
    return toast("Your signing key is unavailable. Please sign in again.", "error", "bad_signature");
  }
  if (!state.conn || !state.conn.send({ type: "tap", payload, sig })) {
    book.reject(nonce, "offline");
    toast("Not connected. Your tap was not sent.", "error", "offline");
    return;
  }
  sounds.play("tap");
}

export async function reconcile(force = false) {
  const { view, history } = parts;
  const now = Date.now();
  const waiting = book.pending().filter((b) => force || now - b.sentAt > PENDING_CHECK_MS);
  if (!waiting.length || (!force && now - lastReconcile < PENDING_CHECK_MS)) return;
  lastReconcile = now;
  const rows = await history.refresh();
  if (!rows) return;
  book.fromHistory(rows, view.now(), view.grid.column_ms);
  for (const b of book.pending()) {
    if (Date.now() - b.sentAt > PENDING_GIVE_UP_MS) {
      book.reject(b.nonce, "no_answer");
      toast("A tap got no answer from the server and was not placed.", "error", "no_answer");
    }
  }
}

export function refreshHistory() {
  const { view, history } = parts;
  history.refresh().then((rows) => {
    if (rows) book.fromHistory(rows, view.now(), view.grid.column_ms);
  });
}

export function scheduleHistoryRefresh() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(refreshHistory, HISTORY_SETTLE_MS);
}

// A refused tap's toast. For odds_changed it names the multiplier the cell
// pays now (the server's grid: the page's may be a tick behind) and offers
// to tap again at it; the ack itself carries only the reason (SPEC §9).
export async function refused(bet, reason) {
  if (reason !== "odds_changed") return toast(reasonText(reason), "error", reason);
  const saw = bet.shown ?? bet.mult;
  let now;
  try {
    now = await currentMult(bet);
  } catch (_) {
    return toast(reasonText(reason), "error", reason);
  }
  if (now === null) {
    hideRetry();
    return toast(`The odds moved and ${multLabel(saw)} is no longer offered on that cell.`, "error", reason);
  }
  const limit = bet.minMult !== undefined && bet.minMult < saw ? `, your limit ${multLabel(bet.minMult)}` : "";
  toast(`The odds moved: that cell now pays ${multLabel(now)} (you saw ${multLabel(saw)}${limit}). Tap again to take it.`,
    "error", reason);
  offerRetry(bet, now);
}

async function currentMult(bet) {
  const q = bet.market && !isDefault(bet.market) ? `?market_id=${encodeURIComponent(bet.market)}` : "";
  const grid = await apiGet(`/api/grid${q}`);
  const col = (grid.columns || []).find((c) => c.t0 === bet.col);
  const cell = col && (col.cells || []).find((c) => c.lo === bet.lo);
  return cell ? cell.mult : null;
}

let retryTimer = null;

// The offer sits in the stake bar, not in the toast: toasts are click-
// through, so that one over the board never takes a tap meant for a cell.
function offerRetry(bet, mult) {
  const button = $("retry-tap");
  if (!button) return;
  button.textContent = `Tap again at ${multLabel(mult)}`;
  button.dataset.mult = String(mult);
  button.hidden = false;
  button.onclick = () => {
    hideRetry();
    if (bet.market !== state.marketId) return; // the board shows another market now
    const { view } = parts;
    const now = view.now();
    const open = view.isOpen(bet.col, now);
    guard(() => tap({ t0: bet.col, lo: bet.lo, mult, open, locked: !open && now >= bet.col - view.grid.lock_ms }));
  };
  clearTimeout(retryTimer);
  retryTimer = setTimeout(hideRetry, RETRY_MS);
}

function hideRetry() {
  clearTimeout(retryTimer);
  const button = $("retry-tap");
  if (button) {
    button.hidden = true;
    button.onclick = null;
  }
}
