'use strict';
// Test 3: gateway errors as an mqtt.js user sees them (Reply topic and MQTT 5 PUBACK codes).
const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const { startServer } = require('../lib/server');
const { deadline, Inbox, connectMqtt, subscribe, closeQuietly } = require('../lib/util');

const MS = 10000;
let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

/** Asserts a gateway error of the documented shape and returns it. */
function assertGatewayError(msg, { uniqueId, reason, errorCode, action }) {
  const j = msg.json;
  assert.ok(j, `gateway error is not JSON: ${msg.raw}`);
  assert.equal(j.MessageTypeId, 4, msg.raw);
  assert.equal(j.UniqueId, uniqueId, msg.raw);
  assert.equal(j.ErrorCode, errorCode, msg.raw);
  assert.equal(typeof j.ErrorDescription, 'string', msg.raw);
  assert.ok(j.ErrorDescription.length > 0, `empty ErrorDescription: ${msg.raw}`);
  // Action is the command's; when the command could not be read the binary
  // omits the key (the EMQX shape lists it; see README "Observations").
  if (action !== undefined) assert.equal(j.Action, action, msg.raw);
  else assert.ok(j.Action === undefined || typeof j.Action === 'string', msg.raw);
  assert.deepEqual(j.ErrorDetails, { origin: 'gateway', reason }, msg.raw);
  return j;
}

const isGatewayError = (j) => j && j.MessageTypeId === 4 && j.ErrorDetails && j.ErrorDetails.origin === 'gateway';

test('garbage on ocpp/cs/CP1 -> gateway error "malformed" on the Reply topic', { timeout: 30000 }, async (t) => {
  const c = await connectMqtt(server.mqttUrl, { clientId: 'ge-malformed' });
  t.after(() => closeQuietly(c));
  const inbox = new Inbox(c);
  await subscribe(c, ['ocpp/cp/CP1/Reply']);

  await c.publishAsync('ocpp/cs/CP1', 'this is { not json', { qos: 0 });
  const m = await inbox.next('ocpp/cp/CP1/Reply', isGatewayError, MS);
  assertGatewayError(m, { uniqueId: '', reason: 'malformed', errorCode: 'FormationViolation' });

  // JSON of the wrong shape (array instead of the object form) is malformed too.
  await c.publishAsync('ocpp/cs/CP1', JSON.stringify([2, 'm2', 'Reset', { type: 'Soft' }]), { qos: 1 });
  const m2 = await inbox.next('ocpp/cp/CP1/Reply', isGatewayError, MS);
  assertGatewayError(m2, { uniqueId: '', reason: 'malformed', errorCode: 'FormationViolation' });
});

test('command for an offline charge point -> gateway error "offline"', { timeout: 30000 }, async (t) => {
  const c = await connectMqtt(server.mqttUrl, { clientId: 'ge-offline' });
  t.after(() => closeQuietly(c));
  const inbox = new Inbox(c);
  await subscribe(c, ['ocpp/cp/CP-OFF/Reply']);

  await c.publishAsync('ocpp/cs/CP-OFF', JSON.stringify({
    MessageTypeId: 2, UniqueId: 'off-1', Action: 'Reset', Payload: { type: 'Soft' },
  }), { qos: 1 });
  const m = await inbox.next('ocpp/cp/CP-OFF/Reply', isGatewayError, MS);
  assertGatewayError(m, { uniqueId: 'off-1', reason: 'offline', errorCode: 'GenericError', action: 'Reset' });
});

test('MQTT 5 QoS 1 malformed command -> PUBACK 0x99 (and the gateway error)', { timeout: 30000 }, async (t) => {
  const c = await connectMqtt(server.mqttUrl, { clientId: 'ge-v5-malformed', protocolVersion: 5 });
  t.after(() => closeQuietly(c));
  const inbox = new Inbox(c);
  await subscribe(c, ['ocpp/cp/CP1/Reply']);

  await assert.rejects(
    deadline(c.publishAsync('ocpp/cs/CP1', 'not json at all', { qos: 1 }), MS, 'PUBACK'),
    (err) => { assert.equal(err.code, 0x99, `PUBACK reason: ${err.message}`); return true; },
  );
  const m = await inbox.next('ocpp/cp/CP1/Reply', isGatewayError, MS);
  assertGatewayError(m, { uniqueId: '', reason: 'malformed', errorCode: 'FormationViolation' });

  // A well-formed command for an offline charge point is accepted (PUBACK
  // success): "offline" is reported only by the gateway error.
  await deadline(c.publishAsync('ocpp/cs/CP1', JSON.stringify({
    MessageTypeId: 2, UniqueId: 'v5-off', Action: 'Reset', Payload: { type: 'Hard' },
  }), { qos: 1 }), MS, 'PUBACK for a valid command');
  const m2 = await inbox.next('ocpp/cp/CP1/Reply', (j) => isGatewayError(j) && j.UniqueId === 'v5-off', MS);
  assertGatewayError(m2, { uniqueId: 'v5-off', reason: 'offline', errorCode: 'GenericError', action: 'Reset' });
  assert.equal(c.connected, true, 'client still connected');
});

test('MQTT 5 spoofed publish on ocpp/cp/CP1 -> PUBACK 0x87, not delivered', { timeout: 30000 }, async (t) => {
  const watcher = await connectMqtt(server.mqttUrl, { clientId: 'ge-watcher' });
  t.after(() => closeQuietly(watcher));
  const inbox = new Inbox(watcher);
  await subscribe(watcher, ['ocpp/cp/CP1', 'ocpp/cp/CP1/Reply']);

  const spoofer = await connectMqtt(server.mqttUrl, { clientId: 'ge-spoofer', protocolVersion: 5 });
  t.after(() => closeQuietly(spoofer));
  const spoof = JSON.stringify({ MessageTypeId: 2, UniqueId: 'spoof-1', Action: 'Heartbeat', Payload: {} });
  await assert.rejects(
    deadline(spoofer.publishAsync('ocpp/cp/CP1', spoof, { qos: 1 }), MS, 'PUBACK'),
    (err) => { assert.equal(err.code, 0x87, `PUBACK reason: ${err.message}`); return true; },
  );
  // The Reply topic belongs to the gateway too.
  const spoofReply = JSON.stringify({ MessageTypeId: 3, UniqueId: 'spoof-2', Action: 'Reset', Payload: { status: 'Accepted' } });
  await assert.rejects(
    deadline(spoofer.publishAsync('ocpp/cp/CP1/Reply', spoofReply, { qos: 1 }), MS, 'PUBACK'),
    (err) => { assert.equal(err.code, 0x87, `PUBACK reason: ${err.message}`); return true; },
  );
  assert.equal(spoofer.connected, true, 'MQTT 5 spoofer stays connected (negative PUBACK, not a disconnect)');

  // Sentinel: a gateway error published after the refusals reaches the
  // watcher; the spoofed messages must not have arrived before it.
  await spoofer.publishAsync('ocpp/cs/CP1', 'sentinel-garbage', { qos: 0 });
  await inbox.next('ocpp/cp/CP1/Reply', isGatewayError, MS);
  const leaked = inbox.seen.filter((m) => m.raw === spoof || m.raw === spoofReply);
  assert.deepEqual(leaked.map((m) => [m.topic, m.raw]), [], 'spoofed publish was delivered');
});
