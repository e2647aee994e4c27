// Hardware trigger markers on the traces.
//
// A trigger (a TTL pulse on an ADS1299 GPIO pin or a Pi GPIO line, the `triggers` and
// `trigger_lines` of a source) reaches the page as a `marker` event on /ws/control with
// `origin: "trigger"` and the exact timestamp of the sample it fell on. The traces place samples by
// timestamp, so a trigger is drawn on its sample's column: a solid line in its own colour with its
// label at the top, apart from typed markers (the Marker button: dashed, amber, at the newest
// sample when pressed).

const COLOR = '#ff6f8f';
const KEEP = 512;              // newest triggers kept; older ones have scrolled out of any window

function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return ((alpha << 24) | ((n & 0xff) << 16) | (n & 0xff00) | (n >> 16)) >>> 0;
}

export class TriggerMarks {
  constructor() {
    this.marks = [];           // { tsNs: BigInt, label }
    this.seen = 0;             // triggers received since the page loaded
    this.drawn = [];           // { label, sample, x } of the last paint (for tests and tooltips)
    this.color = rgba(COLOR, 230);
  }

  /** Takes a /ws/control message; returns true when it was a trigger. */
  take(event) {
    const m = event?.event === 'marker' ? event.marker : null;
    if (!m || m.origin !== 'trigger' || typeof m.timestamp_ns !== 'number') return false;
    this.marks.push({ tsNs: BigInt(Math.round(m.timestamp_ns)), label: String(m.label ?? '') });
    if (this.marks.length > KEEP) this.marks.splice(0, this.marks.length - KEEP);
    this.seen++;
    return true;
  }

  /** The absolute sample index of a trigger in the view's stream (as `TraceView.ingest` places samples). */
  sample(view, mark) {
    return Math.round(Number(mark.tsNs - view.t0Ns) * view.rate / 1e9);
  }

  /** Paints the visible triggers into the view's pixels; `k0` is the column at x = 0. */
  paint(view, k0) {
    this.drawn = [];
    if (view.t0Ns === null || !view.rate) return;
    const { W, H, px } = view;
    for (const mark of this.marks) {
      const s = this.sample(view, mark);
      if (s < 0 || s >= view.head) continue;   // not received yet, or before this stream
      const x = Math.floor(s / view.spp) - k0;
      if (x < 0 || x >= W) continue;
      for (let y = 0; y < H; y++) px[y * W + x] = this.color;
      this.drawn.push({ label: mark.label, sample: s, x });
    }
  }

  /** Writes the labels of the triggers painted last, at the top of their lines. */
  annotate(view) {
    if (!this.drawn.length) return;
    const g = view.ctx, dpr = view.dpr;
    g.font = `${10 * dpr}px system-ui, sans-serif`;
    g.textAlign = 'left';
    g.textBaseline = 'top';
    for (const d of this.drawn) {
      const x = view.gx + d.x + 2 * dpr;
      const w = g.measureText(d.label).width;
      g.fillStyle = 'rgba(15,19,24,0.75)';
      g.fillRect(x - 1 * dpr, 2 * dpr, w + 2 * dpr, 12 * dpr);
      g.fillStyle = COLOR;
      g.fillText(d.label, x, 3 * dpr);
    }
  }
}
