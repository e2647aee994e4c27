// Signal-quality panel: per channel impedance (coloured by status), railed / flat / lead-off
// badges and rms, from `GET /api/signal-quality` once a second; buttons for the impedance check
// (`POST /api/impedance/start|stop`) and the chip's self-test (`POST /api/selftest`). Railed
// channels are also handed to the trace view (`onRailed(labels)`), which marks their labels.
import { request } from './api.js';

const POLL_MS = 1000;

const esc = s => String(s).replace(/[&<>"]/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
const fmt = (v, digits = 1) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits));

export class QualityPanel {
  constructor({ table, info, impedanceBtn, selftestBtn, result, onRailed }) {
    Object.assign(this, { table, info, impedanceBtn, selftestBtn, result, onRailed });
    this.impedanceOn = false;
    this.timer = 0;
    impedanceBtn.addEventListener('click', () => this.toggleImpedance());
    selftestBtn.addEventListener('click', () => this.selftest());
    this.poll();
  }

  async poll() {
    clearTimeout(this.timer);
    try {
      this.render(await request('GET', '/api/signal-quality'));
    } catch (e) {
      this.table.innerHTML = `<tr><td class="dim">${esc(e.status ? e.message : 'no connection')}</td></tr>`;
      this.onRailed?.(new Set());
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  render(q) {
    const src = q.sources?.[0];
    this.impedanceOn = src?.lead_off?.mode === 'ac';
    this.impedanceBtn.textContent = this.impedanceOn ? 'Stop impedance' : 'Impedance';
    this.impedanceBtn.setAttribute('aria-pressed', String(this.impedanceOn));
    const when = q.impedance_measured_ns ? new Date(q.impedance_measured_ns / 1e6).toLocaleTimeString() : null;
    this.info.textContent = this.impedanceOn
      ? (when ? `impedance at ${when}` : 'measuring impedance…')
      : 'impedance: off';
    const rows = q.channels.map(c => {
      const badges = [
        c.railed ? '<span class="badge bad">railed</span>' : '',
        c.flat ? '<span class="badge warn">flat</span>' : '',
        c.lead_off ? '<span class="badge bad">lead-off</span>' : '',
      ].join('');
      return `<tr data-label="${esc(c.label)}" data-status="${c.status}">
        <td class="q-label">${esc(c.label)}</td>
        <td class="q-z ${c.status}" title="electrode impedance, kΩ">${fmt(c.impedance_kohm)}<span class="dim"> kΩ</span></td>
        <td class="q-rms" title="rms over the last quarter second">${fmt(c.rms_uv)}<span class="dim"> µV</span></td>
        <td class="q-badges">${badges}</td>
        <td><span class="q-dot ${c.status}" title="${c.status}"></span></td>
      </tr>`;
    });
    this.table.innerHTML = rows.join('');
    this.onRailed?.(new Set(q.channels.filter(c => c.railed).map(c => c.label)));
  }

  async toggleImpedance() {
    this.impedanceBtn.disabled = true;
    try {
      await request('POST', this.impedanceOn ? '/api/impedance/stop' : '/api/impedance/start');
      this.result.textContent = '';
    } catch (e) {
      this.result.textContent = e.message;
    }
    this.impedanceBtn.disabled = false;
    this.poll();
  }

  async selftest() {
    this.selftestBtn.disabled = true;
    this.result.textContent = 'self-test running: test signal, then shorted inputs…';
    try {
      const r = await request('POST', '/api/selftest', {});
      const failed = r.channels.filter(c => !c.pass);
      const lines = r.channels.map(c =>
        `<li class="${c.pass ? 'good' : 'bad'}" data-label="${esc(c.label)}">${esc(c.label)}: ${c.pass ? 'pass' : 'FAIL'} — test ${fmt(c.test_signal.amplitude_uv, 0)} µV @ ${fmt(c.test_signal.frequency_hz, 3)} Hz, noise ${fmt(c.shorted.rms_uv, 2)} µV rms / ${fmt(c.shorted.pp_uv, 2)} µVpp</li>`);
      this.result.innerHTML = `<b class="${r.pass ? 'good' : 'bad'}" id="selftest-verdict">self-test ${r.pass ? 'passed' : `failed on ${failed.length} channel(s)`}</b><ul class="selftest-list">${lines.join('')}</ul>`;
    } catch (e) {
      this.result.textContent = e.message;
    }
    this.selftestBtn.disabled = false;
  }
}
