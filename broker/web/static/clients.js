// The live table of connected charge points. The data is a Map cid →
// Entry kept current by events; the DOM is updated once per animation
// frame, only for the entries that changed, and a sorted, filtered list is
// rendered in chunks so that thousands of rows never block the page.
import { el, setText, ms, clock, fullTime } from './util.js';

/** The columns, in order, with what sorts them. */
const COLUMNS = [
  { key: 'cid', label: 'Charge point' },
  { key: 'protocol', label: 'Protocol' },
  { key: 'remote', label: 'Remote' },
  { key: 'connected_at', label: 'Connected since' },
  { key: 'last_seen', label: 'Last seen' },
  { key: 'queue_depth', label: 'Queue' },
  { key: 'outstanding', label: 'Outstanding' },
];

const FIRST_CHUNK = 200; // rows in the first frame of a full render
const CHUNK = 500; // rows per frame after it

function cmpStr(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The primary comparison of two entries on a key (ties go to the cid). */
const PRIMARY = {
  cid: () => 0,
  protocol: (a, b) => cmpStr(a.info.protocol || '', b.info.protocol || ''),
  remote: (a, b) => cmpStr(a.info.remote || '', b.info.remote || ''),
  connected_at: (a, b) => a.connectedMs - b.connectedMs,
  last_seen: (a, b) => a.lastSeenMs - b.lastSeenMs,
  queue_depth: (a, b) => (a.info.queue_depth || 0) + (a.info.held || 0) - (b.info.queue_depth || 0) - (b.info.held || 0),
  // Waiting longest first; charge points with nothing outstanding last.
  outstanding: (a, b) => (a.outstandingMs || Infinity) - (b.outstandingMs || Infinity),
};

/** Entry is one charge point: its data and, once rendered, its row. */
class Entry {
  constructor(info) {
    this.cid = info.cid;
    this.cidLower = info.cid.toLowerCase();
    this.tr = null;
    this.cells = null;
    this.inView = false;
    this.removed = false;
    this.sortChanged = false;
    this.set(info);
  }

  set(info) {
    this.info = info;
    this.connectedMs = ms(info.connected_at);
    this.lastSeenMs = ms(info.last_seen);
    this.outstandingMs = info.outstanding ? ms(info.outstanding.sent_at) || 1 : 0;
  }
}

/** outstandingText is the outstanding call as the table shows it. */
export function outstandingText(o) {
  return o ? `${o.action || '?'} · ${o.unique_id}` : '—';
}

export class ClientTable {
  /**
   * tbody: the table body; thead: its head (sort buttons); onChange(entry)
   * is told after an entry's row was updated (for the detail pane);
   * onCount({total, shown}) after each flush.
   */
  constructor({ tbody, thead, onChange, onCount, onFocusLost }) {
    this.tbody = tbody;
    this.onFocusLost = onFocusLost || (() => {});
    this.thead = thead;
    this.onChange = onChange || (() => {});
    this.onCount = onCount || (() => {});
    this.entries = new Map();
    this.pending = new Map(); // cid → Entry changed since the last flush
    this.view = []; // the filtered entries, sorted
    this.rendered = 0; // view[0..rendered) are in tbody, in order
    this.filter = '';
    this.selected = null; // the cid the detail pane shows
    this.sortKey = 'cid';
    this.sortDir = 1;
    this.rebuild = true;
    this.frameRequested = false;
    this.cmp = (a, b) => this.sortDir * (PRIMARY[this.sortKey](a, b) || cmpStr(a.cid, b.cid));
    thead.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button.sort');
      if (btn) this.sortBy(btn.dataset.key);
    });
    this.paintSort();
  }

  // --- data: called for list snapshots and events ---------------------

  /** replaceAll takes a fresh list of every connected charge point. */
  replaceAll(list) {
    const seen = new Set();
    for (const info of list) {
      seen.add(info.cid);
      const e = this.entries.get(info.cid);
      if (e) e.set(info);
      else this.entries.set(info.cid, new Entry(info));
    }
    for (const [cid, e] of this.entries) {
      if (!seen.has(cid)) {
        this.entries.delete(cid);
        e.removed = true;
        this.onChange(e);
      }
    }
    for (const e of this.entries.values()) this.onChange(e);
    this.rebuild = true;
    this.schedule();
  }

  /**
   * connected applies a connected event. A session already known (the same
   * connected_at, e.g. an event replayed after a list that has it) keeps the
   * fresher data it has; an older one is ignored.
   */
  connected(info) {
    let e = this.entries.get(info.cid);
    if (e) {
      const t = ms(info.connected_at);
      if (t <= e.connectedMs) return;
      e.set(info);
      e.sortChanged = true;
    } else {
      const old = this.pending.get(info.cid);
      if (old && old.removed) {
        e = old;
        e.removed = false;
        e.set(info);
        e.sortChanged = true;
      } else {
        e = new Entry(info);
      }
      this.entries.set(info.cid, e);
    }
    this.touch(e);
  }

  /** disconnected applies a disconnected event; one older than the session it would end is ignored. */
  disconnected(cid, time) {
    const e = this.entries.get(cid);
    if (!e) return;
    if (ms(time) && ms(time) < e.connectedMs) return;
    this.entries.delete(cid);
    e.removed = true;
    e.reason = '';
    this.touch(e);
  }

  /**
   * frame applies a frame event: "last seen" for a frame from the charge
   * point; the outstanding call for a CALL to it and the answer to that
   * CALL. replay marks an event that may already be in the list it follows
   * (counters are then not incremented). It returns the entry, or null.
   */
  frame(cid, f, replay) {
    const e = this.entries.get(cid);
    if (!e) return null;
    const t = ms(f.time);
    const info = e.info;
    if (f.direction === 'in') {
      if (t > e.lastSeenMs) {
        info.last_seen = f.time;
        e.lastSeenMs = t;
        if (this.sortKey === 'last_seen') e.sortChanged = true;
      }
      if ((f.type === 'callresult' || f.type === 'callerror') && info.outstanding && info.outstanding.unique_id === f.unique_id) {
        info.outstanding = null;
        e.outstandingMs = 0;
        if (this.sortKey === 'outstanding') e.sortChanged = true;
      }
    } else if (f.type === 'call') {
      info.outstanding = { action: f.action || '', unique_id: f.unique_id || '', sent_at: f.time };
      e.outstandingMs = t || 1;
      if (this.sortKey === 'outstanding') e.sortChanged = true;
    }
    if (!replay) {
      const counts = f.direction === 'in' ? info.frames_in : info.frames_out;
      if (counts && f.type in counts) counts[f.type]++;
    }
    this.touch(e);
    return e;
  }

  /** update merges fresh data for a connected charge point (a detail fetch) when it is the same session. */
  update(info) {
    const e = this.entries.get(info.cid);
    if (!e || ms(info.connected_at) !== e.connectedMs) return;
    const { frames, heartbeat_interval_seconds: hb, ...rest } = info;
    // Keep whichever "last seen" is newer: events may have overtaken the fetch.
    if (ms(rest.last_seen) < e.lastSeenMs) rest.last_seen = e.info.last_seen;
    e.set(rest);
    e.sortChanged = true;
    this.touch(e);
  }

  get(cid) {
    return this.entries.get(cid);
  }

  /** select marks the row of the charge point the detail pane shows (null: none). */
  select(cid) {
    const old = this.selected && this.entries.get(this.selected);
    if (old && old.tr) old.tr.removeAttribute('aria-current');
    this.selected = cid;
    const e = cid && this.entries.get(cid);
    if (e && e.tr) e.tr.setAttribute('aria-current', 'true');
  }

  get size() {
    return this.entries.size;
  }

  // --- view: filter and sort --------------------------------------------

  setFilter(text) {
    const f = text.trim().toLowerCase();
    if (f === this.filter) return;
    this.filter = f;
    this.rebuild = true;
    this.schedule();
  }

  sortBy(key) {
    if (!(key in PRIMARY)) return;
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else {
      this.sortKey = key;
      this.sortDir = 1;
    }
    this.paintSort();
    this.rebuild = true;
    this.schedule();
  }

  paintSort() {
    for (const th of this.thead.querySelectorAll('th[data-key]')) {
      if (th.dataset.key === this.sortKey) th.setAttribute('aria-sort', this.sortDir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  matches(e) {
    return !this.filter || e.cidLower.includes(this.filter);
  }

  /** visibleCids is the sorted, filtered list of ids (what the table shows once rendered). */
  visibleCids() {
    return this.view.map((e) => e.cid);
  }

  // --- rendering ----------------------------------------------------------

  touch(e) {
    this.pending.set(e.cid, e);
    this.schedule();
  }

  schedule() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frameRequested = false;
    if (this.rebuild) {
      this.rebuild = false;
      for (const e of this.pending.values()) if (e.removed || !this.entries.has(e.cid)) this.onChange(e);
      this.pending.clear();
      this.rebuildView();
    } else {
      const changed = [...this.pending.values()];
      this.pending.clear();
      for (const e of changed) {
        const want = !e.removed && this.matches(e);
        if (e.inView && (!want || e.sortChanged)) this.removeFromView(e);
        e.sortChanged = false;
        if (want && !e.inView) this.insertIntoView(e);
        if (e.inView && e.tr && e.tr.parentNode === this.tbody) this.paintRow(e);
        this.onChange(e);
      }
    }
    this.renderChunk();
    this.onCount({ total: this.entries.size, shown: this.view.length, filtered: this.filter !== '' });
  }

  rebuildView() {
    for (const e of this.view) e.inView = false;
    const view = [];
    for (const e of this.entries.values()) {
      e.sortChanged = false;
      if (this.matches(e)) {
        e.inView = true;
        view.push(e);
      }
    }
    view.sort(this.cmp);
    this.view = view;
    this.rendered = 0;
    this.tbody.replaceChildren();
  }

  /** insertIntoView puts e at its sorted place (binary search) and renders it if its place is rendered. */
  insertIntoView(e) {
    const v = this.view;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cmp(v[mid], e) <= 0) lo = mid + 1;
      else hi = mid;
    }
    const wasComplete = this.rendered === v.length;
    v.splice(lo, 0, e);
    e.inView = true;
    if (lo < this.rendered || (lo === this.rendered && wasComplete)) {
      const next = v[lo + 1];
      this.tbody.insertBefore(this.row(e), next && next.tr && next.tr.parentNode === this.tbody ? next.tr : null);
      this.rendered++;
      this.paintRow(e);
    }
  }

  removeFromView(e) {
    const i = this.view.indexOf(e);
    e.inView = false;
    if (i < 0) return;
    this.view.splice(i, 1);
    if (i < this.rendered) {
      this.rendered--;
      if (e.tr) {
        // A row that goes away (a kick, a disconnect) while it has the
        // focus hands it to its neighbour, so that the keyboard is not lost.
        const focused = e.tr.contains(document.activeElement);
        const next = focused && (e.tr.nextElementSibling || e.tr.previousElementSibling);
        e.tr.remove();
        if (next) next.querySelector('.cid-link').focus();
        else if (focused) this.onFocusLost();
      }
    }
  }

  renderChunk() {
    const v = this.view;
    if (this.rendered >= v.length) return;
    const end = Math.min(v.length, this.rendered + (this.rendered === 0 ? FIRST_CHUNK : CHUNK));
    const frag = document.createDocumentFragment();
    for (let i = this.rendered; i < end; i++) {
      const e = v[i];
      frag.append(this.row(e));
      this.paintRow(e);
    }
    this.tbody.append(frag);
    this.rendered = end;
    if (end < v.length) this.schedule();
  }

  /** row returns e's row, made once. */
  row(e) {
    if (e.tr) return e.tr;
    const cells = {};
    // Explicit roles: the CSS lays the rows out as grids, not as a table.
    const tr = el('tr', { dataset: { cid: e.cid }, attrs: { role: 'row' } });
    for (const c of COLUMNS) {
      const td = el('td', { className: `col-${c.key}`, dataset: { label: c.label }, attrs: { role: 'cell' } });
      if (c.key === 'cid') {
        const b = el('button', { className: 'cid-link', text: e.cid, attrs: { type: 'button', 'aria-haspopup': 'dialog' } });
        td.append(b);
        cells.cid = b;
      } else {
        cells[c.key] = td;
      }
      tr.append(td);
    }
    const kick = el('button', { className: 'btn small danger kick', text: 'Kick', attrs: { type: 'button', 'aria-label': `Kick ${e.cid}` } });
    tr.append(el('td', { className: 'col-actions', attrs: { role: 'cell' } }, kick));
    if (this.selected === e.cid) tr.setAttribute('aria-current', 'true');
    e.tr = tr;
    e.cells = cells;
    e.shown = {};
    return tr;
  }

  /** paintRow writes the cells whose text changed. */
  paintRow(e) {
    const i = e.info;
    const c = e.cells;
    const s = e.shown;
    // title() is only called for a cell whose text changed (formatting a
    // tooltip's date costs more than the rest of the row).
    const put = (key, text, title) => {
      if (s[key] === text) return;
      s[key] = text;
      setText(c[key], text);
      if (title) c[key].title = title();
    };
    put('protocol', i.protocol || '');
    put('remote', i.remote || '');
    put('connected_at', clock(e.connectedMs), () => fullTime(e.connectedMs));
    put('last_seen', clock(e.lastSeenMs), () => fullTime(e.lastSeenMs));
    put('queue_depth', String(i.queue_depth || 0) + (i.held ? ` +${i.held} held` : ''));
    put('outstanding', outstandingText(i.outstanding), () => (i.outstanding ? `sent ${fullTime(e.outstandingMs)}` : ''));
    c.outstanding.classList.toggle('waiting', !!i.outstanding);
  }
}
