// The session summary over the bets this page knows of today (the loaded
// history pages and every live result): net, bets, win rate and the current
// streak. Amounts use the same words as everywhere else (format.js).
//
//   import { Summary } from "/static/summary.js";
//   const summary = new Summary(document.querySelector("[data-testid=summary]"));
//   summary.addRows(historyRows);                 // /api/history bets
//   summary.settle({bet: 7, outcome: "won", payout: 1560}, {stake: 1000, col});
//   summary.totals()   // {net, bets, won, lost, rate, streak: {kind, n}}

import { credits } from "/static/format.js";

function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export class Summary {
  constructor(root) {
    this.root = root;
    this.bets = new Map(); // bet id -> {outcome, stake, payout, col}
    this.render();
  }

  clear() {
    this.bets.clear();
    this.render();
  }

  addRows(rows) {
    for (const r of rows || []) this.bets.set(r.bet, { outcome: r.outcome, stake: r.stake, payout: r.payout || 0, col: r.col });
    this.render();
  }

  place(id, { stake, col }) {
    if (id === null || id === undefined || this.bets.has(id)) return;
    this.bets.set(id, { outcome: "open", stake, payout: 0, col });
    this.render();
  }

  settle(msg, bet) {
    const known = this.bets.get(msg.bet) || { stake: bet ? bet.stake : 0, col: bet ? bet.col : Date.now() };
    this.bets.set(msg.bet, { ...known, outcome: msg.outcome, payout: msg.payout || 0 });
    this.render();
  }

  totals() {
    const since = startOfToday();
    const today = [...this.bets.values()].filter((b) => b.col >= since);
    let net = 0;
    let won = 0;
    let lost = 0;
    for (const b of today) {
      if (b.outcome === "won") { won += 1; net += b.payout - b.stake; }
      if (b.outcome === "lost") { lost += 1; net -= b.stake; }
    }
    const settled = today.filter((b) => b.outcome === "won" || b.outcome === "lost").sort((a, b) => b.col - a.col);
    let streak = { kind: null, n: 0 };
    if (settled.length) {
      const kind = settled[0].outcome;
      let n = 0;
      while (n < settled.length && settled[n].outcome === kind) n += 1;
      streak = { kind, n };
    }
    return { net, bets: today.length, won, lost, rate: won + lost ? Math.round((100 * won) / (won + lost)) : null, streak };
  }

  render() {
    if (!this.root) return;
    const t = this.totals();
    const set = (id, text, state) => {
      const node = this.root.querySelector(`[data-testid=${id}]`);
      if (!node) return;
      node.textContent = text;
      if (state !== undefined) node.dataset.state = state;
    };
    set("sum-net", t.bets ? credits(t.net, { sign: true }) : "0.00", t.net > 0 ? "up" : t.net < 0 ? "down" : "even");
    set("sum-bets", String(t.bets));
    set("sum-rate", t.rate === null ? "—" : `${t.rate}%`);
    set("sum-streak", t.streak.n ? `${t.streak.n} ${t.streak.kind === "won" ? (t.streak.n === 1 ? "win" : "wins") : (t.streak.n === 1 ? "loss" : "losses")}` : "—",
      t.streak.kind || "none");
  }
}
