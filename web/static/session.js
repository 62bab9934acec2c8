// Getting and keeping a session: the saved token (valid only together with
// the session key it was issued for), guest sign-in, wallet sign-in, and a
// human note for every way signing in can fail.
//
//   import { savedSession, signInAsGuest, signInNote } from "/static/session.js";
//   const saved = await savedSession();      // {token, key} or null
//   const {key, session} = await signInAsGuest();   // session: {token, user, balance}
//   saveSession(session.token, key);

import { apiPost, HttpError } from "/static/net.js";
import { newSessionKey, loadSessionKey, signTap } from "/static/keys.js";
import { hasWallet, walletSignIn, WalletError } from "/static/wallet.js";
import { reasonText } from "/static/format.js";

const TOKEN_KEY = "tapgrid.token";
const TOKEN_FOR_KEY = "tapgrid.token_key"; // the public key the token was issued for

export class NoWallet extends Error {}

export function saveSession(token, key) {
  try {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(TOKEN_FOR_KEY, key.k);
  } catch (_) { /* private mode: the session lasts for this tab */ }
}

export function forgetSession() {
  try {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_FOR_KEY);
  } catch (_) { /* nothing stored */ }
}

// A token without its key could not sign a single tap, so it is not a session.
export async function savedSession() {
  let token = null;
  let tokenFor = null;
  try {
    token = localStorage.getItem(TOKEN_KEY);
    tokenFor = localStorage.getItem(TOKEN_FOR_KEY);
  } catch (_) {
    return null;
  }
  if (!token) return null;
  const key = await loadSessionKey();
  return key && key.k === tokenFor ? { token, key } : null;
}

// Each sign-in gets a fresh key, so an old token can never sign for a new account.
// The proof signs the server's challenge with the new key: the server then
// knows the key is ours, not one copied from someone else.
export async function signInAsGuest() {
  const key = await newSessionKey();
  const body = { session_key: key.k };
  try {
    const { nonce } = await apiPost("/api/auth/challenge");
    body.proof = { nonce, sig: await signTap(key, `tapgrid-guest:${nonce}`) };
  } catch (err) {
    // No challenge here (e.g. 400 for a Host the server does not know): sign
    // in without the proof; a server that requires it answers 401.
    if (!(err instanceof HttpError) || err.status !== 400) throw err;
  }
  const session = await apiPost("/api/auth/guest", body);
  return { key, session };
}

export async function signInWithWallet() {
  if (!hasWallet()) throw new NoWallet();
  const key = await newSessionKey();
  const session = await walletSignIn(window.ethereum, key.k, (path, body) => apiPost(path, body));
  return { key, session };
}

export function isDemoOff(err) {
  return err instanceof HttpError && err.status === 404;
}

export function signInNote(err, wallet) {
  if (err instanceof NoWallet) return "No Ethereum wallet found in this browser.";
  if (err instanceof WalletError) return err.message;
  if (isDemoOff(err)) return "Demo mode is off on this server. Connect a wallet to play.";
  if (err instanceof HttpError && err.status === 0) return "Cannot reach the server. Check your connection and try again.";
  if (err instanceof HttpError && err.status === 429) return "Too many sign-ins just now. Please wait a moment.";
  if (err instanceof HttpError && err.status >= 500) return "The server could not sign you in right now. Please try again.";
  if (wallet && err instanceof HttpError) return "The server did not accept the wallet signature. Please try again.";
  // The server's error bodies are {"error": code, "detail": text}.
  const code = err instanceof HttpError && err.body ? err.body.error || err.body.reason : null;
  if (code) return reasonText(code);
  return wallet ? "Wallet sign-in failed. Please try again." : "Guest sign-in failed. Please try again.";
}
