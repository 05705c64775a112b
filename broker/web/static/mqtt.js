// The MQTT clients tab: fetched when the tab opens and on Refresh (MQTT
// clients come and go rarely on a depot box; there is no event for them).
import { el, setText, api, enc } from './util.js';

const VERSIONS = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

export class MqttTab {
  /** onKick(id) asks before kicking; onError(message) shows a failure. */
  constructor({ tbody, empty, shown, refresh, onKick, onError }) {
    this.tbody = tbody;
    this.empty = empty;
    this.shown = shown;
    this.onError = onError;
    this.refreshBtn = refresh;
    this.loading = null;
    refresh.addEventListener('click', () => this.refresh());
    tbody.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button.kick');
      if (btn) onKick(btn.closest('tr').dataset.id);
    });
  }

  /** refresh fetches the list again (one request at a time). */
  refresh() {
    if (!this.loading) {
      this.loading = this.load().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  async load() {
    let list;
    try {
      list = await api('api/v1/mqtt/clients');
    } catch (err) {
      this.onError(`Could not load the MQTT clients: ${err.message}`);
      return;
    }
    this.onError('');
    const rows = (list.clients || []).map((c) => this.row(c));
    const hadFocus = this.tbody.contains(document.activeElement);
    this.tbody.replaceChildren(...rows);
    if (hadFocus) this.refreshBtn.focus(); // its row was replaced
    this.empty.hidden = rows.length > 0;
    const connected = (list.clients || []).filter((c) => c.connected).length;
    setText(this.shown, `${connected} connected${list.total > connected ? `, ${list.total - connected} with a session kept` : ''}`);
  }

  row(c) {
    const subs = el('td', { className: 'col-subs', dataset: { label: 'Subscriptions' } });
    if (c.subscriptions && c.subscriptions.length) {
      for (const s of c.subscriptions) subs.append(el('code', { className: 'sub', text: s }));
    } else {
      subs.textContent = '—';
    }
    const kick = el('button', { className: 'btn small danger kick', text: 'Kick', attrs: { type: 'button', 'aria-label': `Kick ${c.id}` } });
    kick.disabled = !c.connected;
    return el('tr', { dataset: { id: c.id } },
      el('td', { className: 'col-id', dataset: { label: 'Client id' } }, el('span', { className: 'mono', text: c.id })),
      el('td', { dataset: { label: 'Username' }, text: c.username || '—' }),
      el('td', { dataset: { label: 'Remote' }, text: c.remote || '—' }),
      el('td', { dataset: { label: 'Listener' }, text: c.listener || '' }),
      el('td', { dataset: { label: 'MQTT' }, text: VERSIONS[c.protocol_version] || String(c.protocol_version) }),
      subs,
      el('td', { dataset: { label: 'In flight' }, text: String(c.inflight || 0) }),
      el('td', { dataset: { label: 'State' }, className: c.connected ? 'ok' : 'muted', text: c.connected ? 'connected' : 'session kept' }),
      el('td', { className: 'col-actions' }, kick),
    );
  }

  /** kick disconnects an MQTT client, then refreshes the list. */
  async kick(id) {
    await api(`api/v1/mqtt/clients/${enc(id)}`, { method: 'DELETE' });
    await this.refresh();
  }
}
