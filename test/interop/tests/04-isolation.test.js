'use strict';
// Test 4: isolation. One charge point floods malformed text frames, binary
// frames and oversized frames (raw `ws` client, reconnected after each close)
// while 50 ocpp-rpc charge points each complete 200 round trips through MQTT
// without a single disconnect.
const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const WebSocket = require('ws');
const { startServer } = require('../lib/server');
const { deadline, Inbox, connectMqtt, subscribe, connectCp, closeQuietly } = require('../lib/util');

const CPS = Number(process.env.INTEROP_CPS || 50);
const ROUND_TRIPS = Number(process.env.INTEROP_ROUND_TRIPS || 200);
const TOTAL_DEADLINE_MS = 120000;
const STEP_MS = 30000; // one round trip, generous
const MAX_FLOOD_CYCLES = 2000; // bound on flooder reconnects
const FRAMES_PER_CYCLE = 100; // malformed text frames per connection
const WINDOW = 16; // unanswered malformed frames in flight
const OVERSIZE = 70 * 1024; // > the default max_frame_size of 64 KiB

// Text frames that each get exactly one CALLERROR back.
const MALFORMED = [
  'garbage',
  '',
  '{"not":"an array"}',
  '"just a string"',
  'null',
  '[]',
  '[2,"f-1"]',
  '[2,"f-2","x"]',
  '[9,"f-3","Heartbeat",{}]',
  '[2,42,"Heartbeat",{}]',
  '[2,"f-4",',
];

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

/**
 * Runs flood cycles until stop() is called or MAX_FLOOD_CYCLES: connect, send
 * FRAMES_PER_CYCLE malformed text frames, wait for as many CALLERRORs, then
 * send a binary or an oversized frame and wait for the server to close.
 */
function startFlooder(ocppUrl) {
  const stats = { cycles: 0, textFrames: 0, callErrors: 0, binaryFrames: 0, oversizeFrames: 0, closes: {}, badReplies: [] };
  let stopping = false;
  const done = (async () => {
    for (let cycle = 0; cycle < MAX_FLOOD_CYCLES && !stopping; cycle++) {
      const ws = new WebSocket(`${ocppUrl}/FLOODER`, ['ocpp1.6']);
      const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
      ws.on('error', () => {}); // the close event carries what we check
      await deadline(new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`flooder upgrade refused: HTTP ${res.statusCode}`)));
        ws.once('error', reject);
      }), 10000, 'flooder connect');
      assert.equal(ws.protocol, 'ocpp1.6');

      // Send as fast as the server answers, with at most WINDOW frames
      // unanswered (a burst larger than the server's per-connection outbox
      // is closed as slow_consumer today: see 05-malformed-burst.test.js).
      let replies = 0;
      let sent = 0;
      let allReplied;
      const replied = new Promise((resolve) => { allReplied = resolve; });
      const sendOne = () => {
        ws.send(MALFORMED[(cycle + sent) % MALFORMED.length]);
        sent++;
        stats.textFrames++;
      };
      ws.on('message', (data, isBinary) => {
        let f;
        try { f = JSON.parse(data.toString()); } catch { f = undefined; }
        if (isBinary || !Array.isArray(f) || f[0] !== 4 || !['FormationViolation', 'ProtocolError'].includes(f[2])) {
          if (stats.badReplies.length < 10) stats.badReplies.push(data.toString());
        } else {
          stats.callErrors++;
        }
        replies++;
        if (sent < FRAMES_PER_CYCLE) sendOne();
        if (replies === FRAMES_PER_CYCLE) allReplied();
      });
      while (sent < Math.min(WINDOW, FRAMES_PER_CYCLE)) sendOne();
      const early = await deadline(Promise.race([replied, closed]), 15000,
        () => `flooder got ${replies}/${FRAMES_PER_CYCLE} CALLERRORs in cycle ${cycle}`);
      if (early) throw new Error(`server closed the flooder after ${replies}/${FRAMES_PER_CYCLE} malformed text frames: ${JSON.stringify(early)}`);

      let want;
      if (cycle % 2 === 0) {
        ws.send(Buffer.from([0x5b, 0x32, 0x5d, 0x00, 0xff]), { binary: true });
        stats.binaryFrames++;
        want = 1003;
      } else {
        ws.send('['.padEnd(OVERSIZE, ' '), { binary: false });
        stats.oversizeFrames++;
        want = 1009;
      }
      const { code } = await deadline(closed, 15000, `server did not close the flooder (want ${want})`);
      stats.closes[code] = (stats.closes[code] || 0) + 1;
      assert.equal(code, want, `flooder close code after ${want === 1003 ? 'binary' : 'oversized'} frame`);
      stats.cycles++;
    }
  })();
  return { stats, done, stop() { stopping = true; return done; } };
}

test(`isolation: a flooding charge point does not disturb ${CPS} others doing ${ROUND_TRIPS} round trips each`, { timeout: TOTAL_DEADLINE_MS + 60000 }, async (t) => {
  // The CSMS: one mqtt.js client, answers matched by UniqueId.
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'isolation-csms' });
  t.after(() => closeQuietly(csms));
  const pending = new Map();
  const stray = [];
  csms.on('message', (topic, payload) => {
    let j;
    try { j = JSON.parse(payload.toString()); } catch { j = undefined; }
    const p = j && pending.get(j.UniqueId);
    if (p) {
      pending.delete(j.UniqueId);
      p.resolve({ topic, json: j });
    } else if (stray.length < 20) {
      stray.push([topic, payload.toString()]);
    }
  });
  await subscribe(csms, ['ocpp/cp/+/Reply'], 1);

  // The 50 charge points.
  const cids = Array.from({ length: CPS }, (_, n) => `CP-${n}`);
  const closes = [];
  const cps = await deadline(Promise.all(cids.map(async (cid) => {
    const cp = await connectCp(server.ocppUrl, cid, {}, 20000);
    cp.on('close', (e) => closes.push({ cid, ...e }));
    cp.handle('DataTransfer', ({ params }) => ({ status: 'Accepted', data: params.data }));
    return cp;
  })), 30000, 'connecting the charge points');
  t.after(() => Promise.all(cps.map((cp) => closeQuietly(cp))));

  const flooder = startFlooder(server.ocppUrl);
  // If the flooder fails, the failure must surface even while the round trips run.
  let flooderError;
  let aborted = false;
  const abortAll = () => {
    aborted = true;
    for (const p of pending.values()) p.reject(new Error('aborted'));
    pending.clear();
  };
  flooder.done.catch((e) => { flooderError = e; abortAll(); });

  const started = Date.now();
  let roundTrips = 0;
  async function run(cid, n) {
    const topic = `ocpp/cp/${cid}/Reply`;
    for (let i = 0; i < ROUND_TRIPS && !aborted; i++) {
      if (flooderError) throw flooderError;
      const id = `rt-${n}-${i}`;
      const data = `${cid}:${i}`;
      const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      await csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify({
        MessageTypeId: 2, UniqueId: id, Action: 'DataTransfer',
        Payload: { vendorId: 'org.chargemq.interop', messageId: 'echo', data },
      }), { qos: 1 });
      const got = await deadline(answer, STEP_MS, `round trip ${id}`);
      assert.equal(got.topic, topic);
      assert.deepEqual(got.json, {
        MessageTypeId: 3, UniqueId: id, Action: 'DataTransfer', Payload: { status: 'Accepted', data },
      });
      roundTrips++;
    }
  }
  try {
    await deadline(Promise.all(cids.map((cid, n) => run(cid, n))), TOTAL_DEADLINE_MS,
      () => `round trips (${roundTrips} done)`)
      .catch((e) => { throw flooderError || e; });
    if (flooderError) throw flooderError;
  } finally {
    const elapsed = Date.now() - started;
    // On failure, stop the other loops at once (their deadlines must not keep the process alive).
    abortAll();
    await flooder.stop().catch(() => {});
    const s = flooder.stats;
    const line = `round trips: ${roundTrips} by ${CPS} charge points in ${elapsed} ms (${Math.round(roundTrips / (elapsed / 1000))}/s); `
      + `flooder: ${s.cycles} reconnect cycles, ${s.textFrames} malformed text frames (${s.callErrors} CALLERRORs back), `
      + `${s.binaryFrames} binary, ${s.oversizeFrames} oversized, closes ${JSON.stringify(s.closes)}`;
    t.diagnostic(line);
    if (process.env.INTEROP_DUMP_LOGS) {
      for (const l of server.findLogs((r) => r.cid === 'FLOODER' || r.level !== 'INFO')) console.log(JSON.stringify(l));
    }
  }

  assert.equal(roundTrips, CPS * ROUND_TRIPS);
  assert.deepEqual(closes, [], 'a charge point was disconnected');
  for (const cp of cps) assert.equal(cp.state, cp.constructor.OPEN, `${cp.identity} still open`);
  assert.deepEqual(stray, [], 'unexpected messages on the Reply topics (gateway errors?)');
  const s = flooder.stats;
  assert.deepEqual(s.badReplies, [], 'flooder got answers that are not CALLERRORs');
  assert.ok(s.cycles >= 2, `the flooder ran at least one binary and one oversized cycle (ran ${s.cycles})`);
  assert.ok(s.closes[1003] >= 1 && s.closes[1009] >= 1, `closes seen: ${JSON.stringify(s.closes)}`);
  assert.equal(s.callErrors, s.textFrames, 'every malformed text frame got a CALLERROR');
});
