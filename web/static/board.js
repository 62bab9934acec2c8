// What the board draws about itself rather than the market: the lock strip
// as columns (hatched, "locked") instead of a blank gap, edge markers for the
// player's bets that are above or below the visible prices (clicking one
// pans to them), and the keyboard's focus ring.
//
//   import { drawLocked, drawMarkers, offscreenStacks } from "/static/board.js";
//   const off = offscreenStacks(geo, grid, book.stacks(), performance.now());
//   const markers = drawMarkers(ctx, geo, off);  // [{x, y, w, h, lo, side, count}]

const FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const SETTLED_SHOW_MS = 6000; // a loss or refund off-screen still earns a marker this long

// Returns the t0 of every locked column it drew.
export function drawLocked(ctx, geo, grid, locked, cells) {
  const drawn = [];
  const first = Math.floor((geo.now - grid.column_ms) / grid.column_ms) * grid.column_ms;
  for (let t0 = first; t0 < geo.now + grid.lock_ms; t0 += grid.column_ms) {
    const x0 = Math.max(geo.nowX, geo.xOf(t0));
    const x1 = geo.xOf(t0 + grid.column_ms);
    if (x1 <= x0 + 2) continue;
    drawn.push({ t0, x: x0, w: x1 - x0 });
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, geo.plotTop, x1 - x0, geo.plotBottom - geo.plotTop);
    ctx.clip();
    ctx.fillStyle = "rgba(148, 163, 184, 0.045)";
    ctx.fillRect(x0, geo.plotTop, x1 - x0, geo.plotBottom - geo.plotTop);
    ctx.strokeStyle = "rgba(148, 163, 184, 0.09)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let d = -geo.h; d < x1 - x0 + geo.h; d += 10) {
      ctx.moveTo(x0 + d, geo.plotTop);
      ctx.lineTo(x0 + d - geo.h, geo.plotTop + geo.h);
    }
    ctx.stroke();
    const row = locked.get(t0) || cells.get(t0);
    if (row) {
      ctx.strokeStyle = "rgba(148, 163, 184, 0.10)";
      for (const lo of row.keys()) {
        const yTop = geo.yOf(lo + grid.band_cents);
        const yBot = geo.yOf(lo);
        if (yBot < geo.plotTop || yTop > geo.plotBottom) continue;
        ctx.strokeRect(geo.xOf(t0) + 2.5, yTop + 2.5, geo.xOf(t0 + grid.column_ms) - geo.xOf(t0) - 5, yBot - yTop - 5);
      }
    }
    ctx.restore();
    if (x1 - x0 >= 30) {
      ctx.fillStyle = "rgba(203, 213, 225, 0.55)";
      ctx.font = `700 9px ${FONT}`;
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      ctx.fillText("LOCKED", (x0 + x1) / 2, geo.plotTop + 4);
    }
  }
  return drawn;
}

// The player's stacks whose column is on screen but whose band is not.
export function offscreenStacks(geo, grid, stacks, ts) {
  const above = [];
  const below = [];
  for (const st of stacks) {
    const live = st.state === "pending" || st.state === "confirmed";
    if (!live && ts - st.changedAt > SETTLED_SHOW_MS) continue;
    if (geo.xOf(st.col + grid.column_ms) < 0 || geo.xOf(st.col) > geo.w) continue;
    if (geo.yOf(st.lo) < geo.plotTop + 4) above.push(st);
    else if (geo.yOf(st.lo + grid.band_cents) > geo.plotBottom - 4) below.push(st);
  }
  return { above, below };
}

function markerColour(list) {
  if (list.some((s) => s.state === "won")) return ["rgb(34, 197, 94)", "#04170b"];
  if (list.some((s) => s.state === "lost")) return ["rgb(239, 68, 68)", "#fff"];
  if (list.some((s) => s.state === "void")) return ["rgb(100, 116, 139)", "#fff"];
  return ["rgb(255, 176, 32)", "#1c1404"];
}

export function drawMarkers(ctx, geo, { above, below }) {
  const out = [];
  const cx = geo.nowX + (geo.w - geo.nowX) / 2;
  for (const [side, list] of [["above", above], ["below", below]]) {
    if (!list.length) continue;
    const n = list.length;
    const text = `${side === "above" ? "▲" : "▼"} ${n} ${n === 1 ? "bet" : "bets"} ${side}`;
    ctx.font = `700 12px ${FONT}`;
    const w = ctx.measureText(text).width + 20;
    const h = 22;
    const x = cx - w / 2;
    const y = side === "above" ? geo.plotTop + 2 : geo.plotBottom - h - 2;
    const [bg, fg] = markerColour(list);
    ctx.fillStyle = bg;
    ctx.beginPath();
    ctx.roundRect(x, y, w, h, 11);
    ctx.fill();
    ctx.fillStyle = fg;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, cx, y + h / 2 + 0.5);
    // Clicking pans to the nearest of them.
    const lo = side === "above" ? Math.min(...list.map((s) => s.lo)) : Math.max(...list.map((s) => s.lo));
    out.push({ x, y, w, h, lo, side, count: n });
  }
  return out;
}

export function drawFocus(ctx, geo, grid, focus) {
  const x0 = geo.xOf(focus.t0) + 1;
  const x1 = geo.xOf(focus.t0 + grid.column_ms) - 1;
  const y0 = geo.yOf(focus.lo + grid.band_cents) + 1;
  const y1 = geo.yOf(focus.lo) - 1;
  ctx.save();
  ctx.strokeStyle = "#f8fafc";
  ctx.lineWidth = 2.5;
  ctx.setLineDash([5, 3]);
  ctx.beginPath();
  ctx.roundRect(x0, y0, x1 - x0, y1 - y0, 7);
  ctx.stroke();
  ctx.restore();
}
