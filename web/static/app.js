// Entry point: signs the player in (saved token, guest, or wallet), runs the
// WebSocket session, turns taps into signed bets and keeps the page in step
// with acks, results, ticks, grid and market frames.
//
//   <script type="module" src="/static/app.js"></script>
//   // then, for tests and curious players (read-only):
//   window.tapgrid.state()      // {connected, user, balance, market, bets: [{nonce, bet, state, col, lo, ...}]}
//   window.tapgrid.openCells()  // [{t0, lo, mult, x, y}]  x, y: CSS px inside the canvas

import { apiGet, apiPost, Connection, HttpError } from "/static/net.js";
import { cryptoAvailable, clearSessionKey, signTap, newNonce } from "/static/keys.js";
import { GridView } from "/static/grid.js";
import { HistoryPanel } from "/static/history.js";
import { BetBook } from "/static/bets.js";
import { credits, dollars, reasonText, MINOR_PER_CREDIT } from "/static/format.js";
import { byTestId as $, toast, showBalance, showStatus, showMarket, showAccount, renderStakes } from "/static/ui.js";
import { savedSession, saveSession, forgetSession, signInAsGuest, signInWithWallet, signInNote, isDemoOff } from "/static/session.js";

const STAKE_KEY = "tapgrid.stake";
// Chips are whole credits; the wire carries minor units (see format.js).
const STAKE_CHIPS = [1, 5, 10, 25, 100];
const PREVIEW_POLL_MS = 2000;
const PENDING_CHECK_MS = 8000; // an ack normally takes milliseconds; this long means it was lost
const PENDING_GIVE_UP_MS = 40000; // past the server's 30 s ts window a tap can no longer land
const HISTORY_SETTLE_MS = 600; // results come in bursts at column end: refresh once after them

const state = {
  token: null,
  user: null,
  balance: null,
  key: null,
  conn: null,
  market: "open",
  stakeChip: STAKE_CHIPS[1],
  demoOff: false,
  status: "idle",
  retryAt: 0,
};
const book = new BetBook();
let view;
let history;
let previewTimer = null;
let historyTimer = null;
let lastReconcile = 0;

// ---------- small state setters ----------

function setBalance(minor) {
  if (!Number.isFinite(minor)) return;
  const before = state.balance;
  state.balance = minor;
  showBalance(minor, before);
}

function setMarket(status, reason) {
  state.market = status === "suspended" ? "suspended" : "open";
  view.setMarket(state.market);
  showMarket(state.market, reason);
}

function setStatus(status, retryAt = 0) {
  state.status = status;
  state.retryAt = retryAt;
  view.setLive(status === "connected" || !state.token);
  showStatus(status, retryAt, Boolean(state.token));
}

function pickStake(n) {
  state.stakeChip = n;
  try { localStorage.setItem(STAKE_KEY, String(n)); } catch (_) { /* private mode */ }
  renderStakes(STAKE_CHIPS, n, pickStake);
}

function showPrice() {
  const p = view.price;
  $("price").textContent = p === null ? "—" : dollars(p, { decimals: true });
}

// ---------- signed out: the sign-in card over a live preview of the board ----------

function showSignIn(note = "") {
  $("signin-panel").hidden = false;
  $("signin-note").textContent = note;
  $("guest-btn").hidden = state.demoOff;
  showAccount(null);
  if (!previewTimer) {
    pollPreview();
    previewTimer = setInterval(pollPreview, PREVIEW_POLL_MS);
  }
}

async function pollPreview() {
  try {
    const grid = await apiGet("/api/grid");
    if (grid && !state.conn) {
      view.setGrid(grid);
      if (grid.market) setMarket(grid.market, null);
      showPrice();
    }
  } catch (_) {
    // No server (yet): the board keeps showing its waiting state.
  }
}

function setBusy(busy) {
  $("guest-btn").disabled = busy;
  $("wallet-btn").disabled = busy;
}

async function signIn(how) {
  const wallet = how === "wallet";
  setBusy(true);
  $("signin-note").textContent = wallet ? "Check your wallet to sign in…" : "";
  try {
    const { key, session } = wallet ? await signInWithWallet() : await signInAsGuest();
    state.key = key;
    saveSession(session.token, key);
    startSession(session.token, session.user, session.balance);
  } catch (err) {
    if (!wallet && isDemoOff(err)) state.demoOff = true;
    showSignIn(signInNote(err, wallet));
  } finally {
    setBusy(false);
  }
}

// ---------- signed in ----------

function startSession(token, user, balance) {
  state.token = token;
  state.user = user;
  setBalance(balance);
  clearInterval(previewTimer);
  previewTimer = null;
  $("signin-panel").hidden = true;
  showAccount(user ?? ""); // shown even before /api/me answers, so sign-out is always there
  if (state.conn) state.conn.stop();
  state.conn = new Connection({
    token,
    onMessage: (msg) => guard(() => onMessage(msg)),
    onStatus: (status, info) => setStatus(status, info.retryAt || 0),
    onClosedEarly: () => guard(checkSession),
  });
  state.conn.start(); // hello loads the history
}

// A socket that closes before hello may mean a dead token: ask /api/me.
async function checkSession() {
  if (!state.token) return;
  try {
    await apiGet("/api/me", state.token);
  } catch (err) {
    if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
      await signOut("Your session has ended. Please sign in again.", { revoke: false });
    }
  }
}

async function signOut(note = "", { revoke = true } = {}) {
  if (state.conn) state.conn.stop();
  // Revoke the token on the server first: forgetting it here is not enough.
  if (revoke && state.token) {
    try { await apiPost("/api/auth/logout", undefined, state.token); } catch (_) { /* already dead, or offline */ }
  }
  Object.assign(state, { conn: null, token: null, user: null, balance: null, key: null });
  forgetSession();
  await clearSessionKey();
  book.clear();
  history.clear();
  showBalance(null);
  setStatus("idle");
  showSignIn(note);
}

// ---------- frames from the server ----------

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      state.user = msg.user ?? state.user;
      showAccount(state.user ?? "");
      setBalance(msg.balance);
      // Acks for taps sent on a previous socket went with it; results that
      // fired while we were away are in history too.
      if (book.pending().length) guard(() => reconcile(true));
      else refreshHistory();
      break;
    case "tick":
      view.addTick(msg.p, msg.t);
      showPrice();
      break;
    case "grid":
      view.setGrid(msg);
      if (msg.market && msg.market !== state.market) setMarket(msg.market, null);
      showPrice();
      break;
    case "ack": {
      const bet = book.ack(msg);
      if (msg.ok) {
        setBalance(msg.balance);
        scheduleHistoryRefresh();
      } else if (bet) {
        toast(reasonText(msg.reason), "error", msg.reason);
      }
      break;
    }
    case "result": {
      const bet = book.result(msg);
      setBalance(msg.balance);
      if (bet && msg.outcome === "won") {
        view.celebrate(bet.col, bet.lo, `+${credits(msg.payout)}`);
        toast(`You won ${credits(msg.payout)} credits!`, "win");
      }
      scheduleHistoryRefresh();
      break;
    }
    case "market":
      setMarket(msg.status, msg.reason);
      break;
    case "error":
      toast(reasonText(msg.reason), "error", msg.reason);
      break;
    default:
      break; // pong, and any newer frame types, need nothing here
  }
}

// ---------- taps ----------

async function tap(cell) {
  if (!state.token || !state.key) return;
  if (!state.conn || !state.conn.connected) return toast("Not connected. Your tap was not sent.", "error", "offline");
  if (state.market !== "open") return toast(reasonText("market_suspended"), "error", "market_suspended");
  if (!cell.open) return toast(reasonText("column_closed"), "error", "column_closed");
  const stake = state.stakeChip * MINOR_PER_CREDIT;
  const nonce = newNonce();
  const ts = Math.round(state.conn.serverNow());
  // Key order is part of the signed bytes (SPEC §9): do not reorder.
  const payload = JSON.stringify({ col: cell.t0, lo: cell.lo, stake, min_mult: cell.mult, ts, nonce });
  book.addPending({ nonce, col: cell.t0, lo: cell.lo, stake, mult: cell.mult });
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
  }
}

// Lost acks (a reconnect, a dropped frame) are recovered from history,
// where each bet carries the payload, and so the nonce, it was placed with.
async function reconcile(force = false) {
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

function refreshHistory() {
  history.refresh().then((rows) => {
    if (rows) book.fromHistory(rows, view.now(), view.grid.column_ms);
  });
}

function scheduleHistoryRefresh() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(refreshHistory, HISTORY_SETTLE_MS);
}

// Handlers must never throw into the void: report, keep the page alive.
function guard(fn) {
  try {
    const out = fn();
    if (out && typeof out.catch === "function") out.catch(onFailure);
  } catch (err) {
    onFailure(err);
  }
}

function onFailure(err) {
  console.warn("tapgrid:", err);
  toast("Something went wrong on this page. It will keep trying.", "error", "client");
}

// ---------- boot ----------

function exposeDebug() {
  const api = Object.freeze({
    state: () => ({
      connected: Boolean(state.conn && state.conn.connected),
      user: state.user,
      balance: state.balance,
      market: state.market,
      bets: book.snapshot(),
    }),
    openCells: () => view.openCells(),
  });
  Object.defineProperty(window, "tapgrid", { value: api, writable: false, configurable: false });
}

async function boot() {
  try {
    const saved = Number(localStorage.getItem(STAKE_KEY));
    if (STAKE_CHIPS.includes(saved)) state.stakeChip = saved;
  } catch (_) { /* private mode */ }
  renderStakes(STAKE_CHIPS, state.stakeChip, pickStake);
  view = new GridView($("grid-canvas"), {
    now: () => (state.conn ? state.conn.serverNow() : Date.now()),
    bets: () => book.list,
    onTap: (cell) => guard(() => tap(cell)),
  });
  history = new HistoryPanel($("history"), { token: () => state.token, bandCents: () => view.grid.band_cents });
  exposeDebug();
  view.start();
  setStatus("idle");
  setInterval(() => {
    if (state.status === "reconnecting" || state.status === "offline") setStatus(state.status, state.retryAt);
    if (state.token) {
      guard(() => reconcile(false));
      book.prune(view.now(), view.grid.column_ms);
    }
  }, 500);

  $("guest-btn").addEventListener("click", () => guard(() => signIn("guest")));
  $("wallet-btn").addEventListener("click", () => guard(() => signIn("wallet")));
  $("signout-btn").addEventListener("click", () => guard(() => signOut()));
  $("history-refresh").addEventListener("click", () => guard(refreshHistory));

  if (!cryptoAvailable()) {
    setBusy(true);
    showSignIn("This page needs a secure context (https or localhost) to create your signing key.");
    return;
  }
  const saved = await savedSession();
  if (!saved) return showSignIn();
  state.key = saved.key;
  try {
    const me = await apiGet("/api/me", saved.token);
    startSession(saved.token, me.user, me.balance);
  } catch (err) {
    if (err instanceof HttpError && (err.status === 0 || err.status >= 500)) {
      // Unreachable is not a refusal: keep the session and let the socket's
      // backoff find the server when it is back.
      startSession(saved.token, null, null);
    } else {
      forgetSession();
      showSignIn();
    }
  }
}

boot().catch(onFailure);
