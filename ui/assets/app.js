// eegd browser UI: wires the views to the daemon's API.
//
// Read from `GET /api/pipeline`: `state`, `error`, and per stage `name`, `type`, `params`,
// `inputs` (names or indices; else derived from a `config.stages` list), `locked`, `locked_by`,
// `packets_in`/`packets_out`, `drops`, `errors`, `latency_us` (sinks), `output.{rate, channels,
// labels, bands}`; `recording` (`null`, or `{session, started_at | started_ns, bytes}`). All but
// `state` and `stages` are optional: the page shows "—" for what it is not given. CPU comes from
// `cpu_percent` or, failing that, from `GET /metrics`.
import { api, wsUrl, backoff } from './api.js';
import { parseFrame, KIND_TIMESERIES, KIND_SPECTRUM, KIND_BANDS } from './frame.js';
import { TraceView } from './traces.js';
import { TriggerMarks } from './triggers.js';
import { SpectrumView, BandsView } from './spectrum.js';
import { PipelineGraph, ParamEditor, edgesOf } from './pipeline.js';
import { StageEdits } from './edit.js';
import { RecordingPanel } from './recording.js';
import { QualityPanel } from './quality.js';

const $ = id => document.getElementById(id);
const POLL_MS = 1000;

const traces = new TraceView({
  area: $('trace-area'), grid: $('trace-grid'), canvas: $('trace-canvas'),
  labels: $('trace-labels'), empty: $('trace-empty'), info: $('trace-info'),
});
const visible = c => !traces.hidden.has(c);
const spectrum = new SpectrumView($('spectrum-canvas'), $('spectrum-info'));
spectrum.visible = visible;
const bands = new BandsView($('bands'));
bands.visible = visible;
const editor = new ParamEditor($('editor'));
const stageEdits = new StageEdits($('stage-edits'), { onDone: () => poll.now(), onError: text => notify(text) });
const graph = new PipelineGraph($('graph'), name => { editor.show(name); stageEdits.select(name); });
editor.onApplied = () => poll.now();
// A marker the page sends comes back as a control event, like every other source's.
const recording = new RecordingPanel({ onMarker: () => {}, onChange: () => poll.now() });
const quality = new QualityPanel({
  table: $('quality-table'), info: $('quality-info'), impedanceBtn: $('impedance-btn'),
  selftestBtn: $('selftest-btn'), result: $('quality-result'), onRailed: railed => traces.setRailed(railed),
});

// ---- connection: poll the pipeline, follow /ws/control, reconnect with backoff ---------------------

const conn = {
  online: null,
  set(online, why = '') {
    if (online === this.online) return;
    const was = this.online;
    this.online = online;
    const pill = $('conn');
    pill.dataset.state = online ? 'live' : 'disconnected';
    pill.textContent = online ? 'live' : 'disconnected — reconnecting…';
    pill.title = why;
    document.body.classList.toggle('offline', !online);
    if (online && was === false) reloadStatic();
    if (online) for (const s of sockets) s.kick();
  },
};

const poll = {
  attempt: 0,
  timer: 0,
  busy: false,
  again: false,
  // One request at a time and one timer: a burst of control events costs one extra poll, and the
  // loop never forks.
  async run() {
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    clearTimeout(this.timer);
    let delay = POLL_MS, p = null;
    try {
      p = await api.pipeline();
      this.attempt = 0;
      conn.set(true);
    } catch (e) {
      if (e.status) conn.set(true);          // the daemon answered, with an error: still connected
      else { conn.set(false, e.message); delay = backoff(this.attempt++); }
    }
    try {
      if (p) applyPipeline(p);
    } catch (e) {
      console.error(e);                      // a UI fault, not a disconnect: polling goes on
    }
    this.busy = false;
    if (this.again) { this.again = false; delay = 0; }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delay);
  },
  now() { this.run(); },
};

/** A WebSocket that reconnects with backoff, and at once when the daemon is seen again. */
class Socket {
  constructor(path, { binary = false, onMessage, onOpen, onClose }) {
    Object.assign(this, { path, binary, onMessage, onOpen, onClose });
    this.attempt = 0;
    this.ws = null;
    this.timer = 0;
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    const ws = new WebSocket(wsUrl(this.path));
    if (this.binary) ws.binaryType = 'arraybuffer';
    ws.onopen = () => { this.attempt = 0; this.onOpen?.(); };
    ws.onmessage = ev => this.onMessage(ev.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onClose?.();
      this.timer = setTimeout(() => this.connect(), backoff(this.attempt++));
    };
    this.ws = ws;
  }

  /** Reconnects now if closed (the daemon is back). */
  kick() { if (!this.ws) { this.attempt = 0; this.connect(); } }
}

// Hardware triggers, drawn on the traces at their sample (triggers.js).
const triggers = new TriggerMarks();
traces.overlays.push(triggers);
window.eegdTriggers = triggers;
function onTrigger(text) {
  let e;
  try { e = JSON.parse(text); } catch { return false; }
  if (!triggers.take(e)) return false;
  traces.repaint = true;
  return true;
}

const counters = { frames: 0, badFrames: 0, lastSeq: new Map(), lost: 0 };

function onData(topic) {
  return data => {
    let f;
    try {
      f = parseFrame(data);
    } catch (e) {
      counters.badFrames++;
      return;
    }
    counters.frames++;
    const last = counters.lastSeq.get(topic);
    if (last !== undefined && f.seq > last + 1) counters.lost += f.seq - last - 1;
    counters.lastSeq.set(topic, f.seq);
    if (f.kind === KIND_TIMESERIES) traces.ingest(f);
    else if (f.kind === KIND_SPECTRUM) spectrum.ingest(f);
    else if (f.kind === KIND_BANDS) bands.ingest(f);
  };
}

// Markers from any source (this page, the API, an LSL inlet, a replayed file) arrive as control
// events; one event may come twice (the API's reply and the daemon's marker tap), so each
// (time, label) is drawn once.
const markersSeen = new Set();
let markerCount = 0;
function onControl(text) {
  let msg;
  try { msg = JSON.parse(text); } catch { return; }
  const m = msg?.event === 'marker' ? msg.marker : null;
  if (!m || typeof m.timestamp_ns !== 'number') return;
  const key = `${m.timestamp_ns}|${m.label}`;
  if (markersSeen.has(key)) return;
  markersSeen.add(key);
  if (markersSeen.size > 1000) markersSeen.delete(markersSeen.values().next().value);
  traces.addMarkerAt(BigInt(Math.round(m.timestamp_ns)));
  $('st-markers').textContent = String(++markerCount);
}

const sockets = [
  new Socket('/ws/control', {
    // A hardware trigger goes on the traces as one (triggers.js); any other event is a marker or a
    // state change: show it now rather than at the next poll.
    onMessage: text => { if (!onTrigger(text)) { onControl(text); poll.now(); } },
    onOpen: () => poll.now(),
    onClose: () => poll.now(),
  }),
  ...['eeg', 'spectrum', 'bands'].map(t => new Socket(`/ws/data?topic=${t}`, { binary: true, onMessage: onData(t) })),
];

// ---- pipeline state ------------------------------------------------------------------------------

let pipeline = null;

/** Labels of the stream a topic carries: the first stage upstream of its sink that names them. */
function labelsFor(p, topic) {
  const stages = p.stages ?? [];
  const byName = new Map(stages.map(s => [s.name, s]));
  const inputs = edgesOf(p);
  const sink = stages.find(s => s.type === 'websocket_sink' && (s.params?.topic ?? 'eeg') === topic);
  let todo = sink ? [...(inputs.get(sink.name) ?? [])] : [];
  const seen = new Set();
  while (todo.length) {
    const n = todo.shift();
    if (seen.has(n)) continue;
    seen.add(n);
    const s = byName.get(n);
    const labels = s?.output?.labels ?? s?.labels;
    if (Array.isArray(labels) && labels.length) return labels;
    todo.push(...(inputs.get(n) ?? []));
  }
  for (const s of stages) if (Array.isArray(s.output?.labels)) return s.output.labels;
  return Array.isArray(p.labels) ? p.labels : [];
}

// Latency and CPU from `GET /metrics` when `/api/pipeline` does not carry them: p99 of the newest
// scrape interval from any `eegd_*latency*_bucket` histogram (seconds), CPU from a `*cpu_seconds_total`
// counter or a `*cpu_percent` gauge.
const scraped = { at: 0, buckets: null, cpu: null, latencyP99Us: undefined, cpuPercent: undefined };
async function scrapeMetrics() {
  const now = performance.now();
  if (now - scraped.at < 2000) return;
  scraped.at = now;
  let text;
  try {
    const res = await fetch('/metrics', { cache: 'no-store' });
    if (!res.ok) return;
    text = await res.text();
  } catch { return; }
  const buckets = new Map();
  let cpuSeconds, cpuPercent;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    let m = line.match(/^eegd_\w*latency\w*_bucket\{.*le="([^"]+)".*\}\s+(\S+)/);
    if (m) { const le = m[1] === '+Inf' ? Infinity : Number(m[1]); buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2])); continue; }
    m = line.match(/^\w*cpu_seconds_total(?:\{[^}]*\})?\s+(\S+)/);
    if (m) { cpuSeconds = Number(m[1]); continue; }
    m = line.match(/^eegd_\w*cpu_percent(?:\{[^}]*\})?\s+(\S+)/);
    if (m) cpuPercent = Number(m[1]);
  }
  if (buckets.size) {
    const les = [...buckets.keys()].sort((a, b) => a - b);
    const prev = scraped.buckets;
    const cum = les.map(le => buckets.get(le) - (prev?.get(le) ?? 0));
    const total = cum[cum.length - 1];
    const use = total > 0 ? cum : les.map(le => buckets.get(le));
    const n = use[use.length - 1];
    if (n > 0) {
      const i = use.findIndex(c => c >= 0.99 * n);
      scraped.latencyP99Us = isFinite(les[i]) ? les[i] * 1e6 : undefined;
    }
    scraped.buckets = buckets;
  }
  if (cpuPercent !== undefined) scraped.cpuPercent = cpuPercent;
  else if (cpuSeconds !== undefined) {
    if (scraped.cpu) scraped.cpuPercent = (100 * (cpuSeconds - scraped.cpu.s)) / ((now - scraped.cpu.t) / 1000);
    scraped.cpu = { s: cpuSeconds, t: now };
  }
}

let runningPreset = null;

/** Shows the running pipeline's preset in the preset list (once per change, so a choice stays). */
function followPreset(p) {
  const name = typeof p.config?.name === 'string' ? p.config.name.match(/([^/]+?)(\.ya?ml)?$/)?.[1] : null;
  if (!name || name === runningPreset) return;
  const sel = $('preset');
  if ([...sel.options].some(o => o.value === name)) { sel.value = name; runningPreset = name; }
}

function applyPipeline(p) {
  pipeline = p;
  followPreset(p);
  const state = typeof p.state === 'string' ? p.state : p.state?.state ?? 'unknown';
  const pill = $('pipeline-state');
  pill.dataset.state = state;
  pill.textContent = state;
  const err = p.error ?? (typeof p.state === 'object' ? p.state?.error : null);
  pill.title = err ? String(err) : `pipeline ${state}`;
  const banner = $('banner');
  banner.hidden = !(state === 'failed' && err);
  banner.textContent = err ? `Pipeline failed: ${err}` : '';
  $('pipeline-start').disabled = false;
  $('pipeline-stop').disabled = state !== 'running';
  // Stopped or failed: the traces, spectrum and bands keep their last data, marked as stale.
  const stale = state !== 'running';
  document.body.classList.toggle('stopped', stale);
  $('stale-note').hidden = !stale;
  if (stale) $('stale-note').textContent = `pipeline ${state} — last data shown`;

  traces.setLabels(labelsFor(p, 'eeg'));
  const bp = (p.stages ?? []).find(s => s.type === 'band_power');
  if (bp) bands.setBands(bp.params?.bands ?? bp.output?.bands);
  graph.update(p);
  if (!graph.selected) {
    const first = (p.stages ?? []).find(s => s.type === 'bandpass') ?? (p.stages ?? [])[0];
    if (first) graph.select(first.name);
  }
  editor.update(p);
  stageEdits.update(p);
  recording.update(p);

  const emu = (p.stages ?? []).find(s => s.output?.rate || s.params?.rate);
  const rate = traces.rate || emu?.output?.rate || emu?.params?.rate;
  $('st-rate').textContent = rate ? `${rate} SPS` : '—';
  $('st-channels').textContent = traces.channels || emu?.output?.channels || emu?.params?.channels || '—';
  // p99 source → sink latency: the pipeline's own figure, else the worst sink's, else /metrics
  const sinks = (p.stages ?? []).filter(s => Number.isFinite(s.latency_us?.p99));
  const worst = sinks.reduce((a, s) => (!a || s.latency_us.p99 > a.latency_us.p99 ? s : a), null);
  const p99 = p.latency_us?.p99 ?? worst?.latency_us.p99 ?? scraped.latencyP99Us;
  $('st-latency').title = sinks.length
    ? `p99 from source to each sink:\n${sinks.map(s => `${s.name}: ${s.latency_us.p99} µs`).join('\n')}`
    : 'p99 from source to sink';
  $('st-latency').textContent = p99 === undefined ? '—' : p99 >= 1000 ? `${(p99 / 1000).toFixed(1)} ms` : `${Math.round(p99)} µs`;
  const drops = (p.stages ?? []).reduce((a, s) => a + Number(s.drops ?? 0), 0);
  $('st-drops').textContent = String(drops);
  const cpu = p.cpu_percent ?? p.metrics?.cpu_percent ?? scraped.cpuPercent;
  if ((p.latency_us === undefined && !worst) || p.cpu_percent === undefined) scrapeMetrics();
  $('st-cpu').textContent = cpu === undefined ? '—' : `${Number(cpu).toFixed(1)} %`;
}

async function reloadStatic() {
  try {
    const catalogue = await api.stages();
    editor.setCatalogue(catalogue);
    stageEdits.setCatalogue(catalogue);
  } catch { /* shown as an empty editor; retried on reconnect */ }
  try {
    let presets = await api.presets();
    if (!Array.isArray(presets)) presets = presets?.presets ?? [];
    const sel = $('preset');
    const keep = sel.value;
    sel.replaceChildren(...presets.map(x => {
      const o = typeof x === 'string' ? new Option(x, x) : new Option(x.name, x.name);
      if (x.description) o.title = x.description;
      return o;
    }));
    if (keep && [...sel.options].some(o => o.value === keep)) sel.value = keep;
    else if ([...sel.options].some(o => o.value === 'default')) sel.value = 'default';
    runningPreset = null;
    if (pipeline) followPreset(pipeline);
  } catch { /* no presets: the select stays empty */ }
  recording.refreshSessions();
}

// ---- controls ------------------------------------------------------------------------------------

/** Shows the error of something the user did until it is dismissed or an action succeeds
 * (the pipeline-state banner, which every poll rewrites, is a different place). */
function notify(text) {
  $('notice').hidden = !text;
  $('notice-text').textContent = text ?? '';
}
$('notice-close').addEventListener('click', () => notify(null));

async function run(action, what) {
  try {
    await action();
    notify(null);
  } catch (e) {
    notify(`${what}: ${e.message}`);
  }
  poll.now();
}

$('pipeline-start').addEventListener('click', () => {
  const preset = $('preset').value;
  run(() => api.startPreset(preset), `Starting ${preset || 'the pipeline'}`);
});
$('pipeline-stop').addEventListener('click', () => {
  if (recording.active && !confirm('A recording is running. Stop the pipeline and end the recording?')) return;
  run(() => api.stop(), 'Stopping the pipeline');
});
$('pipeline-file').addEventListener('change', async e => {
  const file = e.target.files[0];
  if (!file) return;
  let text;
  try {
    text = await file.text();
  } catch (err) {
    notify(`Reading ${file.name}: ${err.message}`);
    e.target.value = '';
    return;
  }
  const type = /\.json$/i.test(file.name) ? 'application/json' : 'application/yaml';
  run(() => api.start(text, type), `Starting ${file.name}`);
  e.target.value = '';
});

// The view settings outlive a reload: a session can run for hours.
const saved = (() => { try { return JSON.parse(localStorage.getItem('eegd.view') ?? '{}'); } catch { return {}; } })();
function saveView() {
  try {
    localStorage.setItem('eegd.view', JSON.stringify({ scale: traces.uvPerDiv, window: traces.windowS, hidden: [...traces.hidden] }));
  } catch { /* storage unavailable: settings last for this page only */ }
}
for (const [id, key] of [['scale', 'scale'], ['window', 'window']]) {
  if (saved[key] !== undefined && [...$(id).options].some(o => Number(o.value) === saved[key])) $(id).value = String(saved[key]);
}
traces.setScale(Number($('scale').value));
traces.setWindow(Number($('window').value));
for (const c of saved.hidden ?? []) if (Number.isInteger(c)) traces.hidden.add(c);
$('scale').addEventListener('change', e => { traces.setScale(Number(e.target.value)); saveView(); });
$('window').addEventListener('change', e => { traces.setWindow(Number(e.target.value)); saveView(); });
const pauseBtn = $('pause');
function setPaused(p) {
  traces.setPaused(p);
  pauseBtn.setAttribute('aria-pressed', String(p));
  pauseBtn.textContent = p ? 'Resume' : 'Pause';
}
pauseBtn.addEventListener('click', () => setPaused(!traces.paused));

const menu = $('channels-menu');
const menuBtn = $('channels-btn');
function buildChannelMenu() {
  const actions = document.createElement('div');
  actions.className = 'menu-actions';
  const all = Object.assign(document.createElement('button'), { className: 'btn small', textContent: 'All' });
  const none = Object.assign(document.createElement('button'), { className: 'btn small', textContent: 'None' });
  all.onclick = () => { traces.hidden.clear(); traces.layoutDirty = true; buildChannelMenu(); };
  none.onclick = () => { for (let c = 0; c < traces.channels; c++) traces.hidden.add(c); traces.layoutDirty = true; buildChannelMenu(); };
  actions.append(all, none);
  const boxes = [];
  for (let c = 0; c < traces.channels; c++) {
    const l = document.createElement('label');
    const cb = document.createElement('input');
    cb.type = 'checkbox';
    cb.checked = !traces.hidden.has(c);
    cb.dataset.channel = c;
    cb.onchange = () => traces.toggle(c, cb.checked);
    l.append(cb, ` ${traces.label(c)}`);
    boxes.push(l);
  }
  menu.replaceChildren(actions, ...boxes);
}
menuBtn.addEventListener('click', () => {
  const open = menu.hidden;
  if (open) buildChannelMenu();
  menu.hidden = !open;
  menuBtn.setAttribute('aria-expanded', String(open));
});
document.addEventListener('click', e => {
  if (!menu.hidden && !menu.contains(e.target) && e.target !== menuBtn) {
    menu.hidden = true;
    menuBtn.setAttribute('aria-expanded', 'false');
  }
});
traces.onLayout = () => { if (!menu.hidden) buildChannelMenu(); spectrum.dirty = true; saveView(); };

document.addEventListener('keydown', e => {
  if (e.target.closest?.('input, select, textarea, button') || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === ' ') { e.preventDefault(); setPaused(!traces.paused); }
  if (e.key === 'm' || e.key === 'M') recording.marker();
});

// ---- rendering loop and status ---------------------------------------------------------------------

// Frame times and paint costs, for the status bar and the benchmark in interop/test_ui.py.
const perf = { frames: 0, paints: 0, paintMs: [], fps: 0 };
window.eegdPerf = perf;

let fpsFrames = 0, fpsSince = performance.now(), framesSince = 0;
function frame(now) {
  const t = performance.now();
  if (traces.draw()) {
    perf.paints++;
    perf.paintMs.push(performance.now() - t);
    if (perf.paintMs.length > 2000) perf.paintMs.splice(0, 1000);
  }
  spectrum.draw();
  perf.frames++;
  fpsFrames++;
  if (now - fpsSince >= 1000) {
    perf.fps = (fpsFrames * 1000) / (now - fpsSince);
    const fps = (counters.frames - framesSince) * 1000 / (now - fpsSince);
    $('st-fps').textContent = `${perf.fps.toFixed(0)} fps`;
    $('st-frames').textContent = `${fps.toFixed(0)}/s${counters.lost ? ` · ${counters.lost} skipped` : ''}`;
    $('st-frames').classList.toggle('warn', counters.lost > 0);
    fpsFrames = 0; fpsSince = now; framesSince = counters.frames;
    if (traces.rate) $('st-rate').textContent = `${traces.rate} SPS`;
    if (traces.channels) $('st-channels').textContent = String(traces.channels);
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

reloadStatic();
poll.run();
