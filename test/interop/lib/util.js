'use strict';
// Small helpers shared by the tests: deadlines, an MQTT inbox that waits for a
// matching message, and connect helpers for mqtt.js and ocpp-rpc clients.

/** Resolves/rejects like p, or rejects with msg (a string or a function giving one) after ms. */
function deadline(p, ms, msg) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${typeof msg === 'function' ? msg() : msg} (deadline ${ms} ms)`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Waits for one `event` on emitter, with a deadline. Resolves to the first argument. */
function onceWithin(emitter, event, ms, msg) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (arg) => resolve(arg);
    emitter.once(event, handler);
  });
  return deadline(p, ms, msg || `no '${event}' event`).finally(() => emitter.removeListener(event, handler));
}

function topicMatches(filter, topic) {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Collects every message an mqtt.js client receives. next() returns (and
 * removes) the first buffered or future message matching topic filter and
 * predicate, or rejects at its deadline listing what did arrive.
 */
class Inbox {
  constructor(client) {
    this.messages = [];
    this.waiters = [];
    this.seen = []; // everything, never removed (for "nothing else arrived" checks)
    client.on('message', (topic, payload, packet) => {
      const raw = payload.toString('utf8');
      let json;
      try {
        json = JSON.parse(raw);
      } catch {
        json = undefined;
      }
      const m = { topic, raw, json, packet };
      this.seen.push(m);
      for (let i = 0; i < this.waiters.length; i++) {
        const w = this.waiters[i];
        if (w.match(m)) {
          this.waiters.splice(i, 1);
          w.resolve(m);
          return;
        }
      }
      this.messages.push(m);
    });
  }

  next(filter, pred = () => true, ms = 10000) {
    const match = (m) => topicMatches(filter, m.topic) && pred(m.json, m);
    const idx = this.messages.findIndex(match);
    if (idx >= 0) return Promise.resolve(this.messages.splice(idx, 1)[0]);
    let waiter;
    const p = new Promise((resolve) => {
      waiter = { match, resolve };
      this.waiters.push(waiter);
    });
    return deadline(p, ms, `no MQTT message on ${filter} matching ${pred.toString()}; got ${JSON.stringify(this.seen.slice(-10).map((m) => [m.topic, m.raw]))}`)
      .finally(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
      });
  }
}

/** Connects mqtt.js (no reconnects) and fails within the deadline. */
async function connectMqtt(url, opts = {}, ms = 10000) {
  const mqtt = require('mqtt');
  const client = await deadline(mqtt.connectAsync(url, {
    reconnectPeriod: 0,
    connectTimeout: ms,
    clean: true,
    ...opts,
  }), ms, `MQTT connect to ${url}`);
  return client;
}

/** Subscribes and checks every grant is a success code. */
async function subscribe(client, filters, qos = 1) {
  const granted = await deadline(client.subscribeAsync(filters, { qos }), 10000, `subscribe ${filters}`);
  for (const g of granted) {
    if (g.qos > 2) throw new Error(`subscription to ${g.topic} refused: ${JSON.stringify(g)}`);
  }
  return granted;
}

/** An ocpp-rpc charge point: strict mode, ocpp1.6, no reconnects. */
async function connectCp(ocppUrl, identity, opts = {}, ms = 10000) {
  const { RPCClient } = require('ocpp-rpc');
  const cp = new RPCClient({
    endpoint: ocppUrl,
    identity,
    protocols: ['ocpp1.6'],
    strictMode: true,
    reconnect: false,
    ...opts,
  });
  await deadline(cp.connect(), ms, `OCPP connect ${identity}`);
  return cp;
}

async function closeQuietly(thing) {
  if (!thing) return;
  try {
    if (typeof thing.endAsync === 'function') await deadline(thing.endAsync(true), 5000, 'mqtt end');
    else if (typeof thing.close === 'function') await deadline(Promise.resolve(thing.close({ force: true })), 5000, 'close');
  } catch {
    /* cleanup only */
  }
}

module.exports = { deadline, onceWithin, topicMatches, Inbox, connectMqtt, subscribe, connectCp, closeQuietly };
