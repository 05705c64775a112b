'use strict';
// Differential test: every OCPP 1.6 action, a valid payload (the golden
// corpus) and its mutations generated from the OFFICIAL schemas bundled by
// npm ocpp-rpc (lib/differential.js) are classified twice —
//   oracle:   ocpp-rpc's createValidator (ajv + ajv-formats), as ocpp-rpc's
//             strict mode validates;
//   chargemq: the running binary, in every direction the message travels:
//     upstream call      a raw ws charge point sends [2,id,Action,case]:
//                        CALLERROR → rejected, published on ocpp/cp/<cid> → accepted;
//     downstream call    MQTT publishes the command on ocpp/cs/<cid>:
//                        gateway error invalid_payload → rejected, the charge point
//                        receives it (and answers) → accepted;
//     downstream answer  the charge point sends a valid CALL, MQTT answers with
//                        the case: invalid_payload → rejected, the charge point
//                        receives [3,id,case] → accepted;
//     upstream answer    MQTT sends a valid command, the charge point answers with
//                        the case: Reply with "Violations" → rejected, without → accepted.
// Accept/reject must agree on every case except ALLOW_LIST below.
const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const WebSocket = require('ws');
const { startServer } = require('../lib/server');
const { deadline, connectMqtt, subscribe, closeQuietly } = require('../lib/util');
const { allCases, seed } = require('../lib/differential');

const CPS = 6; // charge point connections working in parallel, each sequentially
const CASE_MS = 5000; // one case, generous (a case takes ~1 ms)
const TOTAL_MS = 60000; // all cases; past it (or once a charge point is closed) the rest are not run

// The only tolerated disagreements. Each entry names the mutation class
// (and value) it covers, the expected direction of the disagreement, and
// why. An entry that matches no case fails the test: keep the list exact.
const ALLOW_LIST = [
  {
    kind: 'date-time without offset',
    oracle: true,
    chargemq: false,
    reason: 'ajv-formats accepts a date-time without a time-zone offset ("2026-11-25T18:00:00"); '
      + 'RFC 3339 §5.6 requires one (time-offset is not optional) and the instant is unknown without it. '
      + 'chargemq rejects on purpose (schemas/README.md, "date-time").',
  },
  // Same class as the entry above — forms RFC 3339 §5.6 forbids and ajv-formats
  // accepts; chargemq rejects them on purpose (schemas/README.md; the golden
  // corpus marks them "ajvAccepts"):
  {
    kind: 'date-time space for T',
    oracle: true,
    chargemq: false,
    reason: '"2026-11-25 18:00:00Z": RFC 3339 §5.6 date-time = full-date "T" full-time (the space is only a note '
      + 'for readability, §5.6 NOTE); ajv-formats splits on /t|\\s/i and accepts.',
  },
  {
    kind: 'date-time offset without colon',
    oracle: true,
    chargemq: false,
    reason: '"2026-11-25T18:00:00+0200": RFC 3339 time-numoffset = ("+" / "-") time-hour ":" time-minute; '
      + 'ajv-formats makes the colon optional and accepts.',
  },
  {
    kind: 'date-time offset +24:00',
    oracle: true,
    chargemq: false,
    reason: '"2026-11-25T18:00:00+24:00": RFC 3339 time-hour is 00-23, also in an offset; ajv-formats does not '
      + 'bound the offset hour and accepts.',
  },
  {
    kind: 'date-time leap second with offset',
    oracle: false,
    chargemq: true,
    reason: '"2027-01-01T00:59:60+01:00" is 23:59:60 UTC, a leap second written with an offset, valid per '
      + 'RFC 3339 §5.7 (its own example: 1990-12-31T15:59:60-08:00); ajv-formats allows second 60 only at '
      + '23:59 local time and rejects. chargemq checks the UTC time and accepts (so a strict ocpp-rpc '
      + 'charge point would refuse such a command; harmless in practice).',
  },
  // uri: ajv-formats' "uri" (full mode) is one RFC 3986 regular expression;
  // chargemq's checker (schemas/formats.go) is a scheme/character/escape scan,
  // brackets only around an IP-literal host (no zone id), one "#" at most, and
  // Go's net/url.Parse for the authority. It is never laxer than ajv (two "#",
  // brackets in a path and IPv6 zone ids were, until this test found them);
  // it is stricter on these cases:
  {
    kind: 'uri IPvFuture host',
    oracle: true,
    chargemq: false,
    reason: 'http://[v1.fe]/x — RFC 3986 §3.2.2 IPvFuture literal: valid, ajv accepts; Go net/url only knows IPv6 '
      + 'literals and refuses it. chargemq is stricter (no charge point downloads from an IPvFuture host).',
  },
  {
    kind: 'uri non-numeric port',
    oracle: true,
    chargemq: false,
    reason: 'https://files.example.com:port/x — RFC 3986 §3.2.3 port = *DIGIT, so it is invalid; ajv-formats\' regex '
      + 'starts the authority with "\\/?\\/" (second slash optional), so it parses "https:" + "/" + empty authority + '
      + 'path "/files.example.com:port/x" (":" is a path character) and accepts; '
      + 'chargemq (net/url: invalid port) rejects, correctly.',
  },
];

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

const isGatewayError = (j) => j && j.MessageTypeId === 4 && j.ErrorDetails && j.ErrorDetails.origin === 'gateway';

test('differential: official schemas via ocpp-rpc/ajv vs chargemq, every action, both directions', { timeout: 120000 }, async (t) => {
  const cases = allCases();
  const seeds = new Map();
  const seedOf = (action) => {
    if (!seeds.has(action)) seeds.set(action, seed(action));
    return seeds.get(action);
  };

  // One waiter per UniqueId, fed by the charge point sockets and by MQTT.
  const waiters = new Map();
  const stray = [];
  let idSeq = 0;
  const nextId = () => `d${++idSeq}`;

  // The CSMS: MQTT 5, so refused commands also show as PUBACK 0x99.
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'diff-csms', protocolVersion: 5 });
  t.after(() => closeQuietly(csms));
  csms.on('message', (topic, payload) => {
    let j;
    try { j = JSON.parse(payload.toString()); } catch { j = undefined; }
    const w = j && waiters.get(j.UniqueId);
    if (w) w.mqtt(topic, j);
    else if (stray.length < 20) stray.push(['mqtt', topic, payload.toString().slice(0, 300)]);
  });
  await subscribe(csms, ['ocpp/cp/#'], 1);

  // The charge points: raw ws (ocpp-rpc's strict mode would refuse to send invalid payloads).
  const cps = await Promise.all(Array.from({ length: CPS }, async (_, n) => {
    const cid = `DIFF-${n}`;
    const ws = new WebSocket(`${server.ocppUrl}/${cid}`, ['ocpp1.6']);
    const cp = { cid, ws, closed: null };
    ws.on('error', () => {});
    ws.on('close', (code, reason) => { cp.closed = { code, reason: reason.toString() }; });
    ws.on('message', (data) => {
      let f;
      try { f = JSON.parse(data.toString()); } catch { f = undefined; }
      const w = Array.isArray(f) && waiters.get(f[1]);
      if (w) w.cp(f);
      else if (stray.length < 20) stray.push(['cp', cid, data.toString().slice(0, 300)]);
    });
    await deadline(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 10000, `connect ${cid}`);
    return cp;
  }));
  t.after(() => { for (const cp of cps) cp.ws.terminate(); });

  /**
   * Runs one case and resolves to {verdict: 'accept'|'reject', puback?, note?}
   * or {verdict: 'error', note} for anything outside the contract.
   */
  function runCase(cp, c) {
    const { cid, ws } = cp;
    const id = nextId();
    const up = `ocpp/cp/${cid}`;
    const reply = `ocpp/cp/${cid}/Reply`;
    const down = `ocpp/cs/${cid}`;
    const s = seedOf(c.action);
    let settle;
    const result = new Promise((resolve) => { settle = resolve; });
    const done = (r) => { waiters.delete(id); settle(r); };
    const err = (what, x) => done({ verdict: 'error', note: `${what}: ${JSON.stringify(x).slice(0, 400)}` });
    const send = (frame) => ws.send(JSON.stringify(frame));
    let puback = Promise.resolve(undefined);
    const publish = (msg) => {
      puback = csms.publishAsync(down, JSON.stringify(msg), { qos: 1 }).then(() => 0, (e) => (e && e.code) || -1);
    };

    switch (c.direction) {
      case 'upstream call':
        waiters.set(id, {
          cp: (f) => (f[0] === 4 ? done({ verdict: 'reject', code: f[2], note: `${f[2]}: ${f[3]}` }) : err('charge point got', f)),
          mqtt: (topic, j) => {
            if (topic !== up || j.MessageTypeId !== 2) return err(`on ${topic}`, j);
            if (!isDeepEqual(j.Payload, c.payload)) return err('published payload differs', j.Payload);
            return done({ verdict: 'accept' });
          },
        });
        send([2, id, c.action, c.payload]);
        break;

      case 'downstream call': {
        let received = false;
        waiters.set(id, {
          cp: (f) => {
            if (f[0] !== 2 || received) return err('charge point got', f);
            received = true;
            send([3, id, s.conf]); // answer, even when failing, so the queue moves on
            if (!isDeepEqual(f[3], c.payload)) return err('charge point got a different payload', f[3]);
            return undefined;
          },
          mqtt: (topic, j) => {
            if (topic !== reply) return err(`on ${topic}`, j);
            if (j.MessageTypeId === 3 && received) return done({ verdict: 'accept' });
            if (isGatewayError(j) && j.ErrorDetails.reason === 'invalid_payload' && !received) {
              return done({ verdict: 'reject', code: j.ErrorCode, note: `${j.ErrorCode}: ${j.ErrorDescription}` });
            }
            return err('Reply', j);
          },
        });
        publish({ MessageTypeId: 2, UniqueId: id, Action: c.action, Payload: c.payload });
        break;
      }

      case 'downstream answer': {
        let called = false;
        waiters.set(id, {
          cp: (f) => {
            if (f[0] === 3 && called) {
              if (!isDeepEqual(f[2], c.payload)) return err('charge point got a different answer', f[2]);
              return done({ verdict: 'accept' });
            }
            return err('charge point got', f);
          },
          mqtt: (topic, j) => {
            if (!called && topic === up && j.MessageTypeId === 2) {
              called = true;
              return publish({ MessageTypeId: 3, UniqueId: id, Action: c.action, Payload: c.payload });
            }
            if (called && topic === reply && isGatewayError(j) && j.ErrorDetails.reason === 'invalid_payload') {
              return done({ verdict: 'reject', code: j.ErrorCode, note: `${j.ErrorCode}: ${j.ErrorDescription}` });
            }
            return err(`on ${topic}`, j);
          },
        });
        send([2, id, c.action, s.req]); // a valid CALL to answer
        break;
      }

      case 'upstream answer': {
        let received = false;
        waiters.set(id, {
          cp: (f) => {
            if (f[0] !== 2 || received) return err('charge point got', f);
            received = true;
            return send([3, id, c.payload]);
          },
          mqtt: (topic, j) => {
            if (topic !== reply || j.MessageTypeId !== 3 || !received) return err(`on ${topic}`, j);
            if (!isDeepEqual(j.Payload, c.payload)) return err('published answer differs', j.Payload);
            if (j.Violations !== undefined) {
              return done({ verdict: 'reject', note: JSON.stringify(j.Violations).slice(0, 200) });
            }
            return done({ verdict: 'accept' });
          },
        });
        publish({ MessageTypeId: 2, UniqueId: id, Action: c.action, Payload: s.req });
        break;
      }

      default:
        throw new Error(`unknown direction ${c.direction}`);
    }

    return deadline(result, CASE_MS, `case ${id} (${c.direction} ${c.action}.${c.message} ${c.mutation})`)
      .catch((e) => { waiters.delete(id); return { verdict: 'error', note: e.message }; })
      .then(async (r) => ({ ...r, id, puback: await deadline(puback, CASE_MS, 'PUBACK').catch(() => -2) }));
  }

  // Distribute round-robin, run each charge point's share sequentially.
  const shares = cps.map(() => []);
  cases.forEach((c, i) => shares[i % CPS].push(c));
  const started = Date.now();
  const results = new Array(cases.length);
  const aborted = () => Date.now() - started > TOTAL_MS || cps.some((cp) => cp.closed) || (t.signal && t.signal.aborted);
  await Promise.all(cps.map(async (cp, n) => {
    for (let i = 0; i < shares[n].length; i++) {
      const c = shares[n][i];
      results[i * CPS + n] = { c, r: aborted() ? { verdict: 'error', note: 'not run (time budget spent, test cancelled or a charge point closed)' } : await runCase(cp, c) };
    }
  }));
  const elapsed = Date.now() - started;

  // Compare.
  const disagreements = [];
  const errors = [];
  const inconsistent = [];
  const wrongCode = [];
  const used = new Set();
  let agree = 0;
  let allowed = 0;
  for (const { c, r } of results) {
    if (r.verdict === 'error') {
      errors.push({ c, r });
      continue;
    }
    const chargemq = r.verdict === 'accept';
    // A refused command or answer from MQTT 5 QoS 1 gets PUBACK 0x99; an accepted one success.
    if (c.direction.startsWith('downstream') && r.puback !== (chargemq ? 0 : 0x99)) inconsistent.push({ c, r });
    // A refusal carries the 1.6 code of its (single) violation (README "Validation").
    if (!chargemq && r.code !== undefined && r.code !== expectedCode(c.kind)) wrongCode.push({ c, r });
    if (chargemq === c.oracle) {
      agree++;
      continue;
    }
    const entry = ALLOW_LIST.find((e) => e.kind === c.kind && e.oracle === c.oracle && e.chargemq === chargemq);
    if (entry) {
      allowed++;
      used.add(entry);
    } else {
      disagreements.push({ c, r, chargemq });
    }
  }

  const fmt = ({ c, r }) => `${c.action}.${c.message} [${c.direction}] ${c.mutation}: payload ${JSON.stringify(c.payload).slice(0, 300)}`
    + ` — oracle ${c.oracle ? 'accepts' : 'rejects'}, chargemq ${r.verdict === 'accept' ? 'accepts' : r.verdict === 'reject' ? 'rejects' : 'error'}`
    + `${r.note ? ` (${r.note})` : ''}${r.puback !== undefined ? ` puback=0x${r.puback.toString(16)}` : ''}`;
  const summary = `differential: ${cases.length} cases, ${agree} agree, ${allowed} allow-listed`;
  t.diagnostic(summary);
  t.diagnostic(`(${new Set(cases.map((c) => c.action)).size} actions, ${CPS} charge points in parallel, ${elapsed} ms)`);
  for (const e of ALLOW_LIST) {
    t.diagnostic(`allow-listed: ${e.kind} (oracle ${e.oracle ? 'accepts' : 'rejects'}, chargemq ${e.chargemq ? 'accepts' : 'rejects'}): ${e.reason}`);
  }

  const problems = [];
  if (disagreements.length) problems.push(`${disagreements.length} disagreements:\n  ${disagreements.map(fmt).join('\n  ')}`);
  if (errors.length) problems.push(`${errors.length} cases outside the contract:\n  ${errors.slice(0, 50).map(fmt).join('\n  ')}`);
  if (wrongCode.length) problems.push(`${wrongCode.length} refusals with an unexpected error code:\n  ${wrongCode.slice(0, 50).map((x) => `${fmt(x)} want ${expectedCode(x.c.kind)}`).join('\n  ')}`);
  if (inconsistent.length) problems.push(`${inconsistent.length} PUBACK codes that do not match the verdict:\n  ${inconsistent.slice(0, 50).map(fmt).join('\n  ')}`);
  const unused = ALLOW_LIST.filter((e) => !used.has(e));
  if (unused.length) problems.push(`allow-list entries that matched no disagreement (remove them): ${unused.map((e) => e.kind).join(', ')}`);
  if (stray.length) problems.push(`stray frames/messages: ${JSON.stringify(stray)}`);
  for (const cp of cps) if (cp.closed) problems.push(`${cp.cid} was closed: ${JSON.stringify(cp.closed)}`);
  assert.equal(problems.length, 0, `${summary}\n${problems.join('\n')}`);
  assert.equal(agree + allowed, cases.length);
});

/** The OCPP 1.6 error code of a refused mutation of this kind. */
function expectedCode(kind) {
  if (kind === 'required missing') return 'OccurenceConstraintViolation';
  if (kind.startsWith('type ')) return 'TypeConstraintViolation';
  if (kind === 'unexpected property') return 'FormationViolation';
  return 'PropertyConstraintViolation'; // enum, maxLength, format, multipleOf, minItems
}

/** Equality of JSON values as sent (so -0 and 0, both sent as 0, are equal). */
function isDeepEqual(a, b) {
  try {
    assert.deepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));
    return true;
  } catch {
    return false;
  }
}
