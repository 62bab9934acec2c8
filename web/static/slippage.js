// The odds tolerance (slippage, as trading apps call it): how far under the
// multiplier a player saw a tap may still be taken. The grid is repriced on
// every tick, so a tap made a few hundred ms after one often meets a
// slightly different multiplier; the server takes the bet at its current
// multiplier when that is at least the tap's min_mult (SPEC §3), and the
// page sends min_mult = floor(shown × (1 − tolerance)), never under 1.01x.
// "Exact" sends what was shown, as before. The choice is remembered.
//
//   import { loadTolerance, minMult } from "/static/slippage.js";
//   loadTolerance();     // the saved choice (default −2 %), the control wired
//   minMult(250);        // 245 with −2 %, 237 with −5 %, 250 with "exact"

import { byTestId as $ } from "/static/ui.js";

const KEY = "tapgrid.tolerance";
const MIN_MULT = 101; // the smallest multiplier offered (SPEC §3), in hundredths
export const TOLERANCES_BP = [200, 500, 0]; // what the control offers: −2 %, −5 %, exact
export const DEFAULT_BP = 200;

let current = DEFAULT_BP;

export function toleranceBp() {
  return current;
}

// The min_mult of a tap on a cell shown at `shown` hundredths: integer
// arithmetic, rounded down (a tolerance of 2 % accepts 2 % less, not more).
export function minMult(shown, bp = current) {
  const floor = Math.floor((shown * (10000 - bp)) / 10000);
  return Math.min(shown, Math.max(MIN_MULT, floor));
}

export function loadTolerance() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved !== null && TOLERANCES_BP.includes(Number(saved))) current = Number(saved);
  } catch (_) { /* private mode */ }
  const select = $("tolerance");
  if (!select) return;
  select.value = String(current);
  select.addEventListener("change", () => setTolerance(Number(select.value)));
}

export function setTolerance(bp) {
  if (!TOLERANCES_BP.includes(bp)) return;
  current = bp;
  const select = $("tolerance");
  if (select && select.value !== String(bp)) select.value = String(bp);
  try { localStorage.setItem(KEY, String(bp)); } catch (_) { /* private mode */ }
}
