// Signed out and signed in: the sign-in card over a live preview of the
// board, the three ways in (saved session, guest, wallet), the WebSocket
// session once in, and signing out (the token revoked on the server).
//
//   import { resume, signIn, signOut } from "/static/account.js";
//   await resume();            // the saved session, or the sign-in card
//   await signIn("guest");     // or "wallet"
//   await signOut();

import { apiGet, apiPost, Connection, HttpError } from "/static/net.js";
import { clearSessionKey } from "/static/keys.js";
import { byTestId as $, showBalance, showAccount } from "/static/ui.js";
import { savedSession, saveSession, forgetSession, signInAsGuest, signInWithWallet, signInNote, isDemoOff } from "/static/session.js";
import { state, book, parts, setBalance, setMarket, setStatus, showPrice, guard } from "/static/page.js";
import { onMessage } from "/static/frames.js";
import { showExplainerOnce } from "/static/hints.js";

const PREVIEW_POLL_MS = 2000;
let previewTimer = null;

// ---------- signed out ----------

export function showSignIn(note = "") {
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
    const q = state.marketId ? `?market_id=${encodeURIComponent(state.marketId)}` : "";
    const grid = await apiGet(`/api/grid${q}`);
    if (grid && !state.conn && (!grid.market_id || !state.marketId || grid.market_id === state.marketId)) {
      parts.view.setGrid(grid);
      if (grid.market) setMarket(grid.market, null);
      showPrice();
    }
  } catch (_) {
    // No server (yet): the board keeps showing its waiting state.
  }
}

export function setBusy(busy) {
  $("guest-btn").disabled = busy;
  $("wallet-btn").disabled = busy;
}

export async function signIn(how) {
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

// The saved session, if the server still knows it; else the sign-in card.
export async function resume() {
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
  return undefined;
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

export async function signOut(note = "", { revoke = true } = {}) {
  if (state.conn) state.conn.stop();
  // Revoke the token on the server first: forgetting it here is not enough.
  if (revoke && state.token) {
    try { await apiPost("/api/auth/logout", undefined, state.token); } catch (_) { /* already dead, or offline */ }
  }
  Object.assign(state, { conn: null, token: null, user: null, balance: null, key: null });
  forgetSession();
  await clearSessionKey();
  book.clear();
  parts.history.clear();
  parts.summary.clear();
  showBalance(null);
  setStatus("idle");
  showSignIn(note);
}
