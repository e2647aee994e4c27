// Thin wrappers around the daemon's HTTP API. Every call rejects with an Error whose
// message is the daemon's own explanation when it gave one, and whose `status` is the HTTP status.

async function explain(res) {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const text = await res.text();
    try {
      const j = JSON.parse(text);
      msg = j.error ?? j.message ?? text;
      if (typeof msg !== 'string') msg = JSON.stringify(msg);
      // An invalid pipeline file: every error with its line and column.
      if (Array.isArray(j.errors) && j.errors.length) {
        const where = e => (e.line ? `${e.file ?? ''}:${e.line}:${e.column ?? 1}: ` : '');
        msg += '\n' + j.errors.map(e => `${where(e)}${e.message ?? JSON.stringify(e)}`).join('\n');
      }
    } catch { if (text) msg = text; }
  } catch { /* body unreadable: keep the status line */ }
  const err = new Error(msg);
  err.status = res.status;
  return err;
}

export async function request(method, path, body, contentType = 'application/json') {
  const init = { method, headers: {}, cache: 'no-store' };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = contentType;
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await explain(res);
  const type = res.headers.get('Content-Type') ?? '';
  if (type.includes('json')) return res.json();
  const text = await res.text();
  try { return JSON.parse(text); } catch { return text; }
}

export const api = {
  pipeline: () => request('GET', '/api/pipeline'),
  stages: () => request('GET', '/api/stages'),
  presets: () => request('GET', '/api/presets'),
  start: (body, contentType) => request('POST', '/api/pipeline/start', body, contentType),
  // The preset goes both in the query and in the body, the two ways a daemon may read it.
  startPreset: name => request('POST', `/api/pipeline/start?preset=${encodeURIComponent(name)}`, { preset: name }),
  stop: () => request('POST', '/api/pipeline/stop'),
  patchParams: (stage, patch) => request('PATCH', `/api/stages/${encodeURIComponent(stage)}/params`, patch),
  recordStart: body => request('POST', '/api/recording/start', body),
  recordStop: () => request('POST', '/api/recording/stop'),
  recordings: () => request('GET', '/api/recordings'),
  marker: body => request('POST', '/api/markers', body),
};

/** A WebSocket URL on this page's host. */
export function wsUrl(path) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${path}`;
}

/** Reconnect delays: 0.5 s doubling to 5 s, with ±20 % jitter so many tabs do not retry in step. */
export function backoff(attempt) {
  const base = Math.min(5000, 500 * 2 ** attempt);
  return base * (0.8 + 0.4 * Math.random());
}
