// The board's input: taps and clicks, drags and the wheel to pan and zoom
// the price axis, a press (touch) or hover for the payout preview, clicks
// on the off-screen markers, and the keyboard (arrows move a focus cell,
// Enter or Space taps it). Mixed into GridView (grid.js), whose state it uses.
//
//   import { GridInput } from "/static/gridinput.js";
//   Object.assign(GridView.prototype, GridInput);

import { offscreenStacks } from "/static/board.js";

const DRAG_PX = 8; // a pointer moved this far is a pan, not a tap
const ZOOM_MIN = 0.4;
const ZOOM_MAX = 5;

export const GridInput = {
  click(ev) {
    if (this.suppressClick) { this.suppressClick = false; return; }
    const { x, y } = this.localPoint(ev);
    const marker = this.markers.find((m) => x >= m.x && x <= m.x + m.w && y >= m.y && y <= m.y + m.h);
    if (marker) return this.panTo(marker.lo);
    const cell = this.cellAt(x, y);
    if (cell) this.onTap(cell);
  },

  pointerDown(ev) {
    const p = this.localPoint(ev);
    this.drag = { y: p.y, x: p.x, pan: this.panCents, moved: false };
    this.suppressClick = false;
    // A finger has no hover: a press shows what the cell would pay.
    if (ev.pointerType !== "mouse") this.hoverAt(p);
  },

  pointerMove(ev) {
    const p = this.localPoint(ev);
    const d = this.drag;
    if (d && ev.buttons && (d.moved || Math.abs(p.y - d.y) > DRAG_PX)) {
      d.moved = true;
      this.suppressClick = true;
      const geo = this.geometry(this.now());
      const perPx = (geo.pOf(0) - geo.pOf(1));
      this.setPan(d.pan + (p.y - d.y) * perPx);
      this.onHover(null);
      return;
    }
    this.hoverAt(p);
  },

  hoverAt(p) {
    this.hover = p;
    const cell = this.cellAt(p.x, p.y);
    this.onHover(cell && cell.open ? cell : null, p);
  },

  wheel(ev) {
    ev.preventDefault();
    if (ev.shiftKey) {
      const geo = this.geometry(this.now());
      this.setPan(this.panCents - ev.deltaY * (geo.pOf(0) - geo.pOf(1)));
    } else {
      this.setZoom(this.zoom * Math.exp(ev.deltaY * 0.0015));
    }
  },

  setPan(cents) {
    this.panCents = Math.round(cents);
    this.cy = null; // jump rather than glide: the player is steering
    this.onViewChange(this.panned);
  },

  setZoom(z) {
    this.zoom = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, z));
    this.onViewChange(this.panned);
  },

  // Pan so the band at `lo` sits in the middle of the board.
  panTo(lo) {
    const centre = this.cy === null ? this.price : this.cy - this.panCents;
    this.setPan(lo + this.grid.band_cents / 2 - centre);
  },

  recenter() {
    this.panCents = 0;
    this.zoom = 1;
    this.cy = null;
    this.onViewChange(false);
  },


  offscreen() {
    const geo = this.geometry(this.now());
    const out = offscreenStacks(geo, this.grid, this.stacks(), performance.now());
    return { above: out.above.length, below: out.below.length };
  },

  // ---- keyboard: arrows move a focus cell, Enter or Space taps it ----

  openColumns(now) {
    return [...this.cells.keys()].filter((t0) => this.isOpen(t0, now)).sort((a, b) => a - b);
  },

  key(ev) {
    const g = this.grid;
    const now = this.now();
    const cols = this.openColumns(now);
    const band = g.band_cents;
    const geo = this.geometry(now);
    if (ev.key === "PageUp" || ev.key === "PageDown") {
      ev.preventDefault();
      return this.setPan(this.panCents + (ev.key === "PageUp" ? 3 : -3) * band);
    }
    if (ev.key === "+" || ev.key === "=" || ev.key === "-") return this.setZoom(this.zoom * (ev.key === "-" ? 1.25 : 0.8));
    if (ev.key === "Home") { ev.preventDefault(); return this.recenter(); }
    if (!cols.length) return;
    let f = this.focus;
    if (!f || !cols.includes(f.t0)) {
      const lo = Math.floor((this.price ?? geo.pOf((geo.plotTop + geo.plotBottom) / 2)) / band) * band;
      f = { t0: cols[Math.min(1, cols.length - 1)], lo };
    }
    let moved = true;
    const i = cols.indexOf(f.t0);
    switch (ev.key) {
      case "ArrowRight": f = { ...f, t0: cols[Math.min(cols.length - 1, i + 1)] }; break;
      case "ArrowLeft": f = { ...f, t0: cols[Math.max(0, i - 1)] }; break;
      case "ArrowUp": f = { ...f, lo: f.lo + band }; break;
      case "ArrowDown": f = { ...f, lo: f.lo - band }; break;
      case "Enter":
      case " ": {
        ev.preventDefault();
        const row = this.cells.get(f.t0);
        if (row && row.has(f.lo)) this.onTap({ t0: f.t0, lo: f.lo, mult: row.get(f.lo), open: this.isOpen(f.t0, now), locked: false });
        moved = false;
        break;
      }
      default: moved = this.focus === null && ev.key === "Tab" ? false : null;
    }
    if (moved === null) return;
    if (moved) ev.preventDefault();
    this.focus = f;
    // Keep the focus cell on screen: pan when it leaves the plot.
    const y = geo.yOf(f.lo + band / 2);
    if (y < geo.plotTop || y > geo.plotBottom) this.panTo(f.lo);
    const row = this.cells.get(f.t0);
    this.onFocusCell(row && row.has(f.lo) ? { t0: f.t0, lo: f.lo, mult: row.get(f.lo), open: true } : null);
  },
};
