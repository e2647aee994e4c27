// Live traces: stacked channels, min/max decimation per pixel column, scrolling right to left.
//
// Why a hand-written renderer and not a charting library: at 32 channels × 4000 SPS a 20 s window
// holds 2.56 M samples. A general plot library redraws every series from its points on each frame;
// here each pixel column's min/max is computed once, when its samples arrive, and kept in a ring of
// columns, so a frame only paints W × channels vertical spans straight into an ImageData (no path
// building, no anti-aliasing work). Every spike shows, because a column spans the min and max of all
// the samples under it. Measured side by side in headless Chromium on the project's 2-core VM
// (32 channels, 20 s window at 4000 SPS, a 1230 × 820 px plot, each frame 67 new samples): uPlot
// 1.6.32 took a median 130 ms to redraw, this renderer 8 ms (ingest excluded for both). The frame
// rate in the live page is measured by interop/test_ui.py (see BENCHMARKS.md).

export const PALETTE = ['#8cc4e6', '#93d1ae', '#d9c48e', '#c6a6de', '#e3a58f', '#8fd6d2', '#b8c77f', '#e0a0bd'];
const GUTTER_CSS = 70;   // px for channel labels on the left
const MARGIN_CSS = 10;   // px on the right
const AXIS_CSS = 18;     // px for the time axis at the bottom
const MAX_WINDOW_S = 20;
const JOIN_GAP_S = 0.05;  // longest gap drawn as a line rather than a break

/** Paints column x from row top to row bot (inclusive), clipped to the image. */
function fillSpan(px, W, H, x, top, bot, color) {
  if (top < 0) top = 0;
  if (bot > H - 1) bot = H - 1;
  for (let i = top * W + x; top <= bot; top++, i += W) px[i] = color;
}

function rgbaU32(hex, alpha = 255) {
  const n = parseInt(hex.slice(1), 16);
  // ImageData is RGBA in memory; a little-endian Uint32 view reads it as ABGR.
  return ((alpha << 24) | ((n & 0xff) << 16) | (n & 0xff00) | (n >> 16)) >>> 0;
}

export class TraceView {
  constructor({ area, grid, canvas, labels, empty, info }) {
    Object.assign(this, { area, grid, canvas, labelsEl: labels, emptyEl: empty, infoEl: info });
    this.ctx = canvas.getContext('2d');
    this.gctx = grid.getContext('2d');
    this.windowS = 10;
    this.uvPerDiv = 100;
    this.paused = false;
    this.hidden = new Set();
    this.labels = [];
    this.markers = [];        // absolute sample indices
    this.channels = 0;
    this.rate = 0;
    this.framesIn = 0;
    this.onLayout = () => {};
    this.resetStream(0, 0);
    new ResizeObserver(() => { this.layoutDirty = true; }).observe(area);
    this.layoutDirty = true;
  }

  resetStream(channels, rate) {
    this.channels = channels;
    this.rate = rate;
    this.cap = Math.max(1, Math.ceil(rate * (MAX_WINDOW_S + 1)));
    this.buf = new Float32Array(channels * this.cap);
    this.head = 0;            // absolute index of the next sample to write
    this.t0Ns = null;         // timestamp of absolute sample 0
    this.markers = [];
    this.columnsDirty = true;
    this.layoutDirty = true;
  }

  setLabels(labels) {
    if (labels.join('\u0000') === this.labels.join('\u0000')) return;
    this.labels = labels.slice();
    this.layoutDirty = true;
  }
  label(c) { return this.labels[c] ?? `Ch${c + 1}`; }

  /** Marks the channels whose labels are in `railed` (a Set) on their trace labels. */
  setRailed(railed) {
    this.railed = railed;
    for (const d of this.labelsEl.children) d.classList.toggle('railed', railed.has(this.label(Number(d.dataset.channel))));
  }
  setWindow(s) { this.windowS = Math.min(MAX_WINDOW_S, Math.max(2, s)); this.columnsDirty = true; this.layoutDirty = true; }
  setScale(uv) { this.uvPerDiv = uv; this.layoutDirty = true; }
  setPaused(p) { this.paused = p; this.layoutDirty = true; }
  toggle(c, show = this.hidden.has(c)) {
    if (show) this.hidden.delete(c); else this.hidden.add(c);
    this.layoutDirty = true;
  }
  /** A marker at its timestamp (ns since the UNIX epoch, a BigInt): drawn on the sample it falls on. */
  addMarkerAt(tsNs) {
    if (!this.channels || this.t0Ns === null) return;
    const at = Math.round(Number(tsNs - this.t0Ns) * this.rate / 1e9);
    if (at < this.head - this.cap || at > this.head + this.cap) return;
    this.markers = this.markers.filter(m => m >= this.head - this.cap);
    this.markers.push(at);
    this.repaint = true;
  }
  addMarker() {
    if (!this.channels) return;
    this.markers = this.markers.filter(m => m >= this.head - this.cap);
    this.markers.push(this.head);
    this.repaint = true;
  }

  /** Takes one time-series frame. Samples are placed by timestamp, so skipped packets leave gaps. */
  ingest(f) {
    this.framesIn++;
    if (this.paused) return;
    if (f.channels !== this.channels || f.rate !== this.rate) this.resetStream(f.channels, f.rate);
    const n = f.samples;
    if (this.t0Ns === null) this.t0Ns = f.tsNs;
    let s0 = Math.round(Number(f.tsNs - this.t0Ns) * this.rate / 1e9);
    if (s0 < this.head - this.cap || s0 > this.head + this.cap || s0 + n <= this.head - n) {
      // The clock jumped (a new pipeline, a restarted daemon): start over.
      this.resetStream(f.channels, f.rate);
      this.t0Ns = f.tsNs;
      s0 = 0;
    }
    const { cap, buf } = this;
    if (s0 > this.head) {                  // missing samples: a gap, drawn as a break
      for (let s = this.head; s < s0; s++) {
        const i = s % cap;
        for (let c = 0; c < this.channels; c++) buf[c * cap + i] = NaN;
      }
      this.head = s0;
    }
    const skip = this.head - s0;           // overlap with what we have: keep the first copy
    if (skip >= n) return;
    for (let c = 0; c < this.channels; c++) {
      const src = f.data.subarray(c * n + skip, c * n + n);
      let at = this.head % cap;
      const first = Math.min(src.length, cap - at);
      buf.set(src.subarray(0, first), c * cap + at);
      if (first < src.length) buf.set(src.subarray(first), c * cap);
    }
    this.head += n - skip;
  }

  visible() {
    const out = [];
    for (let c = 0; c < this.channels; c++) if (!this.hidden.has(c)) out.push(c);
    return out;
  }

  layout() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.area.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.area.clientHeight * dpr));
    for (const cv of [this.grid, this.canvas]) if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
    this.dpr = dpr;
    this.gx = Math.round(GUTTER_CSS * dpr);
    const W = Math.max(1, w - this.gx - Math.round(MARGIN_CSS * dpr));
    const H = Math.max(1, h - Math.round(AXIS_CSS * dpr));
    if (W !== this.W || H !== this.H) {
      this.W = W; this.H = H;
      this.img = this.ctx.createImageData(W, H);
      this.px = new Uint32Array(this.img.data.buffer);
      this.columnsDirty = true;
    }
    const vis = this.visible();
    this.vis = vis;
    this.laneH = H / Math.max(1, vis.length);
    this.colors = vis.map(c => rgbaU32(PALETTE[c % PALETTE.length]));
    this.drawGrid();
    this.drawLabels();
    this.layoutDirty = false;
    this.onLayout();
  }

  drawGrid() {
    const g = this.gctx, { W, H, gx, dpr, laneH } = this;
    g.clearRect(0, 0, this.grid.width, this.grid.height);
    this.vis.forEach((c, j) => {
      if (j % 2) { g.fillStyle = 'rgba(255,255,255,0.018)'; g.fillRect(gx, j * laneH, W, laneH); }
      g.fillStyle = 'rgba(255,255,255,0.06)';
      g.fillRect(gx, Math.round((j + 0.5) * laneH), W, 1);
    });
    // time grid, labelled back from the newest sample
    const step = this.windowS > 10 ? 2 : 1;
    g.font = `${11 * dpr}px system-ui, sans-serif`;
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let t = 0; t <= this.windowS + 1e-9; t += step) {
      const x = gx + W - 1 - Math.round((t / this.windowS) * (W - 1));
      g.fillStyle = 'rgba(255,255,255,0.07)';
      g.fillRect(x, 0, 1, H);
      g.fillStyle = '#6f7a88';
      g.fillText(t === 0 ? 'now' : `−${t} s`, Math.min(Math.max(x, gx + 14 * dpr), gx + W - 12 * dpr), H + 3 * dpr);
    }
  }

  /** The scale bar (one division), painted over the traces. */
  drawScale() {
    const g = this.ctx, { W, gx, dpr, laneH, H } = this;
    g.font = `${11 * dpr}px system-ui, sans-serif`;
    if (this.vis.length) {
      const bx = gx + W - 6 * dpr, top = 4 * dpr, len = Math.min(laneH, H - 8 * dpr);
      const uv = this.uvPerDiv * (len / laneH);
      g.fillStyle = '#a9b4c2';
      g.fillRect(bx, top, 2 * dpr, len);
      g.textAlign = 'right';
      g.textBaseline = 'top';
      g.fillStyle = 'rgba(15,19,24,0.75)';
      g.fillRect(bx - 52 * dpr, top - 1 * dpr, 48 * dpr, 15 * dpr);
      g.fillStyle = '#a9b4c2';
      g.fillText(uv >= 1000 ? `${+(uv / 1000).toFixed(2)} mV` : `${+uv.toFixed(1)} µV`, bx - 4 * dpr, top);
    }
  }

  drawLabels() {
    const el = this.labelsEl;
    const want = this.vis.length;
    while (el.children.length < want) {
      const d = document.createElement('div');
      d.className = 'trace-label';
      d.title = 'Click to hide this channel';
      d.addEventListener('click', () => this.toggle(Number(d.dataset.channel), false));
      el.appendChild(d);
    }
    while (el.children.length > want) el.lastChild.remove();
    const laneCss = this.laneH / this.dpr;
    const small = laneCss < 13;
    this.vis.forEach((c, j) => {
      const d = el.children[j];
      d.dataset.channel = c;
      d.textContent = this.label(c);
      d.classList.toggle('railed', !!this.railed?.has(this.label(c)));
      d.style.color = PALETTE[c % PALETTE.length];
      d.style.top = `${(j + 0.5) * laneCss}px`;
      d.style.fontSize = small ? `${Math.max(8, laneCss - 2)}px` : '';
      d.style.display = laneCss < 7 && j % 2 ? 'none' : '';
    });
    this.emptyEl.hidden = this.channels > 0;
    this.emptyEl.textContent = this.channels ? '' : 'waiting for data…';
    if (this.infoEl) {
      this.infoEl.textContent = this.channels
        ? `${this.channels} ch · ${this.rate} SPS${this.hidden.size ? ` · ${this.hidden.size} hidden` : ''}${this.paused ? ' · paused' : ''}`
        : '';
    }
  }

  /** Computes the min/max of every column that has become complete. */
  updateColumns() {
    const { W, rate, channels, cap, buf, head } = this;
    const spp = (this.windowS * rate) / W;   // samples per pixel column, may be < 1
    if (this.columnsDirty || spp !== this.spp || !this.cmin || this.cmin.length !== channels * W) {
      this.spp = spp;
      this.cmin = new Float32Array(channels * W);
      this.cmax = new Float32Array(channels * W);
      this.colNext = -Infinity;
      this.columnsDirty = false;
    }
    // Column k covers samples [floor(k·spp), end(k)); it is complete once end(k) <= head.
    const end = k => Math.max(Math.floor(k * spp) + 1, Math.floor((k + 1) * spp));
    let kEnd = Math.floor(head / spp);       // columns [.., kEnd) are complete
    while (kEnd > 0 && end(kEnd - 1) > head) kEnd--;
    while (end(kEnd) <= head) kEnd++;
    const oldest = Math.max(0, head - cap);
    const kOldest = Math.ceil(oldest / spp);
    let k = Math.max(this.colNext, kEnd - W, kOldest);
    const changed = k < kEnd;
    for (; k < kEnd; k++) {
      const s = Math.floor(k * spp);
      const e = end(k);
      const slot = k % W;
      for (let c = 0; c < channels; c++) {
        let mn = Infinity, mx = -Infinity;
        const base = c * cap;
        let i = s % cap;
        for (let t = s; t < e; t++) {
          const v = buf[base + i];
          if (v < mn) mn = v;
          if (v > mx) mx = v;   // NaN (a gap) passes neither test
          if (++i === cap) i = 0;
        }
        this.cmin[c * W + slot] = mn;
        this.cmax[c * W + slot] = mx;
      }
    }
    this.colNext = kEnd;
    this.kEnd = kEnd;
    this.kFirst = Math.max(kOldest, kEnd - W);
    return changed;
  }

  /** Paints the traces if anything changed; returns true when it painted. */
  draw() {
    if (this.layoutDirty) { this.layout(); this.repaint = true; }
    if (!this.channels) {
      if (this.repaint) this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      this.repaint = false;
      return false;
    }
    const changed = this.updateColumns();
    if (!changed && !this.repaint) return false;
    this.repaint = false;
    const { W, H, px, vis, laneH, cmin, cmax, kEnd, kFirst } = this;
    px.fill(0);
    const scale = laneH / this.uvPerDiv;   // px per µV
    const k0 = kEnd - W;                     // column at x = 0
    // Gaps up to JOIN_GAP_S (skipped packets, e.g. a websocket_sink's max_rate_hz) are bridged by
    // a straight line, as any decimating display does; longer ones (a stall, a restart) stay open.
    // Skipped frames are counted in the status bar, so the bridge never hides a loss.
    const maxGap = Math.ceil((JOIN_GAP_S * this.rate) / this.spp);
    for (let j = 0; j < vis.length; j++) {
      const c = vis[j];
      const color = this.colors[j];
      const yc = (j + 0.5) * laneH;
      const row = c * W;
      let prevTop = 0, prevBot = 0, prevX = -Infinity;
      for (let x = Math.max(0, kFirst - k0); x < W; x++) {
        const slot = (k0 + x) % W;
        const mn = cmin[row + slot], mx = cmax[row + slot];
        if (!(mn <= mx)) continue;
        let top = Math.round(yc - mx * scale), bot = Math.round(yc - mn * scale);
        const t0 = top, b0 = bot;
        const gap = x - prevX - 1;
        if (gap === 0) {                     // join to the previous column
          if (top > prevBot) top = prevBot;
          if (bot < prevTop) bot = prevTop;
        } else if (gap <= maxGap) {          // bridge the skipped columns
          const ya = (prevTop + prevBot) / 2, yb = (t0 + b0) / 2;
          let yPrev = ya;
          for (let m = 1; m <= gap; m++) {
            const y = ya + ((yb - ya) * m) / (gap + 1);
            fillSpan(this.px, W, H, prevX + m, Math.round(Math.min(y, yPrev)), Math.round(Math.max(y, yPrev)), color);
            yPrev = y;
          }
          if (top > yPrev) top = Math.round(yPrev);
          if (bot < yPrev) bot = Math.round(yPrev);
        }
        prevTop = t0; prevBot = b0; prevX = x;
        fillSpan(px, W, H, x, top, bot, color);
      }
    }
    const mark = rgbaU32('#e0b45c', 200);
    for (const m of this.markers) {
      const x = Math.floor(m / this.spp) - k0;
      if (x < 0 || x >= W) continue;
      for (let y = 0; y < H; y++) if (y % 6 < 3) px[y * W + x] = mark;
    }
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.ctx.putImageData(this.img, this.gx, 0);
    this.drawScale();
    return true;
  }
}
