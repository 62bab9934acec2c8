// What the page tells the player before a tap: what a cell would pay (on
// hover or press), the keyboard's focused cell in words for a screen
// reader, and the first-run explainer (shown once, remembered).
//
//   import { showPreview, describeFocus, showExplainerOnce } from "/static/hints.js";
//   showPreview({mult: 235}, {x: 120, y: 80});   // "10.00 → 23.50 if touched"
//   describeFocus({t0, lo, mult});

import { credits, dollars, MINOR_PER_CREDIT, payoutOf, multLabel, clockTime } from "/static/format.js";
import { byTestId as $ } from "/static/ui.js";
import { state, parts } from "/static/page.js";

const EXPLAINED_KEY = "tapgrid.explained";

export function showPreview(cell, point) {
  const node = $("payout-preview");
  if (!cell || !state.token) {
    node.hidden = true;
    return;
  }
  const stake = state.stakeChip * MINOR_PER_CREDIT;
  node.textContent = `${credits(stake)} → ${credits(payoutOf(stake, cell.mult))} if touched`;
  node.dataset.payout = String(payoutOf(stake, cell.mult));
  node.hidden = false;
  const board = node.parentElement.getBoundingClientRect();
  const x = Math.min(Math.max(8, point.x + 14), board.width - node.offsetWidth - 8);
  const y = Math.max(8, point.y - node.offsetHeight - 14);
  node.style.left = `${x}px`;
  node.style.top = `${y}px`;
}

export function describeFocus(cell) {
  if (!cell) return;
  const stake = state.stakeChip * MINOR_PER_CREDIT;
  $("cell-focus").textContent = `Window ${clockTime(cell.t0)}, ${dollars(cell.lo)} to ${dollars(cell.lo + parts.view.grid.band_cents)}, `
    + `${multLabel(cell.mult)}: a ${credits(stake)} stake pays ${credits(payoutOf(stake, cell.mult))}. Enter to bet.`;
}

export function showExplainerOnce() {
  let seen = false;
  try { seen = localStorage.getItem(EXPLAINED_KEY) === "1"; } catch (_) { seen = false; }
  $("explainer").hidden = seen;
}

export function closeExplainer() {
  $("explainer").hidden = true;
  try { localStorage.setItem(EXPLAINED_KEY, "1"); } catch (_) { /* private mode */ }
  $("grid-canvas").focus();
}
