// Sign-In with Ethereum (EIP-4361) through an EIP-1193 wallet: the wallet
// signs a message that authorises our session key (listed in Resources), the
// server checks it and returns a session token.
//
//   import { siweMessage, walletSignIn } from "/static/wallet.js";
//   siweMessage({domain: "example.org", uri: "https://example.org", chain_id: 1,
//                nonce: "abc12345", issued_at: "2024-01-01T00:00:00.000Z"},
//               "0xAbC...", "BASE64URL_KEY");   // the exact text the wallet signs
//   const session = await walletSignIn(window.ethereum, sessionKey.k, postJson);
//   // -> {token, user, balance}

const DAY_MS = 24 * 60 * 60 * 1000;

export class WalletError extends Error {
  constructor(message, { cancelled = false } = {}) {
    super(message);
    this.cancelled = cancelled;
  }
}

export function hasWallet() {
  return Boolean(globalThis.ethereum && typeof globalThis.ethereum.request === "function");
}

// EIP-191 personal_sign takes the message as 0x-prefixed hex of its UTF-8 bytes.
export function hexUtf8(text) {
  let hex = "0x";
  for (const b of new TextEncoder().encode(text)) hex += b.toString(16).padStart(2, "0");
  return hex;
}

function expirationOf(issuedAt) {
  const base = typeof issuedAt === "number" ? issuedAt : Date.parse(issuedAt);
  if (!Number.isFinite(base)) throw new WalletError("The server sent an unreadable sign-in time.");
  // toISOString always gives UTC with milliseconds and a Z, as the server expects.
  return new Date(base + DAY_MS).toISOString();
}

// Line by line as the server rebuilds it; a single differing byte fails login.
export function siweMessage(challenge, address, sessionKeyB64) {
  const { domain, uri, chain_id: chainId, nonce, issued_at: issuedAt } = challenge;
  return [
    `${domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    "Sign in to tapgrid. This authorises a session key to place bets.",
    "",
    `URI: ${uri}`,
    "Version: 1",
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${issuedAt}`,
    `Expiration Time: ${expirationOf(issuedAt)}`,
    "Resources:",
    `- urn:tapgrid:session-key:${sessionKeyB64}`,
  ].join("\n");
}

function walletFailure(err) {
  // 4001 is EIP-1193's "user rejected the request".
  if (err && err.code === 4001) return new WalletError("Sign-in was cancelled in the wallet.", { cancelled: true });
  if (err instanceof WalletError) return err;
  return new WalletError("The wallet could not complete the sign-in.");
}

// postJson(path, body) -> parsed JSON, throwing on a non-2xx answer.
export async function walletSignIn(provider, sessionKeyB64, postJson) {
  let address;
  try {
    const accounts = await provider.request({ method: "eth_requestAccounts" });
    address = Array.isArray(accounts) ? accounts[0] : null;
  } catch (err) {
    throw walletFailure(err);
  }
  if (!address) throw new WalletError("The wallet shared no account.");
  // EIP-4361 asks for the EIP-55 checksummed address. Many wallets (MetaMask
  // among them) hand back lowercase; checksumming needs Keccak-256, which
  // WebCrypto lacks, so the address goes in exactly as the wallet gave it and
  // the server compares addresses case-insensitively.
  const challenge = await postJson("/api/auth/challenge", {});
  const message = siweMessage(challenge, address, sessionKeyB64);
  let signature;
  try {
    signature = await provider.request({ method: "personal_sign", params: [hexUtf8(message), address] });
  } catch (err) {
    throw walletFailure(err);
  }
  return postJson("/api/auth/login", { message, signature });
}
