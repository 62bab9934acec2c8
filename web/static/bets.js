// The player's bets as the page knows them, keyed by tap nonce (before the
// server names the bet) and by bet id (after). Acks, results and history
// pages all feed it; a reconnect can lose acks, so history reconciles.
//
//   import { BetBook } from "/static/bets.js";
//   const book = new BetBook();
//   book.addPending({nonce: "n1", col: 1000, lo: 6712000, stake: 500, mult: 235, market: "BTC-USD/5s"});
//   book.ack({nonce: "n1", ok: true, bet: 7, mult: 240, balance: 99500});
//   book.result({bet: 7, outcome: "won", payout: 1200, balance: 100700}).state  // "won"
//   book.stacks("BTC-USD/5s")   // the stacks on that market's board (null: every market)

import { payoutOf } from "/static/format.js";

const KEEP_SETTLED_MS = 180000; // settled bets stay drawn until well off the board
const MAX_BETS = 400;

function nonceOf(payload) {
  try {
    const p = JSON.parse(payload);
    return p && typeof p.nonce === "string" ? p.nonce : null;
  } catch (_) {
    return null;
  }
}

const STATE_OF_OUTCOME = { open: "confirmed", won: "won", lost: "lost", void: "void" };

export class BetBook {
  constructor() {
    this.list = [];
    this.byNonce = new Map();
    this.byBet = new Map();
    this.early = new Map(); // results that overtook their ack, by bet id
  }

  touch(bet, state) {
    bet.state = state;
    bet.changedAt = performance.now();
  }

  addPending({ nonce, col, lo, stake, mult, market = null }) {
    const bet = { nonce, bet: null, state: "pending", col, lo, stake, mult, market, payout: null, reason: null, sentAt: Date.now(), changedAt: performance.now() };
    this.list.push(bet);
    this.byNonce.set(nonce, bet);
    return bet;
  }

  reject(nonce, reason) {
    const bet = this.byNonce.get(nonce);
    if (!bet || bet.state !== "pending") return null;
    bet.reason = reason;
    this.touch(bet, "rejected");
    return bet;
  }

  ack(msg) {
    const bet = this.byNonce.get(msg.nonce);
    if (!bet) return null;
    if (!msg.ok) return this.reject(msg.nonce, msg.reason);
    if (bet.state !== "pending" && bet.state !== "rejected") return bet; // history got there first
    bet.bet = msg.bet;
    if (Number.isFinite(msg.mult)) bet.mult = msg.mult;
    this.byBet.set(msg.bet, bet);
    this.touch(bet, "confirmed");
    const early = this.early.get(msg.bet);
    if (early) {
      this.early.delete(msg.bet);
      this.result(early);
    }
    return bet;
  }

  result(msg) {
    const bet = this.byBet.get(msg.bet);
    if (!bet) {
      if (this.early.size < 100) this.early.set(msg.bet, msg);
      return null;
    }
    if (bet.state === msg.outcome) return bet;
    bet.payout = msg.payout;
    this.touch(bet, STATE_OF_OUTCOME[msg.outcome] || "void");
    return bet;
  }

  // Fold a history page in: settles what we missed while disconnected and
  // names pending taps the server did take. Returns bets whose state changed.
  fromHistory(rows, now, columnMs) {
    const changed = [];
    for (const row of rows) {
      const state = STATE_OF_OUTCOME[row.outcome];
      if (!state) continue;
      let bet = this.byBet.get(row.bet);
      const nonce = nonceOf(row.payload);
      if (!bet && nonce) bet = this.byNonce.get(nonce);
      if (!bet) {
        if (row.col + columnMs < now - KEEP_SETTLED_MS / 2) continue;
        bet = { nonce, bet: row.bet, state, col: row.col, lo: row.lo, stake: row.stake, mult: row.mult, market: row.market_id ?? null,
          payout: row.payout, reason: null, sentAt: row.placed_at, changedAt: -1e9 };
        this.list.push(bet);
        if (nonce) this.byNonce.set(nonce, bet);
        this.byBet.set(row.bet, bet);
        continue;
      }
      bet.bet = row.bet;
      this.byBet.set(row.bet, bet);
      if (bet.state !== state && !(state === "confirmed" && bet.state !== "pending" && bet.state !== "rejected")) {
        bet.mult = row.mult;
        bet.payout = row.payout;
        bet.reason = null;
        this.touch(bet, state);
        changed.push(bet);
      }
    }
    return changed;
  }

  pending() {
    return this.list.filter((b) => b.state === "pending");
  }

  prune(now, columnMs) {
    if (this.list.length === 0) return;
    const keep = this.list.filter((b) => b.state === "pending" || b.state === "confirmed" || b.col + columnMs > now - KEEP_SETTLED_MS);
    const trimmed = keep.length > MAX_BETS ? keep.slice(keep.length - MAX_BETS) : keep;
    if (trimmed.length === this.list.length) return;
    this.list = trimmed;
    this.byNonce = new Map(trimmed.filter((b) => b.nonce).map((b) => [b.nonce, b]));
    this.byBet = new Map(trimmed.filter((b) => b.bet !== null).map((b) => [b.bet, b]));
  }

  clear() {
    this.list = [];
    this.byNonce.clear();
    this.byBet.clear();
    this.early.clear();
  }

  // Taps on one cell stack: one entry per cell with the total stake, the
  // count, what it pays if touched (potential) and, once settled, what it
  // paid. Rejected taps are not part of a stack. Drawn by cells.js.
  // `market`: only that market's bets (a bet with no market is the default's, `fallback`).
  stacks(market = null, fallback = null) {
    const by = new Map();
    for (const b of this.list) {
      if (b.state === "rejected") continue;
      if (market !== null && (b.market ?? fallback) !== market) continue;
      const key = `${b.market}:${b.col}:${b.lo}`;
      let s = by.get(key);
      if (!s) {
        s = { col: b.col, lo: b.lo, count: 0, stake: 0, potential: 0, payout: 0, states: new Set(), changedAt: -1e9, mult: b.mult, bets: [] };
        by.set(key, s);
      }
      s.count += 1;
      s.stake += b.stake;
      s.potential += payoutOf(b.stake, b.mult);
      s.payout += b.payout || 0;
      s.states.add(b.state);
      s.changedAt = Math.max(s.changedAt, b.changedAt || 0);
      s.bets.push(b);
      if (b.mult !== s.mult) s.mult = null; // mixed multipliers: show the potential instead
    }
    const out = [];
    for (const s of by.values()) {
      const st = s.states;
      s.state = st.has("pending") ? "pending" : st.has("confirmed") ? "confirmed"
        : st.has("won") ? "won" : st.has("void") ? "void" : "lost";
      delete s.states;
      out.push(s);
    }
    return out;
  }

  snapshot() {
    return this.list.map((b) => ({ nonce: b.nonce, bet: b.bet, state: b.state, col: b.col, lo: b.lo, stake: b.stake, mult: b.mult,
      market: b.market, reason: b.reason }));
  }
}
