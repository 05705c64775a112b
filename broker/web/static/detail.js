// The detail pane of one charge point: what the table knows of it, its
// last frames from GET /api/v1/clients/{cid}, and its new frames live
// from a second event stream (?cid=) that is open only while the pane is.
import { el, setText, ms, clock, clockMs, fullTime, ago, bytes, api, enc, APIError } from './util.js';
import { outstandingText } from './clients.js';
import { copyText } from './copy.js';

const MAX_FRAMES = 200; // frames kept in the pane; the oldest go first

const DIRECTION = {
  in: { arrow: '→', label: 'from the charge point' },
  out: { arrow: '←', label: 'to the charge point' },
};

const TYPE_ID = { call: 2, callresult: 3, callerror: 4 };

/**
 * frameText is what Copy puts on the clipboard: the OCPP-J frame as the
 * wire carried it ([2, id, action, payload], [3, id, payload], a
 * CALLERROR's whole frame, a malformed frame's text), or the record
 * itself when the payload was cut at 1 KiB or is missing.
 */
export function frameText(f) {
  const p = f.payload;
  if (typeof p !== 'string' || p === '' || f.truncated) return JSON.stringify(f, null, 2);
  const id = JSON.stringify(f.unique_id || '');
  try {
    switch (f.type) {
      case 'call':
        JSON.parse(p);
        return `[${TYPE_ID.call},${id},${JSON.stringify(f.action || '')},${p}]`;
      case 'callresult':
        JSON.parse(p);
        return `[${TYPE_ID.callresult},${id},${p}]`;
      default:
        return p; // a CALLERROR's payload is its whole frame; a malformed frame's is its text
    }
  } catch {
    return JSON.stringify(f, null, 2);
  }
}

/** pretty is a payload indented for reading (the raw text when it is not JSON). */
function pretty(f) {
  const p = f.payload;
  if (typeof p !== 'string' || p === '') return '(no payload recorded)';
  try {
    return JSON.stringify(JSON.parse(p), null, 2);
  } catch {
    return p;
  }
}

function frameKey(f) {
  return `${f.time}|${f.direction}|${f.type}|${f.unique_id || ''}|${f.size}`;
}

export class DetailPane {
  /** table: the ClientTable (live info); onKick(cid); onClose(cid). */
  constructor({ root, table, onKick, onClose }) {
    this.root = root;
    this.table = table;
    this.onClose = onClose || (() => {});
    this.title = root.querySelector('#detail-title');
    this.state = root.querySelector('#detail-state');
    this.info = root.querySelector('#detail-info');
    this.list = root.querySelector('#frames');
    this.empty = root.querySelector('#frames-empty');
    this.kickBtn = root.querySelector('#detail-kick');
    this.cid = null;
    this.es = null;
    this.gen = 0;
    this.keys = new Set();
    this.extra = {}; // what only the detail endpoint gives (heartbeat interval)
    this.notes = {}; // conn, stream, load: what the state line says
    root.querySelector('#detail-close').addEventListener('click', () => this.close());
    this.kickBtn.addEventListener('click', () => this.cid && onKick(this.cid));
    this.list.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button.copy');
      if (btn) this.copy(btn);
    });
  }

  get isOpen() {
    return this.cid !== null;
  }

  open(cid) {
    if (this.cid === cid) {
      this.root.focus();
      return;
    }
    this.stopStream();
    this.cid = cid;
    this.extra = {};
    this.keys.clear();
    this.frames = new Map(); // li → frame record
    this.list.replaceChildren();
    this.empty.hidden = true;
    setText(this.title, cid);
    this.notes = {};
    this.note();
    this.root.hidden = false;
    document.body.classList.add('detail-open');
    this.table.select(cid);
    this.renderInfo();
    this.root.focus();
    this.startStream();
  }

  close() {
    if (this.cid === null) return;
    const cid = this.cid;
    this.stopStream();
    this.cid = null;
    this.root.hidden = true;
    document.body.classList.remove('detail-open');
    this.table.select(null);
    this.list.replaceChildren();
    this.onClose(cid);
  }

  /** note sets (or with no text clears) one of the state line's notes and shows them. */
  note(which, text) {
    if (which) {
      if (text) this.notes[which] = text;
      else delete this.notes[which];
    }
    const text2 = Object.values(this.notes).join(' ');
    this.state.hidden = !text2;
    setText(this.state, text2);
  }

  // The stream opens first and the frames are fetched once it is open, so
  // that no frame falls between the two; frames that arrive before the
  // fetch returns wait in a buffer and are then added unless already there.
  startStream() {
    const cid = this.cid;
    const es = new EventSource(`api/v1/events?cid=${enc(cid)}`);
    this.es = es;
    this.buffer = [];
    this.loaded = false;
    es.addEventListener('open', () => this.load());
    es.addEventListener('overflow', () => this.load());
    es.addEventListener('frame', (ev) => {
      let d;
      try {
        d = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (d.cid !== this.cid || !d.frame) return;
      if (this.loaded) this.addFrame(d.frame, true);
      else this.buffer.push(d.frame);
    });
    es.addEventListener('error', () => {
      if (this.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        this.note('stream', 'Live frames are unavailable (too many event streams open?); close and reopen the pane to retry.');
      } else {
        this.loaded = false;
        this.buffer = [];
      }
    });
  }

  /** suspend closes the pane's stream (the page is in the background); resume opens it again. */
  suspend() {
    this.stopStream();
  }

  resume() {
    if (this.cid !== null && !this.es) this.startStream();
  }

  stopStream() {
    if (this.es) this.es.close();
    this.es = null;
    this.gen++;
  }

  async load() {
    const cid = this.cid;
    const gen = ++this.gen;
    this.loaded = false;
    this.buffer = [];
    let d;
    try {
      d = await api(`api/v1/clients/${enc(cid)}`);
    } catch (err) {
      if (gen !== this.gen) return;
      if (err instanceof APIError && err.status === 404) {
        // Not connected: its frames are still kept for a while.
        this.note('conn', 'Not connected: these are its last frames.');
        try {
          d = await api(`api/v1/clients/${enc(cid)}/frames`);
        } catch {
          d = { frames: [] };
        }
        if (gen !== this.gen) return;
      } else {
        this.note('load', `Could not load the charge point: ${err.message}.`);
        return;
      }
    }
    if (gen !== this.gen) return;
    this.note('load');
    if (d.connected_at) {
      this.extra = { heartbeat: d.heartbeat_interval_seconds };
      this.table.update(d);
    }
    this.keys.clear();
    this.frames = new Map();
    this.list.replaceChildren();
    for (const f of d.frames || []) this.addFrame(f, false);
    for (const f of this.buffer) this.addFrame(f, true);
    this.buffer = [];
    this.loaded = true;
    this.empty.hidden = this.list.childElementCount > 0;
    this.renderInfo();
  }

  /** changed is the table telling that an entry changed (live info). */
  changed(e) {
    if (e.cid !== this.cid) return;
    this.note('conn', e.removed ? 'Disconnected.' : '');
    this.renderInfo();
  }

  renderInfo() {
    const e = this.table.get(this.cid);
    this.kickBtn.disabled = !e;
    if (!e) return;
    const i = e.info;
    const rows = [
      ['Protocol', i.protocol],
      ['Remote address', i.remote],
      ['Username', i.username || '—'],
      ['Security profile', String(i.security_profile ?? '—')],
      ['Connected since', `${clock(e.connectedMs)} (${ago(e.connectedMs)})`, fullTime(e.connectedMs)],
      ['Last seen', clock(e.lastSeenMs), fullTime(e.lastSeenMs)],
      ['Heartbeat interval', this.extra.heartbeat ? `${this.extra.heartbeat} s` : '—'],
      ['Queue depth', String(i.queue_depth || 0)],
      ['Held while offline', String(i.held || 0)],
      ['Outstanding call', outstandingText(i.outstanding), i.outstanding ? fullTime(ms(i.outstanding.sent_at)) : ''],
      ['Frames in', counts(i.frames_in)],
      ['Frames out', counts(i.frames_out)],
    ];
    if (this.info.childElementCount !== rows.length * 2) {
      this.info.replaceChildren();
      for (const [k] of rows) this.info.append(el('dt', { text: k }), el('dd'));
    }
    const dds = this.info.querySelectorAll('dd');
    rows.forEach(([, v, title], n) => {
      setText(dds[n], v || '—');
      dds[n].title = title || '';
    });
  }

  addFrame(f, live) {
    const key = frameKey(f);
    if (this.keys.has(key)) return;
    this.keys.add(key);
    const dir = DIRECTION[f.direction] || { arrow: '·', label: f.direction };
    const t = ms(f.time);
    const pre = el('pre', { className: 'payload' });
    const details = el('details', {},
      el('summary', {},
        el('time', { className: 'f-time', text: clockMs(t), title: fullTime(t), attrs: { datetime: f.time || '' } }),
        el('span', { className: `f-dir ${f.direction}`, text: dir.arrow, title: dir.label, attrs: { 'aria-label': dir.label } }),
        el('span', { className: `f-type t-${f.type}`, text: f.type }),
        el('span', { className: 'f-action', text: f.action || '' }),
        el('span', { className: 'f-id', text: f.unique_id || '', title: 'unique id' }),
        el('span', { className: 'f-size', text: bytes(f.size || 0) + (f.truncated ? ' (cut at 1 KiB)' : '') }),
      ),
      pre,
    );
    details.addEventListener('toggle', () => {
      if (details.open && !pre.firstChild) pre.textContent = pretty(f);
    });
    const li = el('li', { className: `frame ${f.direction}${live ? ' fresh' : ''}`, dataset: { type: f.type, action: f.action || '', uid: f.unique_id || '' } },
      details,
      el('button', { className: 'btn small copy', text: 'Copy', title: 'Copy the frame as OCPP-J', attrs: { type: 'button' } }),
    );
    this.frames.set(li, f);
    this.list.prepend(li); // newest first
    while (this.list.childElementCount > MAX_FRAMES) {
      const last = this.list.lastElementChild;
      const old = this.frames.get(last);
      if (old) this.keys.delete(frameKey(old));
      this.frames.delete(last);
      last.remove();
    }
    this.empty.hidden = true;
  }

  async copy(btn) {
    const f = this.frames.get(btn.closest('li'));
    if (!f) return;
    const ok = await copyText(frameText(f));
    btn.textContent = ok ? 'Copied' : 'Copy failed';
    btn.classList.toggle('done', ok);
    clearTimeout(btn.resetTimer);
    btn.resetTimer = setTimeout(() => {
      btn.textContent = 'Copy';
      btn.classList.remove('done');
    }, 2000);
  }
}

function counts(c) {
  if (!c) return '—';
  return `${c.call} calls · ${c.callresult} results · ${c.callerror} errors`;
}
