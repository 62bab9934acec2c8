// The bet history panel: newest first from GET /api/history, "Load more"
// follows the `next` cursor, and each row opens its signed receipt (payload
// and signature) so a player can check it independently.
//
//   import { HistoryPanel } from "/static/history.js";
//   const panel = new HistoryPanel(document.querySelector("[data-testid=history]"),
//                                  {token: () => localStorage.getItem("tapgrid.token")});
//   await panel.refresh();   // first page
//   await panel.loadMore();  // next page, if any

import { apiGet } from "/static/net.js";
import { credits, dollars, multLabel, clockTime } from "/static/format.js";

const PAGE = 20;
const OUTCOME_TEXT = { open: "Open", won: "Won", lost: "Lost", void: "Refunded" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML: rows hold server data
  return node;
}

export class HistoryPanel {
  constructor(root, { token, bandCents = () => 1000, onBets = () => {} }) {
    this.root = root;
    this.token = token;
    this.bandCents = bandCents;
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
    if (!append) this.list.replaceChildren();
    for (const bet of bets) this.list.append(this.row(bet));
    this.empty.hidden = this.list.children.length > 0;
    this.more.hidden = !this.next;
  }

  row(bet) {
    const li = el("li", `history-row outcome-${bet.outcome}`);
    li.dataset.testid = "history-row";
    li.dataset.bet = String(bet.bet);
    li.dataset.outcome = String(bet.outcome);
    const details = el("details");
    const summary = el("summary");
    const when = el("span", "h-when", clockTime(bet.placed_at ?? bet.col));
    const band = this.bandCents();
    const cell = el("span", "h-cell", `${clockTime(bet.col)} · ${dollars(bet.lo)}–${dollars(bet.lo + band)}`);
    const stake = el("span", "h-stake", `${credits(bet.stake)} @ ${multLabel(bet.mult)}`);
    const badge = el("span", `h-outcome badge-${bet.outcome}`, OUTCOME_TEXT[bet.outcome] || String(bet.outcome));
    let result = "";
    // Net for the player, so a win and a loss read on the same scale
    // (a 10.00 stake paid 18.40 shows +8.40; the receipt has the gross payout).
    if (bet.outcome === "won") result = credits(bet.payout - bet.stake, { sign: true });
    else if (bet.outcome === "lost") result = credits(-bet.stake);
    else if (bet.outcome === "void") result = `refunded ${credits(bet.payout ?? bet.stake)}`;
    const payout = el("span", "h-payout", result);
    summary.append(when, cell, stake, badge, payout);
    const receipt = el("div", "receipt");
    receipt.append(el("div", "receipt-title", `Signed receipt · bet #${bet.bet}`));
    receipt.append(el("code", "receipt-payload", String(bet.payload ?? "")));
    receipt.append(el("code", "receipt-sig", `sig ${String(bet.sig ?? "")}`));
    details.append(summary, receipt);
    li.append(details);
    return li;
  }
}
