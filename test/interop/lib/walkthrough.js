'use strict';
// The user walkthrough, shared by the MQTT-over-TCP and MQTT-over-WebSocket
// tests: an ocpp-rpc charge point and an mqtt.js CSMS talk through chargemq.

const assert = require('node:assert/strict');
const { createRPCError } = require('ocpp-rpc');
const { deadline, Inbox, connectMqtt, subscribe, connectCp, closeQuietly } = require('./util');

const MS = 10000;

async function walkthrough(t, server, mqttUrl, cid) {
  const up = `ocpp/cp/${cid}`;
  const reply = `ocpp/cp/${cid}/Reply`;
  const down = `ocpp/cs/${cid}`;

  const csms = await connectMqtt(mqttUrl, { clientId: `csms-${cid}-${process.pid}` });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, [up, reply], 1);

  const cp = await connectCp(server.ocppUrl, cid);
  const closes = [];
  cp.on('close', (e) => closes.push(e));
  t.after(() => closeQuietly(cp));
  assert.equal(cp.protocol, 'ocpp1.6', 'negotiated subprotocol');

  const handled = [];
  cp.handle('RemoteStartTransaction', ({ params, messageId }) => {
    handled.push({ action: 'RemoteStartTransaction', params, messageId });
    return { status: 'Accepted' };
  });
  cp.handle('Reset', ({ params }) => {
    handled.push({ action: 'Reset', params });
    throw createRPCError('NotSupported', 'reset refused while charging', { connectorId: 1, busy: true });
  });

  // 1. The charge point's CALL is published upstream with the documented JSON.
  const bootReq = { chargePointVendor: 'VendorX', chargePointModel: 'ModelY', firmwareVersion: '1.2.3' };
  const bootCall = cp.call('BootNotification', bootReq);
  const bootMsg = await inbox.next(up, (j) => j && j.Action === 'BootNotification', MS);
  assert.equal(typeof bootMsg.json.UniqueId, 'string');
  assert.ok(bootMsg.json.UniqueId.length > 0, 'UniqueId not empty');
  assert.deepEqual(bootMsg.json, {
    MessageTypeId: 2,
    UniqueId: bootMsg.json.UniqueId,
    Action: 'BootNotification',
    Payload: bootReq,
  });

  // 2. The CSMS answers on the downstream topic; the ocpp-rpc call resolves with it.
  const bootConf = { status: 'Accepted', currentTime: new Date().toISOString(), interval: 300 };
  await csms.publishAsync(down, JSON.stringify({
    MessageTypeId: 3, UniqueId: bootMsg.json.UniqueId, Action: 'BootNotification', Payload: bootConf,
  }), { qos: 1 });
  assert.deepEqual(await deadline(bootCall, MS, 'BootNotification call did not resolve'), bootConf);

  // 3. CSMS → charge point CALL; the handler's answer comes back on the Reply topic.
  await csms.publishAsync(down, JSON.stringify({
    MessageTypeId: 2, UniqueId: 'c1', Action: 'RemoteStartTransaction', Payload: { idTag: 'T1' },
  }), { qos: 1 });
  const r1 = await inbox.next(reply, (j) => j && j.UniqueId === 'c1', MS);
  assert.deepEqual(r1.json, {
    MessageTypeId: 3, UniqueId: 'c1', Action: 'RemoteStartTransaction', Payload: { status: 'Accepted' },
  });
  assert.deepEqual(handled[0], { action: 'RemoteStartTransaction', params: { idTag: 'T1' }, messageId: 'c1' });

  // 4. CALLERROR charge point → MQTT: the handler throws an RPCError with details.
  await csms.publishAsync(down, JSON.stringify({
    MessageTypeId: 2, UniqueId: 'c2', Action: 'Reset', Payload: { type: 'Soft' },
  }), { qos: 1 });
  const r2 = await inbox.next(reply, (j) => j && j.UniqueId === 'c2', MS);
  assert.deepEqual(r2.json, {
    MessageTypeId: 4,
    UniqueId: 'c2',
    Action: 'Reset',
    ErrorCode: 'NotSupported',
    ErrorDescription: 'reset refused while charging',
    ErrorDetails: { connectorId: 1, busy: true },
  });
  assert.deepEqual(handled[1], { action: 'Reset', params: { type: 'Soft' } });

  // 5. CALLERROR MQTT → charge point: the ocpp-rpc call rejects with code and details.
  const authCall = cp.call('Authorize', { idTag: 'T1' });
  authCall.catch(() => {}); // handled below; avoid an unhandled rejection if we fail earlier
  const authMsg = await inbox.next(up, (j) => j && j.Action === 'Authorize', MS);
  assert.deepEqual(authMsg.json.Payload, { idTag: 'T1' });
  await csms.publishAsync(down, JSON.stringify({
    MessageTypeId: 4,
    UniqueId: authMsg.json.UniqueId,
    Action: 'Authorize',
    ErrorCode: 'InternalError',
    ErrorDescription: 'authorisation backend down',
    ErrorDetails: { retryAfter: 30, backend: 'ldap' },
  }), { qos: 1 });
  await assert.rejects(deadline(authCall, MS, 'Authorize call did not settle'), (err) => {
    assert.equal(err.rpcErrorCode, 'InternalError');
    assert.equal(err.message, 'authorisation backend down');
    assert.deepEqual(err.details, { retryAfter: 30, backend: 'ldap' });
    return true;
  });

  // Nothing was published on the Reply topic that we did not expect (e.g. no gateway error).
  const unexpected = inbox.seen.filter((m) => m.topic === reply && !['c1', 'c2'].includes(m.json?.UniqueId));
  assert.deepEqual(unexpected.map((m) => m.raw), [], 'unexpected Reply messages');
  assert.deepEqual(closes, [], 'charge point was disconnected');

  await cp.close({ code: 1000, reason: 'done' });
  await csms.endAsync();
}

module.exports = { walkthrough };
