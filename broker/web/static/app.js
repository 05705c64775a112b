// The Clients page: the charge points connected now, kept live from the
// admin API's event stream (GET /api/v1/events), with a detail pane per
// charge point and a tab of MQTT clients. No build step, nothing fetched
// from elsewhere; every text from the server goes in as textContent.
import { setText, sum, nonZero, api, enc } from './util.js';
import { ClientTable } from './clients.js';
import { DetailPane } from './detail.js';
import { KickDialog } from './kick.js';
import { MqttTab } from './mqtt.js';

const $ = (id) => document.getElementById(id);

const STATS_EVERY_MS = 2000; // at most one stats refresh per this, driven by events
const STATS_IDLE_MS = 15000; // and one this often anyway (refusals come without events)
const STALE_PER_REFRESH = 16; // charge points refetched per stats refresh (queue depth)
const PAGE = 10000; // the API's largest page
const MAX_BUFFER = 100000; // events buffered while the list loads; more means refetch again

// --- banner and live state --------------------------------------------

const banners = new Map(); // source → message
function banner(source, message) {
  if (message) banners.set(source, message);
  else banners.delete(source);
  const b = $('banner');
  b.hidden = banners.size === 0;
  setText(b, [...banners.values()].join(' '));
}

function live(state, text) {
  const l = $('live');
  l.dataset.state = state;
  setText(l, text);
  document.body.dataset.state = state;
}

// --- the table, the pane, the dialog, the MQTT tab ----------------------

const table = new ClientTable({
  tbody: $('clients-body'),
  thead: $('clients').tHead,
  onChange: (e) => detail.changed(e),
  onFocusLost: () => $('filter').focus(),
  onCount: ({ total, shown, filtered }) => {
    setText($('count-connected'), String(total));
    setText($('shown'), filtered ? `${shown} of ${total} shown` : '');
    $('clients-empty').hidden = shown > 0 || document.body.dataset.state === 'loading';
    setText($('clients-empty'), filtered && total > 0 ? 'No charge point matches.' : 'No charge points connected.');
  },
});

const kickDialog = new KickDialog($('kick-dialog'));

function askKickCP(cid) {
  kickDialog.ask({
    name: cid,
    text: 'The charge point is closed with WebSocket code 1000 "kicked". It may reconnect at once, unless its reconnects are refused for a while.',
    withBlock: true,
    action: async (block) => {
      await api(`api/v1/clients/${enc(cid)}${block ? `?block=${block}` : ''}`, { method: 'DELETE' });
      statsSoon();
    },
  });
}

const detail = new DetailPane({
  root: $('detail'),
  table,
  onKick: askKickCP,
  onClose: (cid) => {
    // Back to where the pane was opened from, if that row is still there.
    const e = table.get(cid);
    const target = e && e.tr && e.tr.isConnected ? e.tr.querySelector('.cid-link') : $('filter');
    target.focus();
  },
});

const mqttTab = new MqttTab({
  tbody: $('mqtt-body'),
  empty: $('mqtt-empty'),
  shown: $('mqtt-shown'),
  refresh: $('mqtt-refresh'),
  onError: (m) => banner('mqtt', m),
  onKick: (id) => kickDialog.ask({
    name: id,
    text: 'The MQTT client is disconnected (MQTT 5: reason 0x98, administrative action). It may reconnect at once.',
    withBlock: false,
    action: (/* block */) => mqttTab.kick(id),
    refocus: () => $('mqtt-refresh').focus(),
  }),
});

// Rows: a click anywhere opens the pane (the id is a button, so Enter on
// it does too); Kick asks first; arrow keys move between rows.
const tbody = $('clients-body');
tbody.addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr');
  if (!tr) return;
  const cid = tr.dataset.cid;
  if (ev.target.closest('button.kick')) askKickCP(cid);
  else detail.open(cid);
});
tbody.addEventListener('keydown', (ev) => {
  if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') return;
  const tr = ev.target.closest('tr');
  const next = tr && (ev.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling);
  if (next) {
    ev.preventDefault();
    next.querySelector('.cid-link').focus();
  }
});

$('filter').addEventListener('input', (ev) => table.setFilter(ev.target.value));

document.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Escape' || kickDialog.isOpen) return; // the dialog closes itself
  if (detail.isOpen) {
    ev.preventDefault();
    detail.close();
  }
});

// --- tabs -----------------------------------------------------------------

const tabs = [$('tab-ocpp'), $('tab-mqtt')];
function selectTab(tab, focus) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
  const hash = tab.id === 'tab-mqtt' ? '#mqtt' : '';
  if (location.hash !== hash) history.replaceState(null, '', hash || location.pathname + location.search);
  if (tab.id === 'tab-mqtt') {
    detail.close();
    mqttTab.refresh();
  }
}
for (const t of tabs) t.addEventListener('click', () => selectTab(t, false));
$('tab-ocpp').parentElement.addEventListener('keydown', (ev) => {
  const i = tabs.indexOf(document.activeElement);
  if (i < 0) return;
  let j = -1;
  if (ev.key === 'ArrowRight') j = (i + 1) % tabs.length;
  else if (ev.key === 'ArrowLeft') j = (i + tabs.length - 1) % tabs.length;
  else if (ev.key === 'Home') j = 0;
  else if (ev.key === 'End') j = tabs.length - 1;
  if (j >= 0) {
    ev.preventDefault();
    selectTab(tabs[j], true);
  }
});

// --- counters -------------------------------------------------------------

let statsTimer = null;
let lastStats = 0;
let statsBusy = false;
const stale = new Set(); // cids whose queue depth may have changed

/** statsSoon refreshes the counters within STATS_EVERY_MS, at most once per that. */
function statsSoon() {
  if (statsTimer !== null) return;
  statsTimer = setTimeout(refreshStats, Math.max(0, lastStats + STATS_EVERY_MS - Date.now()));
}

async function refreshStats() {
  statsTimer = null;
  if (statsBusy) {
    statsSoon();
    return;
  }
  statsBusy = true;
  lastStats = Date.now();
  try {
    const s = await api('api/v1/stats');
    const refused = s.ocpp && s.ocpp.refused;
    setText($('count-refused'), String(sum(refused)));
    setText($('count-errors'), String(sum(s.gateway_errors)));
    $('counter-refused').title = nonZero(refused) || 'No handshake refused';
    $('counter-errors').title = nonZero(s.gateway_errors) || 'No gateway error';
    banner('stats', '');
  } catch (err) {
    banner('stats', `Could not load the counters: ${err.message}`);
  }
  // Queue depths change without an event; refetch the charge points that
  // sent a command (a few per refresh), and those whose outstanding call
  // is old (it may have timed out).
  const now = Date.now();
  for (const e of table.entries.values()) {
    if (stale.size >= STALE_PER_REFRESH * 4) break;
    if (e.outstandingMs && now - e.outstandingMs > 30000) stale.add(e.cid);
  }
  const batch = [...stale].slice(0, STALE_PER_REFRESH);
  for (const cid of batch) stale.delete(cid);
  // The list endpoint with ?q= rather than /clients/{cid}: a charge point
  // that went away meanwhile is then simply not in the answer, not a 404
  // that the browser would log.
  await Promise.all(batch.filter((cid) => table.get(cid)).map(async (cid) => {
    try {
      const r = await api(`api/v1/clients?q=${enc(cid)}&limit=50`);
      const info = r.clients.find((c) => c.cid === cid);
      if (info) table.update(info);
    } catch {
      // Unavailable: the next refresh tries again for the next command.
    }
  }));
  statsBusy = false;
  if (stale.size) statsSoon();
}

setInterval(() => {
  if (!document.hidden) statsSoon();
}, STATS_IDLE_MS);

// --- the event stream -------------------------------------------------------

// The stream is opened first and the list fetched once it is open, so that
// nothing falls between the two. Events that arrive while the list loads
// are buffered and applied after it, in order; the table's rules make a
// replayed event that the list already holds harmless. An overflow (the
// stream fell behind and lost events) or a reconnect refetches the list.
let es = null;
let syncing = true;
let buffer = [];
let syncGen = 0;
let retryMs = 1000;
let suspended = false;

function apply(type, d, replay) {
  switch (type) {
    case 'connected':
      if (d.client) table.connected(d.client);
      break;
    case 'disconnected':
      table.disconnected(d.cid, d.time);
      break;
    case 'frame':
      if (d.frame) {
        table.frame(d.cid, d.frame, replay);
        if (!replay && d.frame.direction === 'out' && d.frame.type === 'call') stale.add(d.cid);
      }
      break;
    default:
  }
}

function onEvent(type, ev) {
  let d;
  try {
    d = JSON.parse(ev.data);
  } catch {
    return;
  }
  if (syncing) {
    if (buffer.length < MAX_BUFFER) buffer.push([type, d]);
  } else {
    apply(type, d, false);
  }
  statsSoon();
}

async function fetchAll() {
  const all = [];
  for (let page = 0, offset = 0; page < 100; page++) {
    const r = await api(`api/v1/clients?limit=${PAGE}&offset=${offset}`);
    all.push(...r.clients);
    offset += r.clients.length;
    if (r.clients.length === 0 || offset >= r.total) break;
  }
  return all;
}

async function resync() {
  const gen = ++syncGen;
  syncing = true;
  buffer = [];
  if (document.body.dataset.state !== 'loading') live('syncing', 'syncing…');
  let list;
  try {
    list = await fetchAll();
  } catch (err) {
    if (gen !== syncGen) return;
    banner('list', `Could not load the charge points: ${err.message}. Retrying…`);
    setTimeout(() => {
      if (gen === syncGen) resync();
    }, 3000);
    return;
  }
  if (gen !== syncGen) return; // a newer resync started meanwhile
  const overflowed = buffer.length >= MAX_BUFFER;
  table.replaceAll(list);
  for (const [type, d] of buffer) apply(type, d, true);
  buffer = [];
  syncing = false;
  banner('list', '');
  live('live', 'live');
  statsSoon();
  if (overflowed) resync();
}

function connect() {
  if (suspended) return;
  const source = new EventSource('api/v1/events');
  es = source;
  source.addEventListener('open', () => {
    retryMs = 1000;
    banner('stream', '');
    resync();
  });
  for (const type of ['connected', 'disconnected', 'frame']) {
    source.addEventListener(type, (ev) => onEvent(type, ev));
  }
  source.addEventListener('overflow', () => resync());
  source.addEventListener('error', () => {
    if (es !== source) return;
    syncing = true; // until the next open's resync
    buffer = [];
    syncGen++;
    if (source.readyState === EventSource.CLOSED) {
      // The server refused the stream (an HTTP error: too many streams,
      // credentials): EventSource gives up, so retry ourselves.
      live('offline', 'offline');
      banner('stream', `The live event stream is unavailable; retrying in ${Math.round(retryMs / 1000)} s.`);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    } else {
      live('reconnecting', 'reconnecting…');
    }
  });
}

// --- a page in the background lets its streams go ------------------------------

// Each stream keeps one of the six connections a browser opens to a server
// over HTTP/1.1; a page hidden for a minute closes its streams so that the
// pages in front keep theirs, and refetches the list when it is shown again.
const HIDDEN_MS = 60000;
let hiddenTimer = null;
document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    hiddenTimer = setTimeout(() => {
      suspended = true;
      const source = es;
      es = null;
      if (source) source.close();
      syncGen++;
      syncing = true;
      buffer = [];
      detail.suspend();
      live('paused', 'paused');
    }, HIDDEN_MS);
    return;
  }
  clearTimeout(hiddenTimer);
  if (suspended) {
    suspended = false;
    connect();
    detail.resume();
  }
  statsSoon();
});

// --- start ------------------------------------------------------------------

if (location.hash === '#mqtt') selectTab($('tab-mqtt'), false);
connect();
