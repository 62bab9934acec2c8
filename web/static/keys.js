// The session key: an ECDSA P-256 key made by WebCrypto whose private half is
// non-extractable, so script injected into the page can use it while the page
// is open but can never copy it out. CryptoKey objects survive structured
// cloning, so IndexedDB keeps the key across reloads without exporting it.
//
//   import { newSessionKey, loadSessionKey, signTap } from "/static/keys.js";
//   const key = await newSessionKey();     // {privateKey, publicKey, k}
//   key.k                                  // 87-char base64url raw public point
//   const sig = await signTap(key, '{"col":1,...}');  // 86-char base64url r||s
//   (await loadSessionKey()).k === key.k   // true after a reload too

import { b64url, fromB64url, utf8 } from "/static/format.js";

const DB_NAME = "tapgrid";
const STORE = "keys";
const SLOT = "session";

// When IndexedDB is unavailable (some private modes) the key lives only as
// long as the tab: the player must sign in again after a reload.
let memoryKey = null;

function openDb() {
  return new Promise((resolve, reject) => {
    if (!("indexedDB" in globalThis)) return reject(new Error("no indexedDB"));
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req && req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export function cryptoAvailable() {
  return Boolean(globalThis.crypto && crypto.subtle && globalThis.isSecureContext !== false);
}

export async function newSessionKey() {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false, // applies to the private key; a public key is always exportable
    ["sign", "verify"],
  );
  const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
  const key = { privateKey: pair.privateKey, publicKey: pair.publicKey, k: b64url(raw) };
  memoryKey = key;
  try {
    await withStore("readwrite", (s) => s.put(key, SLOT));
  } catch (_) {
    // Falls back to the in-memory key; see memoryKey above.
  }
  return key;
}

export async function loadSessionKey() {
  if (memoryKey) return memoryKey;
  try {
    const key = await withStore("readonly", (s) => s.get(SLOT));
    if (key && key.privateKey && key.k) {
      memoryKey = key;
      return key;
    }
  } catch (_) {
    // No store: behave as if no key was ever made.
  }
  return null;
}

export async function clearSessionKey() {
  memoryKey = null;
  try {
    await withStore("readwrite", (s) => s.delete(SLOT));
  } catch (_) {
    // Nothing persisted, nothing to clear.
  }
}

// WebCrypto's ECDSA output is already the raw 64-byte r||s the server expects.
export async function signTap(key, payload) {
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, utf8(payload));
  return b64url(sig);
}

// 12 random bytes encode to exactly 16 base64url characters.
export function newNonce() {
  return b64url(crypto.getRandomValues(new Uint8Array(12)));
}

// Checks a receipt: the signature (raw r||s, base64url) over the payload's
// UTF-8 bytes, against a public key (a CryptoKey, or the 87-char base64url
// raw point). False for a bad or foreign signature, never a throw.
export async function verifyTap(publicKey, payload, sigB64) {
  try {
    const key = typeof publicKey === "string"
      ? await crypto.subtle.importKey("raw", fromB64url(publicKey), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"])
      : publicKey;
    return await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, fromB64url(sigB64), utf8(payload));
  } catch (_) {
    return false;
  }
}
