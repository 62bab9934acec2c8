// Taps: a cell turned into a signed bet on the socket, and the bets kept
// honest afterwards: lost acks (a reconnect, a dropped frame) recovered
// from history, where each bet carries the payload, and so the nonce, it
// was placed with; the history refreshed once after a burst of results.
//
//   import { tap, reconcile } from "/static/taps.js";
//   await tap({t0, lo, mult, open: true});   // pending in the book, then acked
//   await reconcile(true);                   // settle the pending from history

import { signTap, newNonce } from "/static/keys.js";
import { reasonText, MINOR_PER_CREDIT, seconds } from "/static/format.js";
import { toast } from "/static/ui.js";
import { state, book, sounds, parts } from "/static/page.js";
import { isDefault } from "/static/markets.js";

const PENDING_CHECK_MS = 8000; // an ack normally takes milliseconds; this long means it was lost
const PENDING_GIVE_UP_MS = 40000; // past the server's 30 s ts window a tap can no longer land
const HISTORY_SETTLE_MS = 600; // results come in bursts at column end: refresh once after them

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
  const fields = { col: cell.t0, lo: cell.lo, stake, min_mult: cell.mult, ts, nonce };
  const payload = JSON.stringify(isDefault(market) ? fields : { market_id: market, ...fields });
  book.addPending({ nonce, col: cell.t0, lo: cell.lo, stake, mult: cell.mult, market });
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
