'use strict';
// A charge point that reads its socket normally but sends a burst of
// malformed frames must get one CALLERROR per frame. docs/topics.md: a charge point
// is closed as slow_consumer only when it "does not read its socket within
// ocpp.write_timeout (default 10s)".
// (A regression test: the gateway once closed such a charge point as soon as
// 32 answers were waiting for its writer.)
const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const WebSocket = require('ws');
const { startServer } = require('../lib/server');
const { deadline } = require('../lib/util');

const BURST = 200;
let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

test(`a burst of ${BURST} malformed frames from a reading charge point gets ${BURST} CALLERRORs, no slow_consumer close`, {
  timeout: 60000,
}, async (t) => {
  const ws = new WebSocket(`${server.ocppUrl}/BURST`, ['ocpp1.6']);
  t.after(() => ws.terminate());
  let closedWith = null;
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => {
    closedWith = { code, reason: reason.toString() };
    resolve(closedWith);
  }));
  ws.on('error', () => {});
  await deadline(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 10000, 'connect');

  let replies = 0;
  let allReplied;
  const replied = new Promise((resolve) => { allReplied = resolve; });
  const bad = [];
  ws.on('message', (data) => {
    let f;
    try { f = JSON.parse(data.toString()); } catch { f = undefined; }
    if (!Array.isArray(f) || f[0] !== 4 || f[2] !== 'FormationViolation') bad.push(data.toString());
    if (++replies === BURST) allReplied();
  });
  for (let i = 0; i < BURST; i++) ws.send(`garbage ${i}`);
  await deadline(Promise.race([replied, closed]), 20000, () => `got ${replies}/${BURST} CALLERRORs`);
  assert.equal(closedWith, null, `server closed the connection after ${replies}/${BURST} CALLERRORs`);
  assert.equal(replies, BURST);
  assert.deepEqual(bad.slice(0, 5), [], 'answers that are not FormationViolation CALLERRORs');
});
