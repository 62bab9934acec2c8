// How a bet looks on the board at each step of its life:
// pending (pulsing outline) -> confirmed (filled, total stake and what it
// pays if touched) -> won (green, "won 15.60 (+5.60)", a short burst) |
// lost (red, fades to a faint mark) | void (grey, "refunded"); a rejected
// tap flashes red and disappears. Several taps on one cell draw as one stack.
//
//   import { drawStack, drawCelebrations } from "/static/cells.js";
//   drawStack(ctx, geo, grid, {state: "confirmed", col, lo, count: 2, stake: 1000,
//                              potential: 2350, payout: 0, changedAt: performance.now()}, performance.now());
//   celebrations = drawCelebrations(ctx, geo, grid, celebrations, performance.now());

import { credits } from "/static/format.js";

const FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const LOST_FADE_MS = 1500;
const REJECT_FLASH_MS = 900;
const CELEBRATE_MS = 1400;

// Whole credits read better in a small cell: "5" rather than "5.00".
function short(minor) {
  const text = credits(minor);
  return text.endsWith(".00") ? text.slice(0, -3) : text;
}

function cellRect(geo, grid, col, lo) {
  const x0 = geo.xOf(col) + 2;
  const x1 = geo.xOf(col + grid.column_ms) - 2;
  const y0 = geo.yOf(lo + grid.band_cents) + 2;
  const y1 = geo.yOf(lo) - 2;
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

function visible(geo, r) {
  return r.w > 2 && r.h > 2 && r.x + r.w > 0 && r.x < geo.w && r.y + r.h > geo.plotTop && r.y < geo.plotBottom;
}

// Draws text centred at (x, y) in the largest size up to `size` that fits
// maxWidth; text that cannot fit even at 8px is left out rather than spill
// over the neighbouring cell.
// Rare (high-multiplier) cells shift from teal to violet to magenta on a log scale.
export function multColour(mult, alpha) {
  const f = Math.max(0, Math.min(1, Math.log(mult / 100) / Math.log(50)));
  const hue = 172 + f * 130;
  return `hsla(${hue.toFixed(0)}, 80%, ${62 - f * 6}%, ${alpha})`;
}

export function fitText(ctx, text, x, y, maxWidth, size, weight = 600) {
  let px = Math.floor(size);
  ctx.font = `${weight} ${px}px ${FONT}`;
  let width = ctx.measureText(text).width;
  while (width > maxWidth && px > 8) {
    px -= 1;
    ctx.font = `${weight} ${px}px ${FONT}`;
    width = ctx.measureText(text).width;
  }
  if (width > maxWidth) return false;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x, y);
  return true;
}

function labels(ctx, r, top, bottom, colour) {
  ctx.fillStyle = colour;
  const cx = r.x + r.w / 2;
  const size = Math.min(13, Math.max(9, r.h * 0.28));
  if (bottom && r.h >= 30) {
    fitText(ctx, top, cx, r.y + r.h * 0.36, r.w - 6, size, 700);
    fitText(ctx, bottom, cx, r.y + r.h * 0.7, r.w - 6, size - 1, 500);
  } else {
    fitText(ctx, top, cx, r.y + r.h / 2, r.w - 6, size, 700);
  }
}

function box(ctx, r, fill, stroke, lineWidth = 1.5) {
  ctx.beginPath();
  ctx.roundRect(r.x, r.y, r.w, r.h, 6);
  if (fill) { ctx.fillStyle = fill; ctx.fill(); }
  if (stroke) { ctx.lineWidth = lineWidth; ctx.strokeStyle = stroke; ctx.stroke(); ctx.lineWidth = 1; }
}

// The two lines a cell shows for its stack of bets (also what the page's
// test hooks report, so a test reads what the player reads).
export function stackLabel(stack) {
  const n = stack.count > 1 ? ` ×${stack.count}` : "";
  switch (stack.state) {
    case "pending": return [`${short(stack.stake)}${n}`, "…"];
    case "confirmed": return [`${short(stack.stake)}${n}`, `→ ${short(stack.potential)}`];
    case "won": return [`won ${short(stack.payout)}`, `(${credits(stack.payout - stack.stake, { sign: true })})`];
    case "lost": return [`lost ${short(stack.stake)}`, n ? n.trim() : null];
    case "void": return ["refunded", short(stack.stake)];
    default: return [short(stack.stake), null];
  }
}

// One cell's stack of bets (see BetBook.stacks).
export function drawStack(ctx, geo, grid, stack, ts) {
  const r = cellRect(geo, grid, stack.col, stack.lo);
  if (!visible(geo, r)) return;
  const age = ts - (stack.changedAt || 0);
  const [top, bottom] = stackLabel(stack);
  switch (stack.state) {
    case "pending": {
      const pulse = 0.5 + 0.5 * Math.sin(ts / 160);
      box(ctx, r, `rgba(255, 209, 102, ${0.08 + 0.1 * pulse})`, `rgba(255, 209, 102, ${0.45 + 0.55 * pulse})`, 2);
      labels(ctx, r, top, bottom, "rgba(255, 226, 160, 0.95)");
      break;
    }
    case "confirmed":
      box(ctx, r, "rgb(255, 176, 32)", "rgb(255, 214, 130)", stack.count > 1 ? 3 : 1.5);
      labels(ctx, r, top, bottom, "#1c1404");
      break;
    case "won": {
      const glow = Math.max(0, 1 - age / CELEBRATE_MS);
      ctx.save();
      ctx.shadowColor = "rgba(34, 197, 94, 0.9)";
      ctx.shadowBlur = 6 + 18 * glow;
      box(ctx, r, "rgb(34, 197, 94)", "rgb(134, 239, 172)");
      ctx.restore();
      labels(ctx, r, top, bottom, "#04170b");
      break;
    }
    case "lost": {
      // Fades, but not to nothing: a loss stays readable as a faint mark.
      const a = Math.max(0.35, 1 - age / LOST_FADE_MS);
      box(ctx, r, `rgba(239, 68, 68, ${0.45 * a})`, `rgba(248, 113, 113, ${0.8 * a})`);
      labels(ctx, r, top, bottom, `rgba(255, 230, 230, ${a})`);
      break;
    }
    case "void":
      box(ctx, r, "rgb(71, 85, 105)", "rgb(148, 163, 184)");
      labels(ctx, r, top, r.h >= 30 ? bottom : null, "rgba(241, 245, 249, 0.9)");
      break;
    default:
      break;
  }
}

// A tap the server refused flashes red where it was made.
export function drawRejected(ctx, geo, grid, bet, ts) {
  const r = cellRect(geo, grid, bet.col, bet.lo);
  if (!visible(geo, r)) return;
  const a = 1 - (ts - (bet.changedAt || 0)) / REJECT_FLASH_MS;
  if (a <= 0) return;
  box(ctx, r, `rgba(239, 68, 68, ${0.2 * a})`, `rgba(248, 113, 113, ${a})`, 2);
}

// A ring and a rising "+payout" over a winning cell; returns the ones still alive.
export function drawCelebrations(ctx, geo, grid, list, ts) {
  const now = performance.now();
  const alive = [];
  for (const c of list) {
    const k = (now - c.at) / CELEBRATE_MS;
    if (k >= 1) continue;
    alive.push(c);
    const r = cellRect(geo, grid, c.col, c.lo);
    const cx = r.x + r.w / 2;
    const cy = r.y + r.h / 2;
    const ease = 1 - (1 - k) ** 3;
    ctx.save();
    ctx.strokeStyle = `rgba(74, 222, 128, ${1 - k})`;
    ctx.lineWidth = 3 * (1 - k) + 0.5;
    ctx.beginPath();
    ctx.arc(cx, cy, 10 + 60 * ease, 0, Math.PI * 2);
    ctx.stroke();
    for (let i = 0; i < 10; i += 1) {
      const angle = (i / 10) * Math.PI * 2 + ts / 2000;
      const dist = 12 + 70 * ease;
      ctx.fillStyle = i % 2 ? `rgba(250, 204, 21, ${1 - k})` : `rgba(74, 222, 128, ${1 - k})`;
      ctx.beginPath();
      ctx.arc(cx + Math.cos(angle) * dist, cy + Math.sin(angle) * dist, 2.5 * (1 - k) + 0.5, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.fillStyle = `rgba(187, 247, 208, ${1 - k * k})`;
    ctx.font = `800 18px ${FONT}`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.shadowColor = "rgba(0, 0, 0, 0.6)";
    ctx.shadowBlur = 6;
    // Kept inside the board: near the left edge (a phone) it would be cut.
    const half = ctx.measureText(c.text).width / 2 + 6;
    ctx.fillText(c.text, Math.min(Math.max(cx, half), geo.w - half), cy - 18 - 40 * ease);
    ctx.restore();
  }
  return alive;
}
