// Live edits of the running graph (`POST /api/pipeline/stages`): add a stage after the selected
// one, replace it, or remove it (with what it feeds). The type picker lists the stage types that
// take the selected stage's output (from `GET /api/stages`); the parameter fields come from the
// chosen type's JSON schema. Nothing here reloads the page: after an edit the caller polls
// `GET /api/pipeline` and the graph redraws; the traces never stop.
import { request } from './api.js';

export const editStages = body => request('POST', '/api/pipeline/stages', body);

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The schema of property `p`, following a local `$ref` and an `anyOf` with null. */
function propSchema(p, root) {
  let s = p ?? {};
  if (s.$ref) {
    const path = s.$ref.replace(/^#\//, '').split('/');
    s = path.reduce((o, k) => o?.[k], root) ?? {};
  }
  const alt = s.anyOf ?? s.oneOf;
  if (Array.isArray(alt)) s = alt.find(a => a.type !== 'null') ?? s;
  return s;
}

export class StageEdits {
  /** `onDone(edit)` after an applied edit; `onError(text)` to show an error where the user looks. */
  constructor(container, { onDone, onError }) {
    this.container = container;
    this.onDone = onDone ?? (() => {});
    this.onError = onError ?? (() => {});
    this.catalogue = [];
    this.pipeline = null;
    this.stage = null;
    this.shownKey = '';
  }

  setCatalogue(list) {
    this.catalogue = Array.isArray(list) ? list : [];
    this.shownKey = '';
    this.render();
  }

  select(name) { this.stage = name; this.shownKey = ''; this.render(); }

  update(pipeline) { this.pipeline = pipeline; this.render(); }

  current() { return (this.pipeline?.stages ?? []).find(s => s.name === this.stage); }

  /** Types that can follow stage `s` (take its output kind), or replace it (same role). */
  typesFor(s, mode) {
    const stages = this.pipeline?.stages ?? [];
    const input = stages.find(x => x.name === (s.inputs ?? [])[0]);
    const kind = mode === 'replace' ? input?.output?.kind : s?.output?.kind;
    return this.catalogue.filter(t => {
      if (t.role === 'source' || !kind || !(t.accepts ?? []).includes(kind)) return false;
      return mode !== 'replace' || t.role === s.role;
    });
  }

  render() {
    const s = this.current();
    const key = JSON.stringify([s?.name, s?.type, s?.output?.kind, s?.locked, this.catalogue.length]);
    if (key === this.shownKey) return;
    if (this.container.contains(document.activeElement) && document.activeElement.matches('input,select,textarea')) return;
    this.shownKey = key;
    const c = this.container;
    c.replaceChildren();
    if (!s) return;
    c.dataset.stage = s.name;
    const msg = el('div', { className: 'form-msg', role: 'alert' });
    msg.dataset.role = 'edit-msg';
    const mode = el('select', { title: 'What to do with this stage' });
    mode.dataset.edit = 'mode';
    if (s.output) mode.append(el('option', { value: 'add' }, `Add a stage after ${s.name}`));
    if (s.role !== 'source') {
      mode.append(el('option', { value: 'replace' }, `Replace ${s.name}`));
      mode.append(el('option', { value: 'remove' }, `Remove ${s.name}`));
    }
    if (!mode.options.length) return;
    const body = el('div', { className: 'edit-body' });
    const go = el('button', { className: 'btn small', type: 'button' }, 'Apply');
    go.dataset.edit = 'apply';
    c.append(el('h3', {}, 'Change the graph'), mode, body, go, msg);
    const form = { mode: mode.value };
    const fill = () => this.buildBody(body, s, mode.value, form);
    mode.addEventListener('change', fill);
    fill();
    go.addEventListener('click', async () => {
      msg.textContent = '';
      msg.classList.remove('error');
      let req;
      try {
        req = form.request();
      } catch (e) {
        msg.textContent = e.message;
        msg.classList.add('error');
        return;
      }
      go.disabled = true;
      try {
        const r = await editStages(req);
        const edit = r?.edits?.[0] ?? {};
        msg.textContent = edit.op === 'remove' ? `removed ${(edit.removed ?? []).join(', ')}` : `${edit.op ?? 'edit'} applied`;
        this.shownKey = '';
        this.onDone(edit);
      } catch (e) {
        msg.textContent = e.message;
        msg.classList.add('error');
        this.onError(`Changing the graph: ${e.message}`);
      } finally {
        go.disabled = false;
      }
    });
  }

  buildBody(body, s, mode, form) {
    body.replaceChildren();
    if (mode === 'remove') {
      const dependants = (this.pipeline?.stages ?? []).filter(x => (x.inputs ?? []).includes(s.name)).map(x => x.name);
      const cascade = el('input', { type: 'checkbox', checked: false });
      cascade.dataset.edit = 'cascade';
      const label = el('label', {}, dependants.length ? ` also remove what it feeds (${dependants.join(', ')}…)` : ' (it feeds nothing)');
      label.prepend(cascade);
      body.append(el('div', { className: 'field' }, ''), label);
      form.request = () => ({ remove: s.name, cascade: cascade.checked });
      return;
    }
    const types = this.typesFor(s, mode);
    const type = el('select', { title: 'Stage type' });
    type.dataset.edit = 'type';
    for (const t of types) type.append(el('option', { value: t.type }, t.type));
    const name = el('input', { type: 'text', placeholder: 'name (optional)' });
    name.dataset.edit = 'name';
    const params = el('div', { className: 'edit-params' });
    if (mode === 'add') body.append(type, name, params);
    else body.append(type, params);
    const fields = new Map();
    const showParams = () => {
      params.replaceChildren();
      fields.clear();
      const t = this.catalogue.find(x => x.type === type.value);
      if (!t) return;
      const root = t.params_schema ?? {};
      const required = new Set(root.required ?? []);
      for (const [k, p] of Object.entries(root.properties ?? {})) {
        const sc = propSchema(p, root);
        const def = t.defaults?.[k] ?? sc.default;
        const id = `edit-${k}`;
        const row = el('div', { className: 'field' });
        row.append(el('label', { htmlFor: id }, required.has(k) ? `${k} *` : k));
        let input;
        if (sc.type === 'boolean') {
          input = el('input', { type: 'checkbox', id, checked: !!def });
        } else if (Array.isArray(sc.enum)) {
          input = el('select', { id });
          for (const v of sc.enum) input.append(el('option', { value: v, selected: v === def }, String(v)));
        } else if (sc.type === 'number' || sc.type === 'integer') {
          input = el('input', { type: 'number', id, step: 'any', value: def ?? '' });
        } else {
          input = el('input', { type: 'text', id, value: def === undefined || def === null ? '' : (typeof def === 'string' ? def : JSON.stringify(def)) });
        }
        input.dataset.param = k;
        row.append(input);
        if (p.description) row.append(el('div', { className: 'help' }, p.description.split('\n')[0]));
        params.append(row);
        fields.set(k, { input, sc });
      }
    };
    type.addEventListener('change', showParams);
    showParams();
    const values = () => {
      const out = {};
      for (const [k, { input, sc }] of fields) {
        if (input.type === 'checkbox') { out[k] = input.checked; continue; }
        const v = input.value.trim();
        if (v === '') continue;
        if (sc.type === 'number' || sc.type === 'integer') out[k] = Number(v);
        else if (sc.type === 'string' || Array.isArray(sc.enum)) out[k] = v;
        else { try { out[k] = JSON.parse(v); } catch { out[k] = v; } }
      }
      return out;
    };
    form.request = () => {
      if (!type.value) throw new Error(`no stage type takes the output of ${s.name}`);
      if (mode === 'add') {
        const body = { ...values(), inputs: [s.name] };
        if (name.value.trim()) body.name = name.value.trim();
        return { add: { [type.value]: body } };
      }
      return { replace: s.name, with: { [type.value]: values() } };
    };
  }
}
