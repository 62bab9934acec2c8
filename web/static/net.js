// HTTP helpers and the WebSocket connection (SPEC §9): reconnects with
// exponential backoff and full jitter (0-5 s first window, reset once a
// connection has lived a while), keeps a server clock offset, and notices a
// silently dead socket. While it waits out a long backoff it probes
// /healthz at first-window intervals, so a server that is back is found
// within 5 s, not at the end of a 60 s wait; retryNow() skips the wait.
//
//   import { Connection, apiGet } from "/static/net.js";
//   const me = await apiGet("/api/me", token);          // throws HttpError
//   const conn = new Connection({token, onMessage: (m) => console.log(m.type),
//                                onStatus: (s, info) => console.log(s, info)});
//   conn.start();
//   conn.send({type: "ping"});
//   conn.serverNow();   // Date.now() corrected by the measured offset

export class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function request(method, path, token, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (_) {
    throw new HttpError(0, null); // network down or server unreachable
  }
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (!res.ok) throw new HttpError(res.status, data);
  return data;
}

export const apiGet = (path, token) => request("GET", path, token);
export const apiPost = (path, body, token) => request("POST", path, token, body);

export const BACKOFF_BASE_MS = 5000;
export const BACKOFF_CAP_MS = 60000;
const HEALTHY_AFTER_MS = 15000; // a connection this old counts as good: backoff restarts
const PROBE_PATH = "/healthz"; // answered from memory; any HTTP answer means the server is up
const PING_EVERY_MS = 10000;
const SILENCE_LIMIT_MS = 30000; // ticks flow constantly, so this much quiet means a dead link
const OFFSET_SAMPLES = 8;

// Full jitter: the whole window is random so a server restart is not met by
// every client at the same instant.
export function backoffDelay(attempt, random = Math.random) {
  return random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

export class Connection {
  constructor({ token, onMessage, onStatus, onClosedEarly }) {
    this.token = token;
    this.onMessage = onMessage || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onClosedEarly = onClosedEarly || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.hello = false;
    this.offset = 0;
    this.samples = [];
    this.pingSentAt = 0;
    this.lastRx = 0;
    this.timers = {};
    this.status = "idle";
    this.retryAt = 0;
    this.onOnline = () => {
      if (!this.stopped && this.timers.retry) this.scheduleRetry(backoffDelay(0));
    };
    this.onOffline = () => {
      if (!this.stopped && !this.connected) this.setStatus("offline");
    };
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.hello);
  }

  serverNow() {
    return Date.now() + this.offset;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
    this.open();
  }

  stop() {
    this.stopped = true;
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(1000); } catch (_) { /* already closing */ }
    }
    this.setStatus("idle");
  }

  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  setStatus(status, info = {}) {
    this.status = status;
    this.onStatus(status, info);
  }

  clearTimers() {
    for (const id of Object.values(this.timers)) {
      clearTimeout(id);
      clearInterval(id);
    }
    this.timers = {};
  }

  async open() {
    this.clearTimers();
    this.hello = false;
    this.setStatus("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // A single-use ticket keeps the token out of the URL (proxies log URLs).
    let query;
    try {
      const { ticket } = await apiPost("/api/ws-ticket", undefined, this.token);
      query = `ticket=${encodeURIComponent(ticket)}`;
    } catch (err) {
      if (err instanceof HttpError && err.status === 401) {
        this.onClosedEarly(401); // the session is gone: the page asks /api/me
        if (!this.stopped) this.retry();
        return;
      }
      query = `token=${encodeURIComponent(this.token)}`; // a server without tickets, or offline
    }
    if (this.stopped) return;
    let ws;
    try {
      // grid=2: compact grid frames, a sixth of the bytes (README, "Protocol addition: grid2")
      ws = new WebSocket(`${scheme}://${location.host}/ws?${query}&grid=2`);
    } catch (_) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => this.closed(ws, ev.code);
    // onerror is always followed by onclose, where the retry happens.
    ws.onerror = () => {};
  }

  closed(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
    const hadHello = this.hello;
    this.hello = false;
    if (!hadHello) this.onClosedEarly(code);
    if (!this.stopped) this.retry();
  }

  retry() {
    this.clearTimers();
    this.scheduleRetry(backoffDelay(this.attempt));
    this.attempt = Math.min(this.attempt + 1, 16);
  }

  // The player's "retry now": no waiting, and the backoff starts over.
  retryNow() {
    if (this.stopped || this.connected) return;
    this.clearTimers();
    this.attempt = 0;
    this.open();
  }

  scheduleRetry(delay) {
    clearTimeout(this.timers.retry);
    this.retryAt = Date.now() + delay;
    this.timers.retry = setTimeout(() => {
      delete this.timers.retry;
      if (!this.stopped) this.open();
    }, delay);
    this.scheduleProbe();
    if (navigator.onLine === false) this.setStatus("offline", { retryAt: this.retryAt });
    else this.setStatus("reconnecting", { retryAt: this.retryAt });
  }

  // A cheap GET, jittered over the first backoff window: when the server
  // answers at all, reconnect at once instead of sleeping out the backoff.
  scheduleProbe() {
    clearTimeout(this.timers.probe);
    const delay = backoffDelay(0);
    if (Date.now() + delay >= this.retryAt) return; // the retry comes first anyway
    this.timers.probe = setTimeout(async () => {
      delete this.timers.probe;
      let up = false;
      try {
        const res = await fetch(PROBE_PATH, { cache: "no-store" });
        up = res.status > 0;
      } catch (_) {
        up = false; // still down
      }
      if (this.stopped || this.ws || !this.timers.retry) return;
      if (up) {
        clearTimeout(this.timers.retry);
        delete this.timers.retry;
        this.open();
      } else {
        this.scheduleProbe();
      }
    }, delay);
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (_) {
      return; // the server only sends JSON; anything else is line noise
    }
    if (!msg || typeof msg !== "object") return;
    const now = Date.now();
    this.lastRx = now;
    if (msg.type === "hello") {
      this.hello = true;
      this.addSample(msg.server_ts - now, Number.MAX_SAFE_INTEGER);
      this.afterHello();
    } else if (msg.type === "pong" && this.pingSentAt) {
      const rtt = now - this.pingSentAt;
      this.addSample(msg.ts - (this.pingSentAt + rtt / 2), rtt);
      this.pingSentAt = 0;
    }
    this.onMessage(msg);
  }

  // The lowest-RTT sample has the smallest error bound, so it wins.
  addSample(offset, rtt) {
    if (!Number.isFinite(offset)) return;
    this.samples.push({ offset, rtt });
    if (this.samples.length > OFFSET_SAMPLES) this.samples.shift();
    let best = this.samples[0];
    for (const s of this.samples) if (s.rtt < best.rtt) best = s;
    this.offset = Math.round(best.offset);
  }

  afterHello() {
    this.setStatus("connected");
    this.timers.healthy = setTimeout(() => { this.attempt = 0; }, HEALTHY_AFTER_MS);
    this.ping();
    this.timers.ping = setInterval(() => {
      if (Date.now() - this.lastRx > SILENCE_LIMIT_MS && this.ws) {
        // A dead link may not deliver onclose for minutes: give up on it now.
        const ws = this.ws;
        try { ws.close(4000); } catch (_) { /* already closing */ }
        this.closed(ws, 4000);
        return;
      }
      this.ping();
    }, PING_EVERY_MS);
  }

  ping() {
    this.pingSentAt = Date.now();
    this.send({ type: "ping" });
  }
}
