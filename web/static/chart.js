// The board's backdrop, drawn under and around the cells: price bands with
// dollar labels, column lines, the "now" line with its lock strip, the price
// line with its glow and tag, and the clock axis. Stateless functions of a
// frame's geometry (see GridView.geometry in grid.js).
//
//   import { drawBands, drawPrice } from "/static/chart.js";
//   drawBands(ctx, geo, {band_cents: 1000});
//   drawPrice(ctx, geo, [{p: 6712000, t: Date.now() - 1000}, {p: 6712500, t: Date.now()}]);

import { dollars, clockTime } from "/static/format.js";

export const AXIS_BOTTOM = 24;
const TAG_H = 20;
const TAG_PAD = 14;
const TAG_GAP = 12; // from the tag's right end to the now dot (its glow is 10 px)
const LABEL_GAP = 3;
const FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";

export function drawEmpty(ctx, geo) {
  ctx.fillStyle = "rgba(148, 163, 184, 0.7)";
  ctx.font = `500 15px ${FONT}`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText("Waiting for the price feed…", geo.w / 2, geo.h / 2);
}

function touches(a, b, gap) {
  return a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;
}

function tagWidth(ctx, price) {
  ctx.font = `600 12px ${MONO}`;
  return ctx.measureText(dollars(price, { decimals: true })).width + TAG_PAD;
}

// How far from the left edge "now" must be for the price tag to sit between
// the edge and the now dot (a narrow board moves "now" left, see grid.js).
export function tagRoom(ctx, price) {
  return 4 + tagWidth(ctx, price) + TAG_GAP;
}

// The price tag sits left of the now dot, at the price (kept inside the plot).
export function priceTagBox(ctx, geo, price) {
  const w = tagWidth(ctx, price);
  const cy = Math.min(Math.max(geo.yOf(price), geo.plotTop + TAG_H / 2), geo.plotBottom - TAG_H / 2);
  return { x: Math.max(4, geo.nowX - w - TAG_GAP), y: cy - TAG_H / 2, w, h: TAG_H };
}

// Drawn last of the labels: nothing may cover the live price.
export function drawPriceTag(ctx, price, box) {
  ctx.font = `600 12px ${MONO}`;
  ctx.fillStyle = "#f7b733";
  ctx.beginPath();
  ctx.roundRect(box.x, box.y, box.w, box.h, box.h / 2);
  ctx.fill();
  ctx.fillStyle = "#17130a";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(dollars(price, { decimals: true }), box.x + box.w / 2, box.y + box.h / 2 + 0.5);
}

function bandStep(geo, grid) {
  const band = grid.band_cents;
  const bandPx = geo.yOf(0) - geo.yOf(band);
  return Math.max(1, Math.ceil(26 / Math.max(1, bandPx)));
}

export function drawBands(ctx, geo, grid) {
  const band = grid.band_cents;
  const every = bandStep(geo, grid);
  const top = Math.ceil(geo.pOf(geo.plotTop) / band) * band;
  const bottom = Math.floor(geo.pOf(geo.plotBottom) / band) * band;
  for (let p = bottom; p <= top; p += band) {
    const y = Math.round(geo.yOf(p)) + 0.5;
    const labelled = Math.round(p / band) % every === 0;
    ctx.strokeStyle = labelled ? "rgba(148, 163, 184, 0.10)" : "rgba(148, 163, 184, 0.05)";
    ctx.beginPath();
    ctx.moveTo(0, y);
    ctx.lineTo(geo.w, y);
    ctx.stroke();
  }
}

// The dollar labels go on top of everything drawn in the plot (a settled
// cell sliding into the past must not cover them), each on its own backing.
// Labels that would touch one of the `avoid` boxes (the price tag) are
// left out, as the clock labels leave room for "NOW".
export function drawBandLabels(ctx, geo, grid, layout, avoid = []) {
  const band = grid.band_cents;
  const every = bandStep(geo, grid);
  const top = Math.ceil(geo.pOf(geo.plotTop) / band) * band;
  const bottom = Math.floor(geo.pOf(geo.plotBottom) / band) * band;
  ctx.font = `500 11px ${MONO}`;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (let p = bottom; p <= top; p += band) {
    if (Math.round(p / band) % every !== 0) continue;
    const y = Math.round(geo.yOf(p)) + 0.5;
    if (y <= geo.plotTop + 6 || y >= geo.plotBottom - 6) continue;
    const text = dollars(p);
    const w = ctx.measureText(text).width;
    const box = { x: 4, y: y - 14, w: w + 8, h: 14 };
    if (avoid.some((a) => touches(a, box, LABEL_GAP))) continue;
    ctx.fillStyle = "rgba(10, 14, 22, 0.72)";
    ctx.beginPath();
    ctx.roundRect(4, y - 14, w + 8, 14, 4);
    ctx.fill();
    ctx.fillStyle = "rgba(148, 163, 184, 0.85)";
    ctx.fillText(text, 8, y - 7);
    if (layout) layout.bands.push({ text, ...box });
  }
}

export function drawColumns(ctx, geo, grid) {
  const first = Math.floor(geo.tOf(geo.nowX) / grid.column_ms) * grid.column_ms;
  ctx.strokeStyle = "rgba(148, 163, 184, 0.06)";
  for (let t = first; geo.xOf(t) < geo.w; t += grid.column_ms) {
    const x = Math.round(geo.xOf(t)) + 0.5;
    if (x < geo.nowX) continue;
    ctx.beginPath();
    ctx.moveTo(x, geo.plotTop);
    ctx.lineTo(x, geo.plotBottom);
    ctx.stroke();
  }
}

export function drawNowLine(ctx, geo, grid) {
  const x = Math.round(geo.nowX) + 0.5;
  const lockX = geo.xOf(geo.now + grid.lock_ms);
  // The strip just ahead of now is where columns are already locked.
  const grad = ctx.createLinearGradient(x, 0, lockX, 0);
  grad.addColorStop(0, "rgba(247, 183, 51, 0.07)");
  grad.addColorStop(1, "rgba(247, 183, 51, 0)");
  ctx.fillStyle = grad;
  ctx.fillRect(x, geo.plotTop, lockX - x, geo.plotBottom - geo.plotTop);
  ctx.strokeStyle = "rgba(247, 183, 51, 0.35)";
  ctx.setLineDash([3, 4]);
  ctx.beginPath();
  ctx.moveTo(x, geo.plotTop);
  ctx.lineTo(x, geo.plotBottom);
  ctx.stroke();
  ctx.setLineDash([]);
}

export function drawPrice(ctx, geo, ticks) {
  const price = ticks[ticks.length - 1].p;
  const yNow = geo.yOf(price);
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, geo.plotTop, geo.nowX + 1, geo.plotBottom - geo.plotTop);
  ctx.clip();
  // Area under the line fades out downwards.
  const path = new Path2D();
  let firstX = null;
  for (let i = 0; i < ticks.length; i += 1) {
    const tk = ticks[i];
    const next = ticks[i + 1];
    // Off-screen ticks are skipped, except the one entering the view.
    if (next && geo.xOf(next.t) < 0) continue;
    const x = geo.xOf(Math.min(tk.t, geo.now));
    const y = geo.yOf(tk.p);
    if (firstX === null) { firstX = x; path.moveTo(x, y); } else path.lineTo(x, y);
  }
  path.lineTo(geo.nowX, yNow); // the last price prevails until the next tick
  const fill = new Path2D(path);
  fill.lineTo(geo.nowX, geo.plotBottom);
  fill.lineTo(firstX, geo.plotBottom);
  fill.closePath();
  const grad = ctx.createLinearGradient(0, yNow - 60, 0, geo.plotBottom);
  grad.addColorStop(0, "rgba(247, 183, 51, 0.16)");
  grad.addColorStop(1, "rgba(247, 183, 51, 0)");
  ctx.fillStyle = grad;
  ctx.fill(fill);
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#f7b733";
  ctx.lineWidth = 2;
  ctx.shadowColor = "rgba(247, 183, 51, 0.6)";
  ctx.shadowBlur = 8;
  ctx.stroke(path);
  ctx.restore();

  ctx.strokeStyle = "rgba(247, 183, 51, 0.25)";
  ctx.setLineDash([2, 5]);
  ctx.beginPath();
  ctx.moveTo(geo.nowX, Math.round(yNow) + 0.5);
  ctx.lineTo(geo.w, Math.round(yNow) + 0.5);
  ctx.stroke();
  ctx.setLineDash([]);

  const pulse = 0.5 + 0.5 * Math.sin(performance.now() / 300);
  ctx.fillStyle = `rgba(247, 183, 51, ${0.15 + 0.2 * pulse})`;
  ctx.beginPath();
  ctx.arc(geo.nowX, yNow, 7 + 3 * pulse, 0, Math.PI * 2);
  ctx.fill();
  ctx.fillStyle = "#f7b733";
  ctx.beginPath();
  ctx.arc(geo.nowX, yNow, 3.5, 0, Math.PI * 2);
  ctx.fill();
}

// Clock labels every few columns; none may touch the "NOW" label (each is
// measured, with a gap), so they never collide whatever the width.
export function drawTimeAxis(ctx, geo, grid, layout) {
  const colPx = grid.column_ms * geo.pxPerMs;
  const y = geo.h - AXIS_BOTTOM / 2;
  ctx.textBaseline = "middle";
  ctx.textAlign = "center";
  ctx.font = `700 11px ${FONT}`;
  const nowW = ctx.measureText("NOW").width;
  const nowRect = { x: geo.nowX - nowW / 2, w: nowW };
  ctx.font = `500 11px ${MONO}`;
  const labelW = ctx.measureText("00:00:00").width;
  const every = Math.max(1, Math.ceil((labelW + 12) / colPx));
  const step = grid.column_ms * every;
  const first = Math.ceil(geo.tOf(0) / step) * step;
  const GAP = 8;
  for (let t = first; geo.xOf(t) < geo.w - labelW / 2 - 2; t += step) {
    const x = geo.xOf(t);
    if (x - labelW / 2 < 2) continue;
    if (x + labelW / 2 + GAP > nowRect.x && x - labelW / 2 - GAP < nowRect.x + nowRect.w) continue;
    ctx.fillStyle = t > geo.now ? "rgba(148, 163, 184, 0.7)" : "rgba(148, 163, 184, 0.4)";
    ctx.fillText(clockTime(t), x, y);
    if (layout) layout.time.push({ x: x - labelW / 2, w: labelW });
  }
  ctx.fillStyle = "#f7b733";
  ctx.font = `700 11px ${FONT}`;
  ctx.fillText("NOW", geo.nowX, y);
  if (layout) layout.now = nowRect;
}
