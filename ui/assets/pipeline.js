// The pipeline as a graph of stages with live counters, and a parameter editor built from each
// stage type's JSON schema (`GET /api/stages`).
import { api } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 118, NODE_H = 60, COL_GAP = 22, ROW_GAP = 12, PAD = 6;

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function compact(n) {
  if (!isFinite(n)) return '—';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return `${Math.round(n)}`;
}

/** The stages' input names, from the live snapshot when it has them, else from the config. */
export function edgesOf(pipeline) {
  const stages = pipeline.stages ?? [];
  const names = stages.map(s => s.name);
  const fromConfig = new Map();
  const cfg = pipeline.config?.stages;
  if (Array.isArray(cfg)) {
    let prev = null;
    for (const entry of cfg) {
      const [type, params] = Object.entries(entry ?? {})[0] ?? [];
      if (!type) continue;
      const name = params?.name ?? type;
      fromConfig.set(name, Array.isArray(params?.inputs) ? params.inputs : prev ? [prev] : []);
      prev = name;
    }
  }
  const inputs = new Map();
  stages.forEach((s, i) => {
    let ins = s.inputs ?? fromConfig.get(s.name);
    if (!Array.isArray(ins)) ins = i > 0 && s.role !== 'source' ? [names[i - 1]] : [];
    inputs.set(s.name, ins.map(x => (typeof x === 'number' ? names[x] : x)).filter(x => names.includes(x)));
  });
  return inputs;
}

export class PipelineGraph {
  constructor(container, onSelect) {
    this.container = container;
    this.onSelect = onSelect;
    this.selected = null;
    this.prev = new Map();   // name → {count, t}
    this.shapeKey = '';
    this.nodes = new Map();
  }

  select(name) {
    this.selected = name;
    for (const [n, g] of this.nodes) g.classList.toggle('selected', n === name);
    this.onSelect(name);
  }

  update(pipeline) {
    const stages = pipeline.stages ?? [];
    const inputs = edgesOf(pipeline);
    const key = JSON.stringify(stages.map(s => [s.name, s.type, inputs.get(s.name)]));
    if (key !== this.shapeKey) { this.build(stages, inputs); this.shapeKey = key; }
    const now = performance.now();
    for (const s of stages) {
      const g = this.nodes.get(s.name);
      if (!g) continue;
      const count = Number(s.packets_out || s.packets_in || s.packets || 0);
      const p = this.prev.get(s.name);
      let rate = p && now > p.t ? ((count - p.count) * 1000) / (now - p.t) : NaN;
      if (rate < 0) rate = NaN;
      this.prev.set(s.name, { count, t: now });
      const drops = Number(s.drops ?? 0), errors = Number(s.errors ?? 0);
      g.querySelector('.n-rate').textContent = isFinite(rate) ? `${compact(rate)} pkt/s` : `${compact(count)} pkt`;
      const bad = g.querySelector('.n-drops');
      bad.textContent = errors ? `${compact(errors)} err` : drops ? `${compact(drops)} drop` : '';
      bad.classList.toggle('n-bad', errors > 0);
      g.classList.toggle('has-errors', errors > 0 || s.state === 'failed');
      g.querySelector('.n-lock').style.display = s.locked ? '' : 'none';
      g.classList.toggle('locked', !!s.locked);
      g.querySelector('title').textContent =
        `${s.name} (${s.type})\npackets in ${s.packets_in ?? '—'}, out ${s.packets_out ?? '—'}\ndrops ${drops}, errors ${errors}` +
        (s.latency_us?.p99 !== undefined ? `\nlatency from the source: p50 ${s.latency_us.p50} µs, p99 ${s.latency_us.p99} µs` : '') +
        (s.last_error ? `\nlast error: ${s.last_error}` : '') + (s.locked ? '\nlocked by the recording' : '');
      for (const e of this.edgesInto.get(s.name) ?? []) e.classList.toggle('dropping', drops > 0);
    }
  }

  build(stages, inputs) {
    const depth = new Map();
    const visit = (name, seen = new Set()) => {
      if (depth.has(name)) return depth.get(name);
      if (seen.has(name)) return 0;
      seen.add(name);
      const ins = inputs.get(name) ?? [];
      const d = ins.length ? 1 + Math.max(...ins.map(i => visit(i, seen))) : 0;
      depth.set(name, d);
      return d;
    };
    stages.forEach(s => visit(s.name));
    const rows = new Map();
    const pos = new Map();
    for (const s of stages) {
      const d = depth.get(s.name);
      // Prefer the row of the first input, so a straight chain stays on one line.
      const first = (inputs.get(s.name) ?? [])[0];
      let r = first && pos.has(first) ? pos.get(first).r : 0;
      const used = rows.get(d) ?? new Set();
      while (used.has(r)) r++;
      used.add(r); rows.set(d, used);
      pos.set(s.name, { d, r, x: PAD + d * (NODE_W + COL_GAP), y: PAD + r * (NODE_H + ROW_GAP) });
    }
    const cols = Math.max(1, ...[...depth.values()].map(d => d + 1));
    const nrows = Math.max(1, ...[...pos.values()].map(p => p.r + 1));
    const w = PAD * 2 + cols * NODE_W + (cols - 1) * COL_GAP;
    const h = PAD * 2 + nrows * NODE_H + (nrows - 1) * ROW_GAP;
    const svg = el('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: 'img', 'aria-label': 'pipeline graph' });
    svg.style.maxWidth = '100%';
    svg.style.height = 'auto';
    svg.style.minWidth = `${Math.round(w * 0.78)}px`;
    const defs = el('defs');
    const marker = el('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' });
    marker.appendChild(el('path', { d: 'M0,0 L8,4 L0,8 z', fill: '#4a5768' }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    this.edgesInto = new Map();
    for (const s of stages) {
      const b = pos.get(s.name);
      for (const i of inputs.get(s.name) ?? []) {
        const a = pos.get(i);
        if (!a) continue;
        const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
        const mx = (x1 + x2) / 2;
        const path = el('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 1},${y2}`, 'marker-end': 'url(#arrow)' });
        svg.appendChild(path);
        if (!this.edgesInto.has(s.name)) this.edgesInto.set(s.name, []);
        this.edgesInto.get(s.name).push(path);
      }
    }
    this.nodes = new Map();
    for (const s of stages) {
      const { x, y } = pos.get(s.name);
      const g = el('g', { class: 'node', transform: `translate(${x},${y})`, 'data-stage': s.name, tabindex: 0, role: 'button' });
      g.appendChild(el('title', {}, s.name));
      g.appendChild(el('rect', { width: NODE_W, height: NODE_H, rx: 6 }));
      const name = s.name.length > 16 ? `${s.name.slice(0, 15)}…` : s.name;
      g.appendChild(el('text', { class: 'n-name', x: 8, y: 17 }, name));
      // a padlock, drawn (no emoji font is needed)
      const lock = el('g', { class: 'n-lock', transform: `translate(${NODE_W - 17},6)` });
      lock.appendChild(el('path', { d: 'M2.5,5 V3.5 a2.5,2.5 0 0 1 5,0 V5', fill: 'none', 'stroke-width': 1.3 }));
      lock.appendChild(el('rect', { x: 0.5, y: 5, width: 9, height: 7, rx: 1.5 }));
      lock.style.display = 'none';
      g.appendChild(lock);
      g.appendChild(el('text', { class: 'n-type', x: 8, y: 31 }, s.name === s.type ? '' : s.type));
      g.appendChild(el('text', { class: 'n-stats n-rate', x: 8, y: 50 }, '—'));
      g.appendChild(el('text', { class: 'n-stats n-drops', x: NODE_W - 8, y: 50, 'text-anchor': 'end' }, ''));
      g.addEventListener('click', () => this.select(s.name));
      g.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.select(s.name); } });
      if (s.name === this.selected) g.classList.add('selected');
      svg.appendChild(g);
      this.nodes.set(s.name, g);
    }
    this.container.replaceChildren(svg);
    if (this.selected && !this.nodes.has(this.selected)) this.select(null);
  }
}

/** Resolves `$ref` against the schema's `$defs`/`definitions`, and unwraps `Option<T>` (`anyOf [T, null]`). */
function resolve(p, root) {
  let nullable = false;
  for (let guard = 0; guard < 8; guard++) {
    if (p?.$ref) {
      const name = p.$ref.split('/').pop();
      const { $ref, ...rest } = p;
      p = { ...((root.$defs ?? root.definitions ?? {})[name] ?? {}), ...rest };
      continue;
    }
    const alts = p?.anyOf ?? (p?.oneOf && !p.oneOf.every(o => 'const' in o || o.enum) ? p.oneOf : null);
    if (alts) {
      const nonNull = alts.filter(a => a.type !== 'null');
      if (nonNull.length === 1) {
        nullable ||= nonNull.length < alts.length;
        const { anyOf, oneOf, ...rest } = p;
        p = { ...nonNull[0], ...rest };
        continue;
      }
    }
    break;
  }
  const types = Array.isArray(p?.type) ? p.type : p?.type ? [p.type] : [];
  if (types.includes('null')) nullable = true;
  const type = types.find(t => t !== 'null');
  let options = null;
  if (Array.isArray(p?.enum)) options = p.enum.filter(v => v !== null).map(v => ({ value: v, label: String(v) }));
  const consts = p?.oneOf ?? p?.anyOf;
  if (!options && Array.isArray(consts) && consts.every(o => 'const' in o || o.enum)) {
    options = consts.flatMap(o => ('const' in o ? [{ value: o.const, label: String(o.const), help: o.description }] : o.enum.map(v => ({ value: v, label: String(v) }))));
  }
  let kind = 'json';
  if (options) kind = 'select';
  else if (type === 'boolean') kind = 'bool';
  else if (type === 'integer') kind = 'int';
  else if (type === 'number') kind = 'number';
  else if (type === 'string') kind = 'string';
  return { schema: p, kind, nullable, options };
}

export class ParamEditor {
  constructor(container) {
    this.container = container;
    this.catalogue = new Map();   // type → {schema, doc, defaults}
    this.stage = null;
    this.pipeline = null;
    this.renderedKey = '';
  }

  setCatalogue(list) {
    this.catalogue = new Map();
    const items = Array.isArray(list) ? list : Object.entries(list ?? {}).map(([type, v]) => ({ type, ...v }));
    for (const c of items) {
      const type = c.type ?? c.name;
      this.catalogue.set(type, { schema: c.params_schema ?? c.schema ?? {}, doc: c.doc ?? '', defaults: c.defaults ?? {} });
    }
    this.renderedKey = '';
    this.render();
  }

  show(name) { this.stage = name; this.renderedKey = ''; this.render(); }

  update(pipeline) { this.pipeline = pipeline; this.render(); }

  current() { return (this.pipeline?.stages ?? []).find(s => s.name === this.stage); }

  lockReason(s) {
    if (!s?.locked) return '';
    const rec = this.pipeline?.recording;
    const session = rec?.session ? ` (session ${rec.session})` : '';
    const by = s.locked_by && s.locked_by !== s.name ? `the recorder \`${s.locked_by}\`` : 'the recording';
    return `Locked while recording${session}: this stage feeds ${by}, so it keeps its parameters until the recording stops.`;
  }

  render() {
    const s = this.current();
    const c = this.container;
    if (!s) {
      c.replaceChildren(Object.assign(document.createElement('p'), { className: 'dim', textContent: this.stage ? `No stage “${this.stage}” in the running pipeline.` : 'Select a stage.' }));
      this.renderedKey = '';
      return;
    }
    const key = JSON.stringify([s.name, s.type, s.params, this.catalogue.has(s.type)]);
    const focused = c.contains(document.activeElement) && document.activeElement.matches('input,select,textarea');
    if (key !== this.renderedKey && !focused) { this.build(s); this.renderedKey = key; }
    const reason = this.lockReason(s);
    const note = c.querySelector('.lock-note');
    note.hidden = !reason;
    note.textContent = reason;
    for (const input of c.querySelectorAll('[data-param]')) {
      input.disabled = !!reason;
      input.title = reason || input.dataset.help || '';
    }
  }

  build(s) {
    const c = this.container;
    c.dataset.stage = s.name;
    const cat = this.catalogue.get(s.type) ?? { schema: {}, doc: '' };
    const root = cat.schema ?? {};
    const h = document.createElement('h3');
    h.textContent = s.name;
    const doc = document.createElement('p');
    doc.className = 'doc';
    doc.textContent = `${s.type}${cat.doc ? ' — ' + cat.doc.split('\n')[0] : ''}`;
    const note = document.createElement('div');
    note.className = 'lock-note';
    note.hidden = true;
    const form = document.createElement('div');
    const msg = document.createElement('div');
    msg.className = 'form-msg';
    msg.setAttribute('role', 'status');
    const props = root.properties ?? {};
    const params = s.params ?? {};
    const keys = Object.keys(props);
    for (const k of Object.keys(params)) if (!keys.includes(k)) keys.push(k);
    if (!keys.length) form.appendChild(Object.assign(document.createElement('p'), { className: 'dim', textContent: 'This stage has no parameters.' }));
    for (const k of keys) {
      const { schema, kind, nullable, options } = resolve(props[k] ?? {}, root);
      const value = k in params ? params[k] : schema.default ?? cat.defaults?.[k] ?? null;
      const row = document.createElement('div');
      row.className = 'field';
      const id = `param-${s.name}-${k}`;
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = k;
      let input;
      if (kind === 'bool') {
        input = document.createElement('input');
        input.type = 'checkbox';
        input.checked = !!value;
      } else if (kind === 'select') {
        input = document.createElement('select');
        if (nullable) input.appendChild(new Option('default', ''));
        for (const o of options) {
          const opt = new Option(o.label, JSON.stringify(o.value));
          if (o.help) opt.title = o.help;
          input.appendChild(opt);
        }
        input.value = value === null ? '' : JSON.stringify(value);
      } else if (kind === 'int' || kind === 'number') {
        input = document.createElement('input');
        input.type = 'number';
        input.step = kind === 'int' ? '1' : 'any';
        if (schema.minimum !== undefined) input.min = schema.minimum;
        if (schema.maximum !== undefined) input.max = schema.maximum;
        input.value = value ?? '';
        if (nullable) input.placeholder = 'default';
      } else if (kind === 'string') {
        input = document.createElement('input');
        input.value = value ?? '';
      } else {
        input = document.createElement('textarea');
        input.rows = Math.min(6, Math.max(2, JSON.stringify(value)?.length / 40 | 0));
        input.value = JSON.stringify(value);
      }
      input.id = id;
      input.dataset.param = k;
      input.dataset.help = schema.description ?? '';
      input.addEventListener('change', () => this.apply(s.name, k, kind, nullable, input, msg));
      row.append(label, input);
      if (schema.description) {
        const help = document.createElement('div');
        help.className = 'help';
        help.textContent = schema.description.split('\n')[0];
        row.appendChild(help);
      }
      form.appendChild(row);
    }
    // The message sits above the fields (sticky when it is an error), never below the fold.
    c.replaceChildren(h, doc, note, msg, form);
  }

  async apply(stage, key, kind, nullable, input, msg) {
    let value;
    try {
      if (kind === 'bool') value = input.checked;
      else if (kind === 'select') value = input.value === '' ? null : JSON.parse(input.value);
      else if (kind === 'int' || kind === 'number') {
        if (input.value.trim() === '') {
          if (!nullable) throw new Error(`${key} needs a value`);
          value = null;
        } else {
          value = kind === 'int' ? Number.parseInt(input.value, 10) : Number.parseFloat(input.value);
          if (!Number.isFinite(value)) throw new Error(`${key} must be a number`);
        }
      } else if (kind === 'string') value = input.value;
      else value = JSON.parse(input.value);
    } catch (e) {
      msg.className = 'form-msg error';
      msg.textContent = e.message;
      input.classList.add('invalid');
      msg.scrollIntoView({ block: 'nearest' });
      return;
    }
    msg.className = 'form-msg';
    msg.textContent = `applying ${key}…`;
    try {
      await api.patchParams(stage, { [key]: value });
      msg.textContent = `${key} = ${JSON.stringify(value)} applied`;
      input.setCustomValidity('');
      input.classList.remove('invalid');
      const s = this.current();
      if (s) s.params = { ...(s.params ?? {}), [key]: value };
      this.renderedKey = '';
      this.onApplied?.();
    } catch (e) {
      msg.className = 'form-msg error';
      msg.textContent = e.status === 409 ? `Locked: ${e.message}` : e.message;
      input.classList.add('invalid');
      msg.scrollIntoView({ block: 'nearest' });
    }
  }
}
