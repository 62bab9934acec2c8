// The board: a canvas where time flows right to left. "Now" sits at 35% of
// the width; the past price line is to its left, the grid of future cells
// (time window x price band) to its right. Drawn every animation frame, crisp
// on HiDPI, and hit-tested in CSS pixels.
//
//   import { GridView } from "/static/grid.js";
//   const view = new GridView(canvas, {now: () => Date.now(), bets: () => [],
//                                      onTap: (cell) => console.log(cell)});
//   view.setGrid(gridJson);        // shape of GET /api/grid
//   view.addTick(6712345, Date.now());
//   view.start();
//   view.openCells();              // [{t0, lo, mult, x, y}] tappable right now

import { multLabel, shortMultLabel } from "/static/format.js";
import { drawStack, drawRejected, drawCelebrations, fitText, multColour } from "/static/cells.js";
import { AXIS_BOTTOM, drawBands, drawBandLabels, drawColumns, drawEmpty, drawNowLine, drawPrice, drawPriceTag, drawTimeAxis,
  priceTagBox, tagRoom } from "/static/chart.js";
import { drawLocked, drawMarkers, drawFocus, offscreenStacks } from "/static/board.js";
import { GridInput } from "/static/gridinput.js";

const NOW_FRACTION = 0.35;
const MIN_COL_PX = 58; // narrower cells are too small for a thumb and a "24.06x" label
// A phone is narrow: "now" moves left and columns get thinner, so five or
// more open columns (25 s+) fit instead of two; "now" stays far enough right
// for the price tag to fit left of it (else it covers the dot and the
// price labels).
const NARROW_PX = 600;
const NARROW_NOW_FRACTION = 0.16;
const NARROW_MIN_COL_PX = 44;

const TARGET_CELL_PX = 48;
const PLOT_TOP = 12;
const TICK_KEEP_MS = 180000;
const SCALE_SMOOTH_MS = 450; // time constant of the vertical auto-scale

const DEFAULT_GRID = { column_ms: 5000, band_cents: 1000, lock_ms: 3000, horizon_ms: 60000, columns: [] };

export class GridView {
  constructor(canvas, { now, bets, stacks, onTap, onHover, onFocusCell, onViewChange }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.now = now;
    this.bets = bets || (() => []);
    this.stacks = stacks || (() => []);
    this.onTap = onTap || (() => {});
    this.onHover = onHover || (() => {});
    this.onFocusCell = onFocusCell || (() => {});
    this.onViewChange = onViewChange || (() => {});
    this.locked = new Map(); // t0 -> Map(lo -> mult): columns that left the grid on locking
    this.panCents = 0; // the player's vertical pan from the auto-scaled view
    this.zoom = 1; // and zoom (span multiplier)
    this.drag = null;
    this.suppressClick = false;
    this.focus = null; // {t0, lo}: the keyboard's cell
    this.markers = [];
    this.layout = { layers: [], time: [], now: null, bands: [] };
    this.grid = { ...DEFAULT_GRID };
    this.cells = new Map(); // t0 -> Map(lo -> mult)
    this.ticks = [];
    this.market = "open";
    this.live = true;
    this.cy = null; // centre of the view in cents
    this.span = null; // visible height in cents
    this.lastFrame = 0;
    this.hover = null;
    this.celebrations = [];
    this.size = { w: 0, h: 0, dpr: 0 };
    this.tagRoom = 0; // px the price tag needs left of now (measured each frame)
    this.running = false;
    canvas.addEventListener("click", (ev) => this.click(ev));
    canvas.addEventListener("pointerdown", (ev) => this.pointerDown(ev));
    canvas.addEventListener("pointermove", (ev) => this.pointerMove(ev));
    canvas.addEventListener("pointerup", () => { this.drag = null; });
    canvas.addEventListener("pointercancel", () => { this.drag = null; });
    canvas.addEventListener("pointerleave", () => { this.hover = null; this.onHover(null); });
    canvas.addEventListener("wheel", (ev) => this.wheel(ev), { passive: false });
    canvas.addEventListener("keydown", (ev) => this.key(ev));
    canvas.addEventListener("blur", () => this.onFocusCell(null));
  }

  setGrid(grid) {
    if (!grid || !Array.isArray(grid.columns)) return;
    this.grid = { ...DEFAULT_GRID, ...grid };
    // A column leaves the grid when it locks; keep drawing it (dimmed,
    // marked locked) until its window is over, so the lock strip is no gap.
    const now = this.now();
    const live = new Set(grid.columns.map((c) => c.t0));
    for (const [t0, row] of this.cells) if (!live.has(t0)) this.locked.set(t0, row);
    for (const t0 of [...this.locked.keys()]) {
      if (live.has(t0) || t0 + this.grid.column_ms < now - this.grid.column_ms) this.locked.delete(t0);
    }
    const cells = new Map();
    for (const col of grid.columns) {
      const row = new Map();
      for (const c of col.cells || []) row.set(c.lo, c.mult);
      cells.set(col.t0, row);
    }
    this.cells = cells;
    if (grid.market) this.market = grid.market;
    if (Number.isFinite(grid.price) && Number.isFinite(grid.price_ts)) this.addTick(grid.price, grid.price_ts);
  }

  // Another market on the board: its grid and its asset's prices replace
  // everything drawn, and the axes start afresh.
  reset() {
    this.grid = { ...DEFAULT_GRID };
    this.cells = new Map();
    this.locked = new Map();
    this.ticks = [];
    this.cy = null;
    this.span = null;
    this.panCents = 0;
    this.zoom = 1;
    this.focus = null;
    this.celebrations = [];
    this.onViewChange(false);
  }

  setMarket(status) {
    this.market = status;
  }

  // Not live (signed in but disconnected): the grid on screen may be stale,
  // so nothing on it is offered for a tap.
  setLive(live) {
    this.live = live;
  }

  addTick(p, t) {
    if (!Number.isFinite(p) || !Number.isFinite(t)) return;
    const ticks = this.ticks;
    const last = ticks[ticks.length - 1];
    if (!last || t > last.t) ticks.push({ p, t });
    else if (t === last.t) last.p = p;
    else {
      let i = ticks.length - 1;
      while (i > 0 && ticks[i - 1].t > t) i -= 1;
      if (ticks[i - 1] && ticks[i - 1].t === t) return;
      ticks.splice(i, 0, { p, t });
    }
    const cut = t - TICK_KEEP_MS;
    let drop = 0;
    while (drop < ticks.length - 1 && ticks[drop].t < cut) drop += 1;
    if (drop) ticks.splice(0, drop);
  }

  // The stored price record ([[ts, price], ...], oldest first) merged in
  // under the live ticks: the chart's past is full from the first frame.
  addTicks(rows) {
    if (!Array.isArray(rows) || !rows.length) return;
    const byT = new Map(this.ticks.map((tk) => [tk.t, tk]));
    for (const [t, p] of rows) if (Number.isFinite(t) && Number.isFinite(p) && !byT.has(t)) byT.set(t, { p, t });
    const merged = [...byT.values()].sort((a, b) => a.t - b.t);
    const cut = merged[merged.length - 1].t - TICK_KEEP_MS;
    this.ticks = merged.filter((tk) => tk.t >= cut);
  }

  get price() {
    return this.ticks.length ? this.ticks[this.ticks.length - 1].p : null;
  }

  celebrate(col, lo, text) {
    this.celebrations.push({ col, lo, text, at: performance.now() });
  }

  start() {
    if (this.running) return;
    this.running = true;
    const frame = (ts) => {
      if (!this.running) return;
      try {
        this.draw(ts);
      } catch (err) {
        // One bad frame must not stop the board; report it once and carry on.
        if (!this.reported) { this.reported = true; console.warn("grid frame failed", err); }
      }
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  // ---- geometry (CSS pixels) ----

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width));
    const h = Math.max(1, Math.round(rect.height));
    if (w !== this.size.w || h !== this.size.h || dpr !== this.size.dpr) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      this.size = { w, h, dpr };
    }
  }

  geometry(now) {
    const { w, h } = this.size;
    const g = this.grid;
    const narrow = w < NARROW_PX;
    const nowX = narrow ? Math.round(Math.max(w * NARROW_NOW_FRACTION, this.tagRoom)) : Math.round(w * NOW_FRACTION);
    const minCol = narrow ? NARROW_MIN_COL_PX : MIN_COL_PX;
    const pxPerMs = Math.max((w - nowX) / (g.horizon_ms + g.column_ms), minCol / g.column_ms);
    const plotTop = PLOT_TOP;
    const plotBottom = h - AXIS_BOTTOM;
    const cy = this.cy ?? this.price ?? 0;
    const span = this.span ?? g.band_cents * 10;
    const scale = (plotBottom - plotTop) / span;
    const mid = (plotTop + plotBottom) / 2;
    return {
      w, h, now, nowX, pxPerMs, plotTop, plotBottom, narrow,
      xOf: (t) => nowX + (t - now) * pxPerMs,
      tOf: (x) => now + (x - nowX) / pxPerMs,
      yOf: (p) => mid - (p - cy) * scale,
      pOf: (y) => cy + (mid - y) / scale,
    };
  }

  // Smoothly follows the price: enough bands for thumb-sized cells, wider
  // when the visible past swung further than that.
  autoscale(dtMs) {
    const price = this.price;
    if (price === null) return;
    const g = this.grid;
    const plotH = Math.max(60, this.size.h - AXIS_BOTTOM - PLOT_TOP);
    const bands = Math.max(5, Math.round(plotH / TARGET_CELL_PX));
    const from = this.geometry(this.now()).tOf(0);
    let lo = price;
    let hi = price;
    for (const tk of this.ticks) {
      if (tk.t < from) continue;
      if (tk.p < lo) lo = tk.p;
      if (tk.p > hi) hi = tk.p;
    }
    const targetSpan = Math.max(bands * g.band_cents, (hi - lo) * 1.5) * this.zoom;
    const half = targetSpan / 2;
    let targetCy = (lo + hi) / 2;
    // Keep the live price inside the middle 60% so cells either side show;
    // the player's pan then moves the view off it on purpose.
    targetCy = Math.min(Math.max(targetCy, price - half * 0.6), price + half * 0.6) + this.panCents;
    if (this.cy === null || this.span === null) {
      this.cy = targetCy;
      this.span = targetSpan;
      return;
    }
    const k = 1 - Math.exp(-Math.min(dtMs, 1000) / SCALE_SMOOTH_MS);
    this.cy += (targetCy - this.cy) * k;
    this.span += (targetSpan - this.span) * k;
  }

  get panned() {
    return this.panCents !== 0 || this.zoom !== 1;
  }

  isOpen(t0, now) {
    return this.live && this.market === "open" && now < t0 - this.grid.lock_ms;
  }

  // ---- input ----

  localPoint(ev) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: ev.clientX - rect.left, y: ev.clientY - rect.top };
  }

  isLocked(t0, now) {
    return now >= t0 - this.grid.lock_ms;
  }

  // A cell, or {locked: true} for a tap in the lock strip (the columns
  // between now and the first open one), or null off the grid.
  cellAt(x, y) {
    const geo = this.geometry(this.now());
    if (y < geo.plotTop || y > geo.plotBottom || x < geo.nowX) return null;
    const g = this.grid;
    const t0 = Math.floor(geo.tOf(x) / g.column_ms) * g.column_ms;
    const lo = Math.floor(geo.pOf(y) / g.band_cents) * g.band_cents;
    const locked = this.isLocked(t0, geo.now);
    const row = this.cells.get(t0) || this.locked.get(t0);
    if (!row || !row.has(lo)) return locked ? { t0, lo, mult: null, open: false, locked } : null;
    return { t0, lo, mult: row.get(lo), open: this.isOpen(t0, geo.now), locked };
  }

  // Where a cell's centre is drawn right now (CSS px inside the canvas).
  centreOf(t0, lo) {
    const geo = this.geometry(this.now());
    const g = this.grid;
    return { x: Math.round((geo.xOf(t0) + geo.xOf(t0 + g.column_ms)) / 2), y: Math.round((geo.yOf(lo) + geo.yOf(lo + g.band_cents)) / 2) };
  }

  openCells() {
    if (!this.size.w) return [];
    const geo = this.geometry(this.now());
    const g = this.grid;
    const out = [];
    for (const [t0, row] of this.cells) {
      if (!this.isOpen(t0, geo.now)) continue;
      const x = (geo.xOf(t0) + geo.xOf(t0 + g.column_ms)) / 2;
      if (x < geo.nowX || x > geo.w) continue;
      for (const [lo, mult] of row) {
        const y = (geo.yOf(lo) + geo.yOf(lo + g.band_cents)) / 2;
        if (y < geo.plotTop || y > geo.plotBottom) continue;
        out.push({ t0, lo, mult, x: Math.round(x), y: Math.round(y) });
      }
    }
    return out;
  }

  // ---- drawing ----

  draw(ts) {
    const dt = this.lastFrame ? ts - this.lastFrame : 16;
    this.lastFrame = ts;
    this.resize();
    this.autoscale(dt);
    const ctx = this.ctx;
    const { w, h, dpr } = this.size;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (this.price !== null) this.tagRoom = tagRoom(ctx, this.price);
    const geo = this.geometry(this.now());
    if (this.price === null) {
      drawEmpty(ctx, geo);
      return;
    }
    const layout = { layers: [], time: [], now: null, bands: [] };
    const stacks = this.stacks();
    drawBands(ctx, geo, this.grid);
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, geo.plotTop, w, geo.plotBottom - geo.plotTop);
    ctx.clip(); // cells never spill into the time axis
    drawColumns(ctx, geo, this.grid);
    layout.locked = drawLocked(ctx, geo, this.grid, this.locked, this.cells);
    layout.nowX = geo.nowX;
    layout.unlabelled = this.drawCells(geo, stacks); // open cells whose multiplier did not fit
    layout.layers.push("cells");
    for (const bet of this.bets()) if (bet.state === "rejected") drawRejected(ctx, geo, this.grid, bet, ts);
    for (const st of stacks) drawStack(ctx, geo, this.grid, st, ts);
    layout.layers.push("bets");
    if (this.focus && document.activeElement === this.canvas) drawFocus(ctx, geo, this.grid, this.focus);
    ctx.restore();
    drawNowLine(ctx, geo, this.grid);
    drawPrice(ctx, geo, this.ticks);
    const tag = priceTagBox(ctx, geo, this.price);
    drawBandLabels(ctx, geo, this.grid, layout, [tag]);
    layout.layers.push("price-labels");
    drawPriceTag(ctx, this.price, tag);
    layout.priceTag = tag;
    layout.layers.push("price-tag");
    drawTimeAxis(ctx, geo, this.grid, layout);
    this.markers = drawMarkers(ctx, geo, offscreenStacks(geo, this.grid, stacks, ts));
    layout.markers = this.markers.map(({ x, y, w, h, side, count }) => ({ x, y, w, h, side, count }));
    this.celebrations = drawCelebrations(ctx, geo, this.grid, this.celebrations, ts);
    this.layout = layout;
  }

  drawCells(geo, stacks) {
    const ctx = this.ctx;
    const g = this.grid;
    const hovered = this.hover ? this.cellAt(this.hover.x, this.hover.y) : null;
    this.canvas.style.cursor = hovered && hovered.open ? "pointer" : hovered && hovered.locked ? "not-allowed" : "default";
    const betCells = new Set(stacks.map((st) => `${st.col}:${st.lo}`));
    let unlabelled = 0;
    for (const [t0, row] of this.cells) {
      const x0 = geo.xOf(t0);
      const x1 = geo.xOf(t0 + g.column_ms);
      if (x1 < geo.nowX || x0 > geo.w) continue;
      const open = this.isOpen(t0, geo.now);
      const cw = x1 - x0 - 4;
      for (const [lo, mult] of row) {
        const yTop = geo.yOf(lo + g.band_cents);
        const yBot = geo.yOf(lo);
        if (yBot < geo.plotTop || yTop > geo.plotBottom) continue;
        const ch = yBot - yTop - 4;
        if (cw < 4 || ch < 4) continue;
        const isHover = hovered && hovered.open && hovered.t0 === t0 && hovered.lo === lo;
        const alpha = open ? (isHover ? 0.34 : 0.12) : 0.04;
        ctx.fillStyle = multColour(mult, alpha);
        ctx.strokeStyle = multColour(mult, open ? (isHover ? 0.9 : 0.28) : 0.08);
        ctx.beginPath();
        ctx.roundRect(x0 + 2, yTop + 2, cw, ch, 6);
        ctx.fill();
        ctx.stroke();
        // A label cut by the canvas edge misreads ("2.16x" shows as "2.1"), so
        // the partly visible last column shows its cells but no numbers.
        if (ch >= 14 && x1 <= geo.w + 1 && !betCells.has(`${t0}:${lo}`)) {
          ctx.fillStyle = open ? multColour(mult, isHover ? 1 : 0.9) : "rgba(148, 163, 184, 0.28)";
          const at = [x0 + 2 + cw / 2, yTop + 2 + ch / 2, cw - 6, Math.min(13, Math.max(10, ch * 0.3))];
          if (!fitText(ctx, multLabel(mult), ...at) && !fitText(ctx, shortMultLabel(mult), ...at) && open) unlabelled++;
        }
      }
    }
    return unlabelled;
  }
}

// Input handling lives in gridinput.js.
Object.assign(GridView.prototype, GridInput);
