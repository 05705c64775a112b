'use strict';
// Features beyond the walkthrough: presence, MQTT 5 Response Topic,
// validation of the charge point's calls, and commands held for an offline
// charge point (ocpp.dnstream.offline_ttl).
const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const WebSocket = require('ws');
const { RPCClient } = require('ocpp-rpc');
const { startServer } = require('../lib/server');
const { deadline, Inbox, connectMqtt, subscribe, connectCp, closeQuietly } = require('../lib/util');

const MS = 10000;
const isGatewayError = (j) => j && j.MessageTypeId === 4 && j.ErrorDetails && j.ErrorDetails.origin === 'gateway';
const isIsoTime = (s) => typeof s === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s));

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

/** Asserts a presence message of the documented shape. */
function assertPresence(m, { cid, state, reason }) {
  const j = m.json;
  assert.ok(j, `presence is not JSON: ${m.raw}`);
  const keys = ['at', 'cid', 'protocol', 'remote', 'state', ...(reason ? ['reason'] : [])].sort();
  assert.deepEqual(Object.keys(j).sort(), keys, m.raw);
  assert.equal(j.cid, cid, m.raw);
  assert.equal(j.state, state, m.raw);
  assert.equal(j.protocol, 'ocpp1.6', m.raw);
  assert.match(j.remote, /^127\.0\.0\.1:\d+$/, m.raw);
  assert.ok(isIsoTime(j.at), `at is not an RFC 3339 time: ${m.raw}`);
  if (reason) assert.equal(j.reason, reason, m.raw);
  return j;
}

test('presence: retained online on connect, offline/closed on close, retained for a new subscriber', { timeout: 30000 }, async (t) => {
  const cid = 'CP-PRES';
  const topic = `ocpp/presence/${cid}`;
  const watcher = await connectMqtt(server.mqttUrl, { clientId: 'presence-watcher', protocolVersion: 5 });
  t.after(() => closeQuietly(watcher));
  const inbox = new Inbox(watcher);
  // Retain As Published, so live deliveries show the retain flag the gateway set.
  await deadline(watcher.subscribeAsync('ocpp/presence/#', { qos: 1, rap: true }), MS, 'subscribe presence');

  const cp = await connectCp(server.ocppUrl, cid);
  t.after(() => closeQuietly(cp));
  const online = await inbox.next(topic, (j) => j && j.state === 'online', MS);
  const on = assertPresence(online, { cid, state: 'online' });
  assert.equal(online.packet.retain, true, 'online presence is retained');
  assert.equal(online.packet.qos, 1, 'presence QoS');

  await deadline(cp.close({ code: 1000, reason: 'bye' }), MS, 'close the charge point');
  const offline = await inbox.next(topic, (j) => j && j.state === 'offline', MS);
  const off = assertPresence(offline, { cid, state: 'offline', reason: 'closed' });
  assert.equal(offline.packet.retain, true, 'offline presence is retained');
  assert.equal(off.remote, on.remote, 'same connection');
  assert.ok(Date.parse(off.at) >= Date.parse(on.at), `offline at ${off.at} before online at ${on.at}`);

  // A subscriber arriving later gets the retained offline state.
  const late = await connectMqtt(server.mqttUrl, { clientId: 'presence-late' });
  t.after(() => closeQuietly(late));
  const lateInbox = new Inbox(late);
  await subscribe(late, [topic], 1);
  const retained = await lateInbox.next(topic, () => true, MS);
  assert.equal(retained.packet.retain, true, 'delivered as retained');
  assert.deepEqual(retained.json, off, 'the retained message is the last state');
});

test('MQTT 5 Response Topic: the answer (and a gateway error) also go to the Response Topic with the Correlation Data', { timeout: 30000 }, async (t) => {
  const cid = 'CP-RT';
  const reply = `ocpp/cp/${cid}/Reply`;
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'rt-csms', protocolVersion: 5 });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, ['csms/r/1', reply], 1);

  const cp = await connectCp(server.ocppUrl, cid);
  t.after(() => closeQuietly(cp));
  cp.handle('RemoteStartTransaction', () => ({ status: 'Accepted' }));

  const cmd = { MessageTypeId: 2, UniqueId: 'rt-1', Action: 'RemoteStartTransaction', Payload: { connectorId: 1, idTag: 'T1' } };
  await deadline(csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify(cmd), {
    qos: 1, properties: { responseTopic: 'csms/r/1', correlationData: Buffer.from('corr-1') },
  }), MS, 'PUBACK');
  const want = { MessageTypeId: 3, UniqueId: 'rt-1', Action: 'RemoteStartTransaction', Payload: { status: 'Accepted' } };
  const viaRt = await inbox.next('csms/r/1', (j) => j && j.UniqueId === 'rt-1', MS);
  assert.deepEqual(viaRt.json, want);
  assert.ok(viaRt.packet.properties && Buffer.isBuffer(viaRt.packet.properties.correlationData), `no correlationData: ${JSON.stringify(viaRt.packet.properties)}`);
  assert.equal(viaRt.packet.properties.correlationData.toString(), 'corr-1');
  const viaReply = await inbox.next(reply, (j) => j && j.UniqueId === 'rt-1', MS);
  assert.deepEqual(viaReply.json, want);

  // A command refused by the gateway: its gateway error is the final message, there too.
  const bad = { MessageTypeId: 2, UniqueId: 'rt-2', Action: 'RemoteStartTransaction', Payload: { connectorId: 1 } };
  await assert.rejects(
    deadline(csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify(bad), {
      qos: 1, properties: { responseTopic: 'csms/r/1', correlationData: Buffer.from('corr-2') },
    }), MS, 'PUBACK'),
    (e) => { assert.equal(e.code, 0x99, e.message); return true; },
  );
  const errRt = await inbox.next('csms/r/1', (j) => j && j.UniqueId === 'rt-2', MS);
  assert.ok(isGatewayError(errRt.json), errRt.raw);
  assert.equal(errRt.json.ErrorCode, 'OccurenceConstraintViolation', errRt.raw);
  assert.equal(errRt.json.ErrorDetails.reason, 'invalid_payload', errRt.raw);
  assert.equal(errRt.packet.properties.correlationData.toString(), 'corr-2');
  const errReply = await inbox.next(reply, (j) => j && j.UniqueId === 'rt-2', MS);
  assert.deepEqual(errReply.json, errRt.json);
});

test('validation of charge point calls: constraint violations, NotSupported, NotImplemented; nothing published', { timeout: 30000 }, async (t) => {
  const cid = 'CP-VAL';
  const up = `ocpp/cp/${cid}`;
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'val-csms' });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, [up], 1);

  // A raw socket: ocpp-rpc's strict mode would refuse to send these.
  const ws = new WebSocket(`${server.ocppUrl}/${cid}`, ['ocpp1.6']);
  t.after(() => ws.terminate());
  ws.on('error', () => {});
  await deadline(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), MS, 'connect');
  const frames = new Map();
  const waiting = new Map();
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString());
    if (waiting.has(f[1])) waiting.get(f[1])(f);
    else frames.set(f[1], f);
  });
  const call = (id, action, payload) => {
    const p = frames.has(id) ? Promise.resolve(frames.get(id)) : new Promise((r) => waiting.set(id, r));
    ws.send(JSON.stringify([2, id, action, payload]));
    return deadline(p, MS, `answer to ${id}`);
  };

  const boot = await call('v1', 'BootNotification', { chargePointVendor: 'Acme' });
  assert.equal(boot.length, 5, JSON.stringify(boot));
  assert.deepEqual(boot.slice(0, 4), [4, 'v1', 'OccurenceConstraintViolation', 'chargePointModel: required']);
  assert.ok(Array.isArray(boot[4].violations) && boot[4].violations.length === 1, JSON.stringify(boot));
  const [v] = boot[4].violations;
  assert.equal(v.field, 'chargePointModel');
  assert.equal(v.rule, 'required');
  assert.equal(typeof v.message, 'string');

  // One example of each other class, with its 1.6 code.
  const classes = [
    ['v2', 'StatusNotification', { connectorId: '1', errorCode: 'NoError', status: 'Available' }, 'TypeConstraintViolation', 'connectorId'],
    ['v3', 'StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Sleeping' }, 'PropertyConstraintViolation', 'status'],
    ['v4', 'Authorize', { idTag: 'x'.repeat(21) }, 'PropertyConstraintViolation', 'idTag'],
    ['v5', 'Heartbeat', { extra: 1 }, 'FormationViolation', 'extra'],
  ];
  for (const [id, action, payload, code, field] of classes) {
    const f = await call(id, action, payload);
    assert.equal(f[0], 4, JSON.stringify(f));
    assert.equal(f[2], code, `${action} ${JSON.stringify(payload)}: ${JSON.stringify(f)}`);
    assert.match(f[3], new RegExp(`^${field}\\b`), JSON.stringify(f));
    assert.equal(f[4].violations[0].field, field, JSON.stringify(f));
  }

  const reset = await call('v6', 'Reset', { type: 'Hard' });
  assert.deepEqual([reset[0], reset[1], reset[2]], [4, 'v6', 'NotSupported'], JSON.stringify(reset));
  const unknown = await call('v7', 'FooBar', {});
  assert.deepEqual([unknown[0], unknown[1], unknown[2]], [4, 'v7', 'NotImplemented'], JSON.stringify(unknown));

  // Frames of one charge point are handled in order: once a valid call sent
  // last is published, a refused one published earlier would have arrived.
  ws.send(JSON.stringify([2, 'v8', 'Heartbeat', {}]));
  await inbox.next(up, (j) => j && j.UniqueId === 'v8', MS);
  assert.deepEqual(inbox.seen.map((m) => m.json && m.json.UniqueId), ['v8'], 'only the valid call was published');

  // An ocpp-rpc charge point (strict mode lets a valid Reset out) sees NotSupported as an RPC error.
  const cp = await connectCp(server.ocppUrl, 'CP-VAL-RPC');
  t.after(() => closeQuietly(cp));
  await assert.rejects(deadline(cp.call('Reset', { type: 'Soft' }), MS, 'Reset call'), (e) => {
    assert.equal(e.rpcErrorCode, 'NotSupported', e.message);
    return true;
  });
});

test('offline_ttl: commands for a charge point that is not connected are acked, held, and delivered in order on connect', { timeout: 30000 }, async (t) => {
  const held = await startServer({ config: 'ocpp:\n  dnstream:\n    offline_ttl: 30s\n' });
  let csms;
  let cp;
  // Clients first, then the server (which must exit 0).
  t.after(async () => {
    await closeQuietly(cp);
    await closeQuietly(csms);
    await held.stop();
  });
  const cid = 'CP9';
  const reply = `ocpp/cp/${cid}/Reply`;
  csms = await connectMqtt(held.mqttUrl, { clientId: 'hold-csms', protocolVersion: 5 });
  const inbox = new Inbox(csms);
  await subscribe(csms, [reply], 1);

  const cmds = [
    { MessageTypeId: 2, UniqueId: 'h1', Action: 'ChangeAvailability', Payload: { connectorId: 1, type: 'Inoperative' } },
    { MessageTypeId: 2, UniqueId: 'h2', Action: 'RemoteStopTransaction', Payload: { transactionId: 7 } },
  ];
  for (const c of cmds) {
    // Resolves only on a successful PUBACK (reason code < 0x80).
    await deadline(csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify(c), { qos: 1 }), MS, `PUBACK ${c.UniqueId}`);
  }

  const received = [];
  cp = new RPCClient({ endpoint: held.ocppUrl, identity: cid, protocols: ['ocpp1.6'], strictMode: true, reconnect: false });
  cp.handle('ChangeAvailability', ({ params, messageId }) => { received.push([messageId, params]); return { status: 'Scheduled' }; });
  cp.handle('RemoteStopTransaction', ({ params, messageId }) => { received.push([messageId, params]); return { status: 'Accepted' }; });
  await deadline(cp.connect(), MS, `OCPP connect ${cid}`);

  const r1 = await inbox.next(reply, (j) => j && j.UniqueId === 'h1', MS);
  assert.deepEqual(r1.json, { MessageTypeId: 3, UniqueId: 'h1', Action: 'ChangeAvailability', Payload: { status: 'Scheduled' } });
  const r2 = await inbox.next(reply, (j) => j && j.UniqueId === 'h2', MS);
  assert.deepEqual(r2.json, { MessageTypeId: 3, UniqueId: 'h2', Action: 'RemoteStopTransaction', Payload: { status: 'Accepted' } });
  assert.deepEqual(received, [['h1', cmds[0].Payload], ['h2', cmds[1].Payload]], 'delivered once each, in order');
  assert.deepEqual(inbox.seen.filter((m) => isGatewayError(m.json)).map((m) => m.raw), [], 'no gateway error (offline)');
});
