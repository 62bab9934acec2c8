// Entry point: signs the player in (saved token, guest, or wallet), runs the
// WebSocket session, turns taps into signed bets and keeps the page in step
// with acks, results, ticks, grid and market frames.
//
//   <script type="module" src="/static/app.js"></script>
//   // then, for tests and curious players (read-only):
//   window.tapgrid.state()      // {connected, user, balance, market, bets: [{nonce, bet, state, col, lo, ...}]}
//   window.tapgrid.openCells()  // [{t0, lo, mult, x, y}]  x, y: CSS px inside the canvas
//   window.tapgrid.stacks()     // [{col, lo, count, stake, potential, payout, state, label: [top, bottom]}]
//   window.tapgrid.offscreen()  // {above, below}: the player's bets off the visible prices

import { apiGet, apiPost, Connection, HttpError } from "/static/net.js";
import { LivePanel } from "/static/live.js";
import { cryptoAvailable, clearSessionKey, signTap, newNonce, verifyTap } from "/static/keys.js";
import { GridView } from "/static/grid.js";
import { HistoryPanel } from "/static/history.js";
import { BetBook } from "/static/bets.js";
import { stackLabel } from "/static/cells.js";
import { Sounds } from "/static/sound.js";
import { Summary } from "/static/summary.js";
import { credits, dollars, reasonText, MINOR_PER_CREDIT, winText, lossText, refundText, payoutOf, multLabel, clockTime, seconds } from "/static/format.js";
import { byTestId as $, toast, showBalance, showStatus, showMarket, showAccount, renderStakes } from "/static/ui.js";
import { savedSession, saveSession, forgetSession, signInAsGuest, signInWithWallet, signInNote, isDemoOff } from "/static/session.js";

const STAKE_KEY = "tapgrid.stake";
// Chips are whole credits; the wire carries minor units (see format.js).
const STAKE_CHIPS = [1, 5, 10, 25, 100];
const PREVIEW_POLL_MS = 2000;
const PENDING_CHECK_MS = 8000; // an ack normally takes milliseconds; this long means it was lost
const PENDING_GIVE_UP_MS = 40000; // past the server's 30 s ts window a tap can no longer land
const HISTORY_SETTLE_MS = 600; // results come in bursts at column end: refresh once after them
const HISTORY_FILL_MS = 180000; // the chart's past on load: what the board shows and more
const EXPLAINED_KEY = "tapgrid.explained";

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
let summary;
let live;
const sounds = new Sounds();
let previewTimer = null;
let historyTimer = null;
let lastReconcile = 0;

// ---------- small state setters ----------

function setBalance(minor) {
  if (!Number.isFinite(minor)) return;
  const before = state.balance;
  state.balance = minor;
  showBalance(minor, before);
  showTopUp();
}

// A guest who can no longer afford the smallest chip may top up (demo only;
// the server rate-limits it and says why when it refuses).
function showTopUp() {
  const low = Number.isFinite(state.balance) && state.balance < STAKE_CHIPS[0] * MINOR_PER_CREDIT * 10;
  $("topup-btn").hidden = !(state.token && low && String(state.user ?? "").startsWith("guest-"));
}

async function topUp() {
  try {
    const r = await apiPost("/api/topup", {}, state.token);
    setBalance(r.balance);
    toast(`Topped up: ${credits(r.credited)} demo credits.`, "info", "topup");
  } catch (err) {
    const code = err instanceof HttpError && err.body ? err.body.error : null;
    const text = {
      rate_limited: "You topped up a moment ago. Try again in a few minutes.",
      balance_not_low: "Top-ups are for a balance that ran out.",
      not_guest: "Top-ups are for demo guests.",
      not_found: "Demo mode is off on this server.",
    }[code] || "The top-up did not go through. Try again shortly.";
    toast(text, "error", code || "topup");
  }
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
  $("retry-btn").hidden = !(state.token && (status === "reconnecting" || status === "offline"));
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
  showExplainerOnce();
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
  summary.clear();
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
      guard(fillPriceHistory); // the gap while we were away
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
        if (bet) summary.place(msg.bet, bet);
        scheduleHistoryRefresh();
      } else if (bet) {
        toast(reasonText(msg.reason), "error", msg.reason);
      }
      break;
    }
    case "result": {
      const bet = book.result(msg);
      setBalance(msg.balance);
      if (bet) {
        summary.settle(msg, bet);
        announceResult(bet, msg);
      }
      scheduleHistoryRefresh();
      break;
    }
    case "market":
      setMarket(msg.status, msg.reason);
      break;
    case "feed":
      live.show(msg);
      break;
    case "error":
      toast(reasonText(msg.reason), "error", msg.reason);
      break;
    default:
      break; // pong, and any newer frame types, need nothing here
  }
}

// Every result is seen and heard, not only wins: a toast, a sound, and
// the same words in the screen reader's live region.
function announceResult(bet, msg) {
  const where = `${dollars(bet.lo)} at ${clockTime(bet.col)}`;
  let text;
  if (msg.outcome === "won") {
    text = `You ${winText(msg.payout, bet.stake)} on ${where}`;
    view.celebrate(bet.col, bet.lo, winText(msg.payout, bet.stake));
    toast(`${text}!`, "win", "won");
    sounds.play("win");
  } else if (msg.outcome === "lost") {
    text = `You ${lossText(bet.stake)} on ${where}`;
    toast(text, "loss", "lost");
    sounds.play("loss");
  } else {
    text = `Bet ${refundText(msg.payout ?? bet.stake)} on ${where}: the window could not be settled`;
    toast(text, "info", "void");
    sounds.play("refund");
  }
  announce(text);
}

function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  // A fresh text node each time, so the same words twice are read twice.
  setTimeout(() => { node.textContent = text; }, 30);
}

// ---------- the price record: the chart's past filled on load ----------

async function fillPriceHistory() {
  const to = Date.now() + 1000;
  const data = await apiGet(`/api/ticks?asset=BTC-USD&from=${to - HISTORY_FILL_MS}&to=${to}`);
  if (data && Array.isArray(data.ticks)) view.addTicks(data.ticks);
  showPrice();
}

// ---------- what a tap would pay, on hover or press ----------

function showPreview(cell, point) {
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

function describeFocus(cell) {
  if (!cell) return;
  const stake = state.stakeChip * MINOR_PER_CREDIT;
  $("cell-focus").textContent = `Window ${clockTime(cell.t0)}, ${dollars(cell.lo)} to ${dollars(cell.lo + view.grid.band_cents)}, `
    + `${multLabel(cell.mult)}: a ${credits(stake)} stake pays ${credits(payoutOf(stake, cell.mult))}. Enter to bet.`;
}

function showExplainerOnce() {
  let seen = false;
  try { seen = localStorage.getItem(EXPLAINED_KEY) === "1"; } catch (_) { seen = false; }
  $("explainer").hidden = seen;
}

function closeExplainer() {
  $("explainer").hidden = true;
  try { localStorage.setItem(EXPLAINED_KEY, "1"); } catch (_) { /* private mode */ }
  $("grid-canvas").focus();
}

function setMuted(muted) {
  sounds.setMuted(muted);
  const b = $("mute-btn");
  b.setAttribute("aria-pressed", String(muted));
  b.textContent = muted ? "Sound off" : "Sound on";
}

function toggleHistory(open) {
  const drawer = $("history-drawer");
  const want = open ?? !drawer.classList.contains("open");
  drawer.classList.toggle("open", want);
  $("history-toggle").setAttribute("aria-expanded", String(want));
}

// ---------- taps ----------

async function tap(cell) {
  if (!state.token || !state.key) return;
  if (cell.locked) {
    return toast(`This column is locked: betting closes ${seconds(view.grid.lock_ms)} before its window starts. Tap a column further right.`, "error", "column_locked");
  }
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
    return;
  }
  sounds.play("tap");
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
    stacks: () => book.stacks().map((st) => ({ col: st.col, lo: st.lo, count: st.count, stake: st.stake, potential: st.potential,
      payout: st.payout, state: st.state, label: stackLabel(st) })),
    offscreen: () => view.offscreen(),
    centreOf: (t0, lo) => view.centreOf(t0, lo),
    layout: () => view.layout,
    view: () => ({ panned: view.panned, panCents: view.panCents, zoom: view.zoom, ticks: view.ticks.length,
      firstTick: view.ticks.length ? view.ticks[0].t : null, lockedColumns: [...view.locked.keys()], narrow: view.size.w < 600 }),
    conn: () => (state.conn ? { attempt: state.conn.attempt, status: state.conn.status, retryAt: state.conn.retryAt } : null),
    sounds: () => sounds.log.map((x) => ({ ...x })),
    summary: () => summary.totals(),
    verify: (payload, sig) => (state.key ? verifyTap(state.key.publicKey, payload, sig) : Promise.resolve(false)),
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
    stacks: () => book.stacks(),
    onTap: (cell) => guard(() => tap(cell)),
    onHover: (cell, point) => showPreview(cell, point),
    onFocusCell: (cell) => describeFocus(cell),
    onViewChange: (panned) => { $("recenter-btn").hidden = !panned; },
  });
  summary = new Summary($("summary"));
  live = new LivePanel($("live"));
  history = new HistoryPanel($("history"), {
    token: () => state.token,
    bandCents: () => view.grid.band_cents,
    columnMs: () => view.grid.column_ms,
    sessionKey: () => state.key,
    onBets: (rows) => summary.addRows(rows),
  });
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
  $("retry-btn").addEventListener("click", () => { if (state.conn) state.conn.retryNow(); });
  $("recenter-btn").addEventListener("click", () => view.recenter());
  $("mute-btn").addEventListener("click", () => setMuted(!sounds.muted));
  $("history-toggle").addEventListener("click", () => toggleHistory());
  $("explainer-ok").addEventListener("click", closeExplainer);
  $("topup-btn").addEventListener("click", () => guard(topUp));
  apiGet("/api/feed").then((f) => live.show(f)).catch(() => { /* the frames will come */ });
  setMuted(sounds.muted);
  guard(fillPriceHistory);

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
