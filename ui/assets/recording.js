// Recording: participant, notes and format; start/stop; elapsed time and size; markers; past sessions.
import { api } from './api.js';

const $ = id => document.getElementById(id);

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(s) {
  if (!Number.isFinite(s) || s < 0) return '—';
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(2, '0'), ss = String(sec).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** The first of several spellings a field may have. */
function pick(o, ...keys) {
  for (const k of keys) if (o && o[k] !== undefined && o[k] !== null) return o[k];
  return undefined;
}

export class RecordingPanel {
  constructor({ onMarker, onChange }) {
    this.onMarker = onMarker;
    this.onChange = onChange;
    this.active = null;       // {session, startedMs, bytes}
    this.markers = 0;
    this.busy = false;
    $('rec-form').addEventListener('submit', e => { e.preventDefault(); this.toggle(); });
    $('marker-btn').addEventListener('click', () => this.marker());
    $('sessions-refresh').addEventListener('click', () => this.refreshSessions());
    setInterval(() => this.tick(), 500);
  }

  message(text, error = false) {
    const m = $('rec-msg');
    m.textContent = text;
    m.className = `form-msg wide${error ? ' error' : ''}`;
  }

  /** Follows the daemon's view of the recording (`recording` in `GET /api/pipeline`). */
  update(pipeline) {
    if (!pipeline || !('recording' in pipeline)) return;   // a daemon that does not report it: keep local state
    const r = pipeline.recording;
    const on = r && (r.active ?? true) !== false;
    if (on) {
      const ns = pick(r, 'started_ns', 'start_ns');
      const startedMs = ns !== undefined ? Number(ns) / 1e6 : pick(r, 'started_at', 'start_time') ? Date.parse(pick(r, 'started_at', 'start_time')) : this.active?.startedMs ?? Date.now();
      const wasOff = !this.active;
      this.active = { session: pick(r, 'session', 'name', 'id') ?? this.active?.session, startedMs, bytes: pick(r, 'bytes', 'size_bytes', 'bytes_written') };
      if (pick(r, 'markers') !== undefined) this.markers = Array.isArray(r.markers) ? r.markers.length : Number(r.markers);
      if (wasOff) this.render();
    } else if (this.active && !this.busy) {
      this.active = null;
      this.render();
      this.refreshSessions();
    }
  }

  render() {
    const on = !!this.active;
    const btn = $('rec-toggle');
    btn.textContent = on ? '■ Stop recording' : '● Record';
    btn.classList.toggle('active', on);
    $('rec-dot').classList.toggle('on', on);
    $('rec-dot').title = on ? `recording ${this.active.session ?? ''}` : 'not recording';
    $('marker-btn').disabled = !on;
    $('rec-pill').hidden = !on;
    for (const id of ['rec-participant', 'rec-notes', 'rec-format']) $(id).disabled = on;
    this.tick();
  }

  tick() {
    const a = this.active;
    $('rec-elapsed').textContent = a ? formatDuration((Date.now() - a.startedMs) / 1000) : '—';
    // The top bar says a recording runs whatever the window size or scroll position.
    $('rec-pill').textContent = a ? `● REC ${formatDuration((Date.now() - a.startedMs) / 1000)}` : '';
    $('rec-size').textContent = a && a.bytes !== undefined ? formatBytes(Number(a.bytes)) : '—';
    $('rec-markers').textContent = String(this.markers);
  }

  async toggle() {
    if (this.busy) return;
    this.busy = true;
    $('rec-toggle').disabled = true;
    try {
      if (this.active) {
        const res = await api.recordStop();
        const where = pick(res, 'session', 'folder', 'path', 'dir') ?? this.active.session ?? '';
        this.active = null;
        this.message(`Saved ${where}`);
        await this.refreshSessions();
      } else {
        const body = { participant: $('rec-participant').value.trim(), notes: $('rec-notes').value.trim() };
        if ($('rec-format').value) body.format = $('rec-format').value;
        const res = await api.recordStart(body);
        this.markers = 0;
        this.active = { session: pick(res, 'session', 'name', 'id', 'folder'), startedMs: Date.now(), bytes: undefined };
        this.message(`Recording ${this.active.session ?? ''}`);
      }
    } catch (e) {
      this.message(e.message, true);
    } finally {
      this.busy = false;
      $('rec-toggle').disabled = false;
      this.render();
      this.onChange?.();
    }
  }

  async marker() {
    if (!this.active) return;
    const label = $('marker-label').value.trim() || `marker ${this.markers + 1}`;
    try {
      await api.marker({ label });
      this.markers++;
      this.onMarker?.(label);
      this.message(`Marker “${label}” at ${formatDuration((Date.now() - this.active.startedMs) / 1000)}`);
      this.tick();
    } catch (e) {
      this.message(e.message, true);
    }
  }

  async refreshSessions() {
    let list;
    try {
      list = await api.recordings();
    } catch (e) {
      return;
    }
    if (!Array.isArray(list)) list = list?.sessions ?? list?.recordings ?? [];
    const ul = $('sessions');
    if (!list.length) {
      ul.replaceChildren(Object.assign(document.createElement('li'), { className: 'dim', textContent: 'none yet' }));
      return;
    }
    const items = list.map(s => {
      const name = pick(s, 'session', 'name', 'id', 'folder') ?? String(pick(s, 'path') ?? '').split('/').pop();
      const li = document.createElement('li');
      li.dataset.session = name;
      const head = document.createElement('div');
      head.className = 's-head';
      const title = document.createElement('b');
      title.textContent = name;
      const who = document.createElement('span');
      who.className = 'dim';
      let dur = pick(s, 'duration_s', 'seconds');
      if (dur === undefined && s.start_ns && s.stop_ns) dur = (Number(s.stop_ns) - Number(s.start_ns)) / 1e9;
      if (dur === undefined && s.started_at && s.stopped_at) dur = (Date.parse(s.stopped_at) - Date.parse(s.started_at)) / 1000;
      const participant = pick(s, 'participant') ?? pick(s.meta ?? {}, 'participant');
      const markers = Array.isArray(s.markers) ? s.markers.length : 0;
      who.textContent = [participant, dur !== undefined ? formatDuration(Number(dur)) : null, markers ? `${markers} marker${markers > 1 ? 's' : ''}` : null]
        .filter(Boolean).join(' · ');
      const lost = Number(s.samples_dropped_upstream ?? 0) + Number(s.packets_dropped_upstream ?? 0);
      if ((s.status && s.status !== 'complete' && s.status !== 'recording') || lost) {
        const warn = document.createElement('span');
        warn.className = 's-warn';
        warn.textContent = lost ? `${s.status ?? ''} · ${lost} lost upstream`.replace(/^ · /, '') : s.status;
        warn.title = 'from session_meta.json: the recording did not complete cleanly';
        who.append(' ', warn);
      }
      head.append(title, who);
      const files = document.createElement('div');
      files.className = 's-files';
      // the folder relative to the data directory (sessions may sit in `recording.data_dir` folders)
      const rel = typeof s.path === 'string' && !s.path.startsWith('/') ? s.path : null;
      const dir = rel ?? pick(s, 'session') ?? name;
      // Without a file list, the files every session folder has.
      // `files` may be names (the data file first, whose size is `bytes`) or objects.
      const names = pick(s, 'files') ?? [pick(s, 'data_file'), 'session_meta.json', 'pipeline.yaml'].filter(Boolean);
      const fileList = names.map((f, i) => (typeof f === 'string' ? { name: f, bytes: i === 0 ? s.bytes : undefined } : f));
      for (const f of fileList) {
        const fname = typeof f === 'string' ? f : pick(f, 'name', 'file', 'path');
        const a = document.createElement('a');
        a.href = (typeof f === 'object' && pick(f, 'url', 'href')) || `/api/recordings/${dir.split('/').map(encodeURIComponent).join('/')}/${encodeURIComponent(fname)}`;
        a.download = fname;
        const bytes = typeof f === 'object' ? pick(f, 'bytes', 'size') : undefined;
        a.textContent = bytes !== undefined ? `${fname} (${formatBytes(Number(bytes))})` : fname;
        files.appendChild(a);
      }
      li.append(head, files);
      return li;
    });
    ul.replaceChildren(...items);
  }
}
