'use strict';
// Gateway errors that need settings (--config): queue_full (with the MQTT 5
// PUBACK 0x97) and timeout, then the late answer published with "Late":true.
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { test, before, after } = require('node:test');
const { startServer } = require('../lib/server');
const { deadline, Inbox, connectMqtt, subscribe, connectCp, closeQuietly } = require('../lib/util');

const CALL_TIMEOUT_S = 2;
let server;
before(async () => {
  server = await startServer({
    config: [
      'ocpp:',
      '  dnstream:',
      '    max_mqueue_len: 1',
      `    call_timeout: ${CALL_TIMEOUT_S}s`,
      '',
    ].join('\n'),
  });
});
after(async () => { if (server) await server.stop(); });

const isGatewayError = (j) => j && j.MessageTypeId === 4 && j.ErrorDetails && j.ErrorDetails.origin === 'gateway';

test('queue_full (PUBACK 0x97), timeout, then the late answer', { timeout: 60000 }, async (t) => {
  const cid = 'CP-Q';
  const reply = `ocpp/cp/${cid}/Reply`;
  const down = `ocpp/cs/${cid}`;
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'queue-csms', protocolVersion: 5 });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, [reply]);

  // The charge point answers a Reset only when the test releases it.
  const cp = await connectCp(server.ocppUrl, cid);
  t.after(() => closeQuietly(cp));
  const closes = [];
  cp.on('close', (e) => closes.push(e));
  const received = [];
  const gates = new Map();
  const gate = (id) => {
    if (!gates.has(id)) {
      let release;
      const p = new Promise((r) => { release = r; });
      gates.set(id, { p, release });
    }
    return gates.get(id);
  };
  const receivedEvents = new EventEmitter();
  cp.handle('Reset', ({ messageId }) => {
    received.push(messageId);
    receivedEvents.emit('call', messageId);
    return gate(messageId).p;
  });
  const cmd = (id) => JSON.stringify({ MessageTypeId: 2, UniqueId: id, Action: 'Reset', Payload: { type: 'Soft' } });
  const waitReceived = (id) => (received.includes(id) ? Promise.resolve()
    : deadline(new Promise((r) => {
      const on = (m) => { if (m === id) { receivedEvents.off('call', on); r(); } };
      receivedEvents.on('call', on);
    }), 10000, `charge point never got ${id}`));

  // q1 goes out and stays unanswered; q2 waits in the queue (max_mqueue_len 1); q3 is refused.
  const started = Date.now();
  await csms.publishAsync(down, cmd('q1'), { qos: 1 });
  await waitReceived('q1');
  await csms.publishAsync(down, cmd('q2'), { qos: 1 });
  await assert.rejects(
    deadline(csms.publishAsync(down, cmd('q3'), { qos: 1 }), 10000, 'PUBACK'),
    (err) => { assert.equal(err.code, 0x97, `PUBACK reason: ${err.message}`); return true; },
  );
  const qf = await inbox.next(reply, (j) => isGatewayError(j) && j.UniqueId === 'q3', 10000);
  assert.equal(qf.json.ErrorCode, 'GenericError');
  assert.equal(qf.json.ErrorDetails.reason, 'queue_full');
  assert.equal(qf.json.Action, 'Reset');
  assert.deepEqual(received, ['q1'], 'only one outstanding call at a time');

  // q1 times out after call_timeout; then q2 goes out.
  const to = await inbox.next(reply, (j) => j && j.UniqueId === 'q1', CALL_TIMEOUT_S * 1000 + 10000);
  const waited = Date.now() - started;
  assert.ok(isGatewayError(to.json), `want a gateway error for q1, got ${to.raw}`);
  assert.equal(to.json.ErrorDetails.reason, 'timeout');
  assert.equal(to.json.ErrorCode, 'GenericError');
  assert.equal(to.json.Action, 'Reset');
  assert.ok(waited >= CALL_TIMEOUT_S * 1000 - 200, `timeout after ${waited} ms, call_timeout is ${CALL_TIMEOUT_S}s`);
  await waitReceived('q2');

  // q1's late answer is still published, marked Late; q2 is answered normally.
  gate('q1').release({ status: 'Accepted' });
  const late = await inbox.next(reply, (j) => j && j.UniqueId === 'q1' && j.MessageTypeId === 3, 10000);
  assert.equal(late.json.Late, true, late.raw);
  assert.deepEqual(late.json.Payload, { status: 'Accepted' });
  if (late.json.Action !== undefined) assert.equal(late.json.Action, 'Reset');
  gate('q2').release({ status: 'Rejected' });
  const r2 = await inbox.next(reply, (j) => j && j.UniqueId === 'q2', 10000);
  assert.deepEqual(r2.json, { MessageTypeId: 3, UniqueId: 'q2', Action: 'Reset', Payload: { status: 'Rejected' } });
  assert.deepEqual(closes, []);
});
