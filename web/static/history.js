// The bet history panel: newest first from GET /api/history, "Load more"
// follows the `next` cursor. Each row says when the tap was placed and which
// window it was for, and opens its signed receipt in words with a Verify
// button that checks the signature here, in the browser (WebCrypto), against
// this session's public key. Taps stacked on one cell are marked as such;
// with several markets each row names its market (`market(id)` gives its
// band and column length).
//
//   import { HistoryPanel } from "/static/history.js";
//   const panel = new HistoryPanel(document.querySelector("[data-testid=history]"),
//                                  {token: () => localStorage.getItem("tapgrid.token")});
//   await panel.refresh();   // first page
//   await panel.loadMore();  // next page, if any

import { apiGet } from "/static/net.js";
import { verifyTap } from "/static/keys.js";
import { credits, dollars, multLabel, clockTime, winText, lossText, refundText } from "/static/format.js";

const PAGE = 20;
const OUTCOME_TEXT = { open: "Open", won: "Won", lost: "Lost", void: "Refunded" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML: rows hold server data
  return node;
}

export class HistoryPanel {
  constructor(root, { token, market = () => ({ band_cents: 1000, column_ms: 5000, asset: "BTC-USD" }), named = () => false,
    sessionKey = () => null, onBets = () => {} }) {
    this.root = root;
    this.token = token;
    this.market = market;
    this.named = named;
    this.sessionKey = sessionKey;
    this.onBets = onBets;
    this.next = null;
    this.generation = 0;
    this.busy = false;
    this.list = root.querySelector("ol");
    this.more = root.querySelector("[data-testid=history-more]");
    this.empty = root.querySelector(".history-empty");
    this.more.addEventListener("click", () => this.loadMore());
    this.render([], false);
  }

  clear() {
    this.generation += 1;
    this.next = null;
    this.render([], false);
  }

  async refresh() {
    const gen = ++this.generation;
    const data = await this.fetchPage(null);
    if (!data || gen !== this.generation) return null;
    this.next = data.next ?? null;
    this.render(data.bets, false);
    this.onBets(data.bets);
    return data.bets;
  }

  async loadMore() {
    if (!this.next || this.busy) return;
    const gen = this.generation;
    this.busy = true;
    this.more.disabled = true;
    try {
      const data = await this.fetchPage(this.next);
      if (!data || gen !== this.generation) return;
      this.next = data.next ?? null;
      this.render(data.bets, true);
    } finally {
      this.busy = false;
      this.more.disabled = false;
      this.more.hidden = !this.next;
    }
  }

  async fetchPage(cursor) {
    const token = this.token();
    if (!token) return null;
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (cursor !== null && cursor !== undefined) q.set("cursor", String(cursor));
    try {
      const data = await apiGet(`/api/history?${q}`, token);
      return data && Array.isArray(data.bets) ? data : null;
    } catch (_) {
      return null; // keep showing what we had; the next refresh tries again
    }
  }

  render(bets, append) {
    if (!append) {
      this.list.replaceChildren();
      this.rows = [];
    }
    this.rows = (this.rows || []).concat(bets);
    const perCell = new Map();
    for (const b of this.rows) perCell.set(cellKey(b), (perCell.get(cellKey(b)) || 0) + 1);
    for (const bet of bets) this.list.append(this.row(bet));
    // Stack marks: several taps on one cell say so on every one of them.
    for (const li of this.list.children) {
      const n = perCell.get(li.dataset.stackKey) || 1;
      const mark = li.querySelector(".h-stack");
      mark.hidden = n < 2;
      mark.textContent = n < 2 ? "" : `1 of ${n} taps on this cell`;
      li.dataset.stack = String(n);
    }
    this.empty.hidden = this.list.children.length > 0;
    this.more.hidden = !this.next;
  }

  row(bet) {
    const li = el("li", `history-row outcome-${bet.outcome}`);
    li.dataset.testid = "history-row";
    li.dataset.bet = String(bet.bet);
    li.dataset.outcome = String(bet.outcome);
    li.dataset.cell = `${bet.col}:${bet.lo}`;
    li.dataset.stackKey = cellKey(bet);
    li.dataset.market = String(bet.market_id ?? "");
    const details = el("details");
    const summary = el("summary");
    const m = this.market(bet.market_id);
    const band = m.band_cents;
    const colMs = m.column_ms;
    const when = el("span", "h-when", `placed ${clockTime(bet.placed_at ?? bet.col)}`);
    const cell = el("span", "h-cell", `window ${clockTime(bet.col)}–${clockTime(bet.col + colMs)} · ${dollars(bet.lo)}–${dollars(bet.lo + band)}`);
    const stake = el("span", "h-stake", `${credits(bet.stake)} @ ${multLabel(bet.mult)}`);
    const badge = el("span", `h-outcome badge-${bet.outcome}`, OUTCOME_TEXT[bet.outcome] || String(bet.outcome));
    const payout = el("span", "h-payout", resultText(bet));
    payout.dataset.testid = "history-result";
    const stackMark = el("span", "h-stack");
    stackMark.hidden = true;
    summary.append(when, badge, cell, stake, payout, stackMark);
    if (this.named()) {
      const name = el("span", "h-market", m.market_id ?? "");
      name.dataset.testid = "history-market";
      summary.insertBefore(name, cell);
    }
    details.append(summary, this.receipt(bet));
    li.append(details);
    return li;
  }

  receipt(bet) {
    const m = this.market(bet.market_id);
    const band = m.band_cents;
    const box = el("div", "receipt");
    box.append(el("div", "receipt-title", `Signed receipt · bet #${bet.bet}`));
    let p = null;
    try { p = JSON.parse(bet.payload); } catch (_) { p = null; }
    const words = p
      ? `You staked ${credits(p.stake)} credits that the ${m.asset.split("-")[0]} price touches ${dollars(p.lo)}–${dollars(p.lo + band)} `
        + `between ${clockTime(p.col)} and ${clockTime(p.col + m.column_ms)}, at no less than ${multLabel(p.min_mult)} `
        + `(you got ${multLabel(bet.mult)}). Signed on your device at ${clockTime(p.ts)}, tap id ${p.nonce}.`
      : "This receipt's payload could not be read.";
    box.append(el("p", "receipt-words", words));
    const key = this.sessionKey();
    box.append(el("div", "receipt-key", key ? `Session public key: ${key.k}` : "Session public key: not on this device"));
    const raw = el("details", "receipt-raw");
    raw.append(el("summary", null, "Signed bytes and signature"));
    raw.append(el("code", "receipt-payload", String(bet.payload ?? "")));
    raw.append(el("code", "receipt-sig", `sig ${String(bet.sig ?? "")}`));
    box.append(raw);
    const verify = el("button", "ghost small", "Verify signature");
    verify.type = "button";
    verify.dataset.testid = "verify-btn";
    const verdict = el("span", "receipt-verdict");
    verdict.dataset.testid = "verify-result";
    verdict.setAttribute("role", "status");
    verify.addEventListener("click", async () => {
      const k = this.sessionKey();
      if (!k) {
        verdict.dataset.ok = "unknown";
        verdict.textContent = "No session key on this device to check against.";
        return;
      }
      const ok = await verifyTap(k.publicKey || k.k, String(bet.payload ?? ""), String(bet.sig ?? ""));
      verdict.dataset.ok = String(ok);
      verdict.textContent = ok
        ? "✓ Valid: this exact bet was signed by this browser's session key."
        : "✗ Not signed by this session's key (another session, or altered).";
    });
    const row = el("div", "receipt-verify");
    row.append(verify, verdict);
    box.append(row);
    return box;
  }
}

function cellKey(bet) {
  return `${bet.market_id ?? ""}:${bet.col}:${bet.lo}`;
}

// The same words the cell and the toasts use (format.js).
export function resultText(bet) {
  if (bet.outcome === "won") return winText(bet.payout, bet.stake);
  if (bet.outcome === "lost") return lossText(bet.stake);
  if (bet.outcome === "void") return refundText(bet.payout ?? bet.stake);
  return `pays ${credits(Math.floor((bet.stake * bet.mult) / 100))} if touched`;
}
