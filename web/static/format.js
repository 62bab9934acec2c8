// Number and text formatting shared by the page.
//
// Money convention (one place, used everywhere): amounts on the wire are
// integer minor units and the page shows them as "credits" with two decimals,
// 100 minor units = 1.00 credit. So a balance of 100000 reads "1,000.00" and a
// stake chip labelled "5" sends stake 500. Prices are integer cents shown as
// dollars; multipliers are hundredths (235 -> "2.35x").
//
//   import { credits, dollars, multLabel } from "/static/format.js";
//   credits(100000)  // "1,000.00"
//   dollars(6712000) // "$67,120"
//   multLabel(235)   // "2.35x"

export const MINOR_PER_CREDIT = 100;

function groupThousands(intString) {
  return intString.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// Integer arithmetic only: a float division could print 0.1 + 0.2 style noise.
export function credits(minor, { sign = false } = {}) {
  if (!Number.isFinite(minor)) return "—";
  const neg = minor < 0;
  const abs = Math.abs(Math.trunc(minor));
  const whole = Math.floor(abs / MINOR_PER_CREDIT);
  const frac = String(abs % MINOR_PER_CREDIT).padStart(2, "0");
  const text = `${groupThousands(String(whole))}.${frac}`;
  if (neg) return `−${text}`;
  return sign ? `+${text}` : text;
}

export function dollars(cents, { decimals = false } = {}) {
  if (!Number.isFinite(cents)) return "—";
  const neg = cents < 0;
  const abs = Math.abs(Math.round(cents));
  const whole = groupThousands(String(Math.floor(abs / 100)));
  const text = decimals ? `$${whole}.${String(abs % 100).padStart(2, "0")}` : `$${whole}`;
  return neg ? `−${text}` : text;
}

export function multLabel(hundredths) {
  const h = Math.trunc(hundredths);
  return `${Math.floor(h / 100)}.${String(h % 100).padStart(2, "0")}x`;
}

// For a cell too narrow for multLabel (a phone's "100.00x"): fewer decimals,
// rounded down like the multiplier itself, so it never promises more.
export function shortMultLabel(hundredths) {
  const h = Math.trunc(hundredths);
  if (h >= 10000) return `${Math.floor(h / 100)}x`;
  if (h >= 1000) return `${Math.floor(h / 100)}.${Math.floor((h % 100) / 10)}x`;
  return multLabel(h);
}

export function clockTime(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// One human sentence per wire reason code (SPEC §9); unknown codes still
// read sensibly instead of leaking a raw identifier only.
const REASONS = {
  bad_request: "That tap could not be read by the server.",
  bad_signature: "Your session key signature was refused. Try signing in again.",
  expired: "That tap arrived too late. Check your device clock.",
  replay: "That tap was already sent once.",
  column_closed: "Too late: that column is locked.",
  bad_cell: "That cell is not on the board any more.",
  odds_changed: "The odds moved below what you saw. Tap again at the new price.",
  insufficient_balance: "Not enough credits for that stake.",
  limit: "That bet is over a limit (stake or open bets).",
  rate_limited: "Easy there: too many taps at once.",
  market_suspended: "The market is suspended right now.",
  overloaded: "The server is busy. Try again in a moment.",
  disk_low: "Betting is paused while the server frees up storage.",
  stale_price: "The price feed is stale; betting is paused.",
};

export function reasonText(reason) {
  return REASONS[reason] || `Request refused (${String(reason || "unknown")}).`;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// base64url without padding, as SPEC §9 wants for keys and signatures.
export function b64url(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63] + B64URL[n & 63];
  }
  if (i < b.length) {
    const n = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8);
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63];
    if (i + 1 < b.length) out += B64URL[(n >> 6) & 63];
  }
  return out;
}

export function utf8(text) {
  return new TextEncoder().encode(text);
}

// What a bet pays if its cell is touched: stake x multiplier, rounded down
// to a whole minor unit, as the server's payout_for does.
export function payoutOf(stake, mult) {
  return Math.floor((stake * mult) / 100);
}

// One wording for a win everywhere (cell, toast, history, summary): the
// payout, and in brackets what the player is up by. "won 15.60 (+5.60)".
export function winText(payout, stake) {
  return `won ${credits(payout)} (${credits(payout - stake, { sign: true })})`;
}

export function lossText(stake) {
  return `lost ${credits(stake)}`;
}

export function refundText(stake) {
  return `refunded ${credits(stake)}`;
}

// "12.34 s" style lengths for the lock explanation.
export function seconds(ms) {
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`;
}

// base64url (with or without padding) to bytes, for checking receipts.
export function fromB64url(text) {
  const s = String(text).replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(s + "===".slice((s.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}
