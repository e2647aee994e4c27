// Spectrum (log power against frequency) and band-power bars, from the `spectrum` and `bands` topics.
import { PALETTE } from './traces.js';

const SMOOTH = 0.35;   // weight of a new spectrum in the running display average (calmer, still live)

export class SpectrumView {
  constructor(canvas, info) {
    this.canvas = canvas;
    this.info = info;
    this.ctx = canvas.getContext('2d');
    this.psd = null;          // smoothed, channels × bins
    this.channels = 0;
    this.bins = 0;
    this.df = 1;
    this.visible = () => true;
    this.fMaxWanted = 60;
    this.yRange = null;       // [lo, hi] in log10 units, eased toward the data
    this.dirty = false;
    this.highlight = null;    // [lo, hi] Hz band to shade
  }

  ingest(f) {
    if (f.channels !== this.channels || f.samples !== this.bins || f.rate !== this.df || !this.psd) {
      this.channels = f.channels; this.bins = f.samples; this.df = f.rate;
      this.psd = Float32Array.from(f.data);
    } else {
      for (let i = 0; i < f.data.length; i++) this.psd[i] += SMOOTH * (f.data[i] - this.psd[i]);
    }
    this.dirty = true;
  }

  draw() {
    const cv = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = Math.round(cv.clientWidth * dpr), h = Math.round(cv.clientHeight * dpr);
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; this.dirty = true; }
    if (!this.dirty) return;
    this.dirty = false;
    const g = this.ctx;
    g.clearRect(0, 0, w, h);
    const L = 42 * dpr, R = 8 * dpr, T = 8 * dpr, B = 20 * dpr;
    const pw = w - L - R, ph = h - T - B;
    g.font = `${10.5 * dpr}px system-ui, sans-serif`;
    if (!this.psd) {
      g.fillStyle = '#7d8897'; g.textAlign = 'center'; g.fillText('waiting for spectra…', w / 2, h / 2);
      return;
    }
    const { channels, bins, df, psd } = this;
    const fMax = Math.min((bins - 1) * df, this.fMaxWanted);
    const nb = Math.min(bins, Math.floor(fMax / df) + 1);
    const vis = [];
    for (let c = 0; c < channels; c++) if (this.visible(c)) vis.push(c);
    // mean over the shown channels, and the y range
    const mean = new Float32Array(nb);
    let lo = Infinity, hi = -Infinity;
    for (const c of vis) for (let b = 1; b < nb; b++) {
      const v = psd[c * bins + b];
      mean[b] += v / vis.length;
      if (v > 0) { const l = Math.log10(v); if (l < lo) lo = l; if (l > hi) hi = l; }
    }
    if (!isFinite(lo)) { lo = -2; hi = 2; }
    const target = [Math.floor(lo), Math.ceil(hi + 1e-9)];
    if (target[1] - target[0] < 2) target[1] = target[0] + 2;
    if (!this.yRange) this.yRange = target;
    // ease the range so the plot does not jump; snap once it is close
    this.yRange = this.yRange.map((v, i) => (Math.abs(target[i] - v) < 0.02 ? target[i] : v + 0.25 * (target[i] - v)));
    if (this.yRange.some((v, i) => v !== target[i])) this.dirty = true;
    const [y0, y1] = this.yRange;
    const X = f => L + (f / fMax) * pw;
    const Y = v => T + ph - ((Math.log10(Math.max(v, 1e-30)) - y0) / (y1 - y0)) * ph;

    if (this.highlight) {
      g.fillStyle = 'rgba(111,179,210,0.07)';
      g.fillRect(X(this.highlight[0]), T, X(Math.min(this.highlight[1], fMax)) - X(this.highlight[0]), ph);
    }
    g.strokeStyle = 'rgba(255,255,255,0.06)'; g.lineWidth = 1;
    g.fillStyle = '#6f7a88';
    g.textAlign = 'right'; g.textBaseline = 'middle';
    for (let d = Math.ceil(y0); d <= y1; d++) {
      const y = Math.round(T + ph - ((d - y0) / (y1 - y0)) * ph) + 0.5;
      g.beginPath(); g.moveTo(L, y); g.lineTo(L + pw, y); g.stroke();
      g.fillText(`1e${d}`, L - 4 * dpr, y);
    }
    g.textAlign = 'center'; g.textBaseline = 'top';
    const fStep = fMax > 80 ? 20 : 10;
    for (let f = 0; f <= fMax + 1e-9; f += fStep) {
      const x = Math.round(X(f)) + 0.5;
      g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke();
      g.fillText(`${f}`, x, T + ph + 4 * dpr);
    }

    g.save();
    g.beginPath(); g.rect(L, T, pw, ph); g.clip();
    g.lineWidth = 1 * dpr;
    g.globalAlpha = vis.length > 1 ? 0.35 : 1;
    for (const c of vis) {
      g.strokeStyle = PALETTE[c % PALETTE.length];
      g.beginPath();
      for (let b = 1; b < nb; b++) {
        const x = X(b * df), y = Y(psd[c * bins + b]);
        if (b === 1) g.moveTo(x, y); else g.lineTo(x, y);
      }
      g.stroke();
    }
    if (vis.length > 1) {
      g.globalAlpha = 1;
      g.strokeStyle = '#e8eef5';
      g.lineWidth = 1.6 * dpr;
      g.beginPath();
      for (let b = 1; b < nb; b++) {
        const x = X(b * df), y = Y(mean[b]);
        if (b === 1) g.moveTo(x, y); else g.lineTo(x, y);
      }
      g.stroke();
    }
    g.restore();
    if (this.info) this.info.textContent = `µV²/Hz · ${df.toFixed(2)} Hz bins${vis.length > 1 ? ' · white = mean' : ''}`;
  }
}

const DEFAULT_BANDS = [
  { name: 'delta', low_hz: 1, high_hz: 4 }, { name: 'theta', low_hz: 4, high_hz: 8 },
  { name: 'alpha', low_hz: 8, high_hz: 13 }, { name: 'beta', low_hz: 13, high_hz: 30 },
  { name: 'gamma', low_hz: 30, high_hz: 45 },
];

export class BandsView {
  constructor(el) {
    this.el = el;
    this.bands = DEFAULT_BANDS;
    this.visible = () => true;
    this.last = null;
    this.build();
  }

  setBands(bands) {
    if (!Array.isArray(bands) || !bands.length) bands = DEFAULT_BANDS;
    bands = bands.map(b => (typeof b === 'string' ? { name: b } : Array.isArray(b) ? { name: b[0], low_hz: b[1], high_hz: b[2] } : b));
    if (JSON.stringify(bands) === JSON.stringify(this.bands)) return;
    this.bands = bands;
    this.build();
  }

  build() {
    this.el.style.gridTemplateColumns = `repeat(${Math.max(1, this.bands.length)}, 1fr)`;
    this.el.replaceChildren(...this.bands.map(b => {
      const d = document.createElement('div');
      d.className = 'band';
      d.title = b.low_hz !== undefined ? `${b.name}: ${b.low_hz}–${b.high_hz} Hz` : b.name;
      d.innerHTML = '<span class="val">—</span><div class="bar-wrap"><div class="bar"></div></div><span class="name"></span>';
      d.querySelector('.name').textContent = b.name;
      return d;
    }));
  }

  ingest(f) {
    const nb = f.samples;
    const rel = new Float64Array(nb);
    let n = 0;
    for (let c = 0; c < f.channels; c++) {
      if (!this.visible(c)) continue;
      let sum = 0;
      for (let b = 0; b < nb; b++) sum += Math.max(0, f.data[c * nb + b]);
      if (!(sum > 0)) continue;
      for (let b = 0; b < nb; b++) rel[b] += Math.max(0, f.data[c * nb + b]) / sum;
      n++;
    }
    if (!n) return;
    const pct = Array.from(rel, v => (100 * v) / n);
    const top = Math.max(...pct, 1e-9);
    const items = this.el.children;
    for (let b = 0; b < Math.min(nb, items.length); b++) {
      items[b].querySelector('.bar').style.transform = `scaleY(${(pct[b] / top).toFixed(4)})`;
      items[b].querySelector('.val').textContent = `${pct[b].toFixed(0)} %`;
    }
    this.last = pct;
  }
}
