// Small helpers shared by the page's modules: building DOM nodes from
// untrusted text (always textContent, never markup), formatting times and
// calling the admin API.

/**
 * el builds an element. props: className, text (textContent), title,
 * dataset (object), attrs (object, set with setAttribute) and on (object of
 * listeners). Children are nodes or strings (added as text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  if (props.title) node.title = props.title;
  if (props.dataset) Object.assign(node.dataset, props.dataset);
  if (props.attrs) for (const [k, v] of Object.entries(props.attrs)) node.setAttribute(k, v);
  if (props.on) for (const [k, v] of Object.entries(props.on)) node.addEventListener(k, v);
  for (const c of children) node.append(c);
  return node;
}

/** setText changes a node's text only when it differs (no layout work otherwise). */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** ms parses an RFC 3339 time (Go's, with nanoseconds) to epoch milliseconds; 0 when absent or zero. */
export function ms(iso) {
  if (!iso) return 0;
  const t = Date.parse(iso);
  // Go's zero time (year 1) means "never".
  return Number.isFinite(t) && t > 946684800000 ? t : 0;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** clock formats a time as HH:MM:SS today, else YYYY-MM-DD HH:MM (local time). */
export function clock(t) {
  if (!t) return '—';
  const d = new Date(t);
  const now = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms.slice(0, 5)}`;
}

/** clockMs is clock with milliseconds (frame times). */
export function clockMs(t) {
  if (!t) return '—';
  const d = new Date(t);
  return `${clock(t)}.${pad(d.getMilliseconds(), 3)}`;
}

/** fullTime is a tooltip: the local date and time and the ISO form. */
export function fullTime(t) {
  return t ? `${new Date(t).toLocaleString()} (${new Date(t).toISOString()})` : '';
}

/** ago says how long ago t was, coarsely (for the detail pane). */
export function ago(t, now = Date.now()) {
  if (!t) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** bytes formats a size. */
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
}

/** sum adds a map's numbers (the stats' counters by reason). */
export function sum(m) {
  let n = 0;
  for (const v of Object.values(m || {})) if (typeof v === 'number') n += v;
  return n;
}

/** nonZero lists a map's non-zero counters as "reason: n" lines, largest first. */
export function nonZero(m) {
  return Object.entries(m || {})
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

/** APIError is a failed API call: the HTTP status and the server's message. */
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * api calls the admin API (a path relative to the page, so the page also
 * works behind a proxy that adds a prefix) and returns the decoded JSON.
 */
export async function api(path, { method = 'GET', signal } = {}) {
  let res;
  try {
    res = await fetch(path, { method, signal, cache: 'no-store', credentials: 'same-origin', headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new APIError(0, 'the server cannot be reached');
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new APIError(res.status, (body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

/** enc is a path segment (a charge point or client id) for an API URL. */
export const enc = encodeURIComponent;
