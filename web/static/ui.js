// The page's small DOM pieces: toasts, balance, connection status, market
// banner and stake chips. Every element is found by its data-testid, the
// same hooks the end-to-end test uses.
//
//   import { byTestId, toast, showBalance, showStatus } from "/static/ui.js";
//   toast("Not enough credits for that stake.", "error", "insufficient_balance");
//   showBalance(100000, null);                  // "1,000.00", data-minor="100000"
//   showStatus("reconnecting", Date.now() + 3000, true);  // "Reconnecting in 3s"

import { credits, MINOR_PER_CREDIT } from "/static/format.js";

export const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

const TOAST_MS = { win: 2600, info: 3000, error: 3800 };
const MAX_TOASTS = 3;
const MARKET_REASONS = {
  stale_price: "the price feed is stale. Open bets in affected windows are refunded.",
  disk_low: "the server is low on storage.",
  overloaded: "the server is overloaded.",
};

export function toast(text, kind = "error", reason = null) {
  const box = byTestId("toasts");
  const node = document.createElement("div");
  node.className = "toast";
  node.dataset.testid = "toast";
  node.dataset.kind = kind;
  if (reason) node.dataset.reason = reason;
  node.textContent = text;
  box.append(node);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  setTimeout(() => {
    node.classList.add("leaving");
    setTimeout(() => node.remove(), 300);
  }, TOAST_MS[kind] || TOAST_MS.error);
}

// minor === null clears the display (signed out).
export function showBalance(minor, before) {
  const node = byTestId("balance");
  if (minor === null) {
    node.textContent = "—";
    node.dataset.minor = "";
    return;
  }
  node.textContent = credits(minor);
  node.dataset.minor = String(minor);
  if (Number.isFinite(before) && before !== minor) {
    node.classList.remove("bump-up", "bump-down");
    void node.offsetWidth; // reflow so the same animation can play again
    node.classList.add(minor > before ? "bump-up" : "bump-down");
  }
}

export function showStatus(status, retryAt, signedIn) {
  const node = byTestId("conn-status");
  const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
  const text = {
    idle: signedIn ? "Not connected" : "Signed out",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: `Reconnecting in ${secs}s`,
    offline: "Offline",
  }[status] || status;
  node.dataset.state = status;
  node.querySelector(".conn-text").textContent = text;
}

export function showMarket(status, reason) {
  const banner = byTestId("market-banner");
  banner.hidden = status !== "suspended";
  banner.dataset.reason = reason || "";
  // The banner is a flex row with a gap, so the dash gets a space either side
  // (a leading ":" would read "suspended : the ...").
  banner.querySelector(".banner-reason").textContent = `— ${MARKET_REASONS[reason] || "betting is paused for now."}`;
}

export function showAccount(user) {
  document.querySelector(".account").hidden = user === null;
  const node = byTestId("user");
  node.textContent = String(user ?? "");
  node.title = String(user ?? "");
}

// Chips are whole credits; data-stake carries the minor units a tap sends.
export function renderStakes(chips, selected, onPick) {
  const box = byTestId("stakes");
  box.replaceChildren();
  for (const n of chips) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chip";
    b.dataset.testid = `stake-${n}`;
    b.dataset.stake = String(n * MINOR_PER_CREDIT);
    b.setAttribute("role", "radio");
    b.setAttribute("aria-checked", String(n === selected));
    b.textContent = String(n);
    b.title = `${credits(n * MINOR_PER_CREDIT)} credits per tap`;
    b.addEventListener("click", () => onPick(n));
    box.append(b);
  }
}
