// The demo top-up: a guest who can no longer afford the smallest chip may
// top up (demo mode only; the server rate-limits it and says why when it
// refuses).
//
//   import { showTopUp, topUp } from "/static/topup.js";
//   showTopUp();        // the button shows only for a guest who ran out
//   await topUp();      // POST /api/topup, then a toast either way

import { apiPost, HttpError } from "/static/net.js";
import { credits, MINOR_PER_CREDIT } from "/static/format.js";
import { byTestId as $, toast } from "/static/ui.js";
import { state, STAKE_CHIPS, setBalance } from "/static/page.js";

// The server's reason (SPEC section 9) and, where one reason covers several
// refusals, the HTTP status that tells them apart.
const REFUSED = {
  "429 rate_limited": "You topped up a moment ago. Try again in a few minutes.",
  "409 limit": "Top-ups are for a balance that ran out.",
  "403 bad_request": "Top-ups are for demo guests.",
  "404 bad_request": "Demo mode is off on this server.",
};

export function showTopUp() {
  const low = Number.isFinite(state.balance) && state.balance < STAKE_CHIPS[0] * MINOR_PER_CREDIT * 10;
  $("topup-btn").hidden = !(state.token && low && String(state.user ?? "").startsWith("guest-"));
}

export async function topUp() {
  try {
    const r = await apiPost("/api/topup", {}, state.token);
    setBalance(r.balance);
    toast(`Topped up: ${credits(r.credited)} demo credits.`, "info", "topup");
  } catch (err) {
    const code = err instanceof HttpError && err.body ? err.body.error : null;
    const text = REFUSED[`${err.status} ${code}`] || "The top-up did not go through. Try again shortly.";
    toast(text, "error", code || "topup");
  }
}
