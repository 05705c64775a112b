'use strict';
// Authentication and ACLs (docs/security.md) with other people's clients: a
// users file made by the binary's own `users add` / `users import`, ocpp-rpc
// charge points sending HTTP Basic credentials (OCPP security profile 1), and
// mqtt.js logging in as `mqtt` and `admin` users held to their ACLs.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const mqtt = require('mqtt');
const { RPCClient } = require('ocpp-rpc');
const { startServer } = require('../lib/server');
const { deadline, onceWithin, Inbox, connectMqtt, subscribe, connectCp, closeQuietly } = require('../lib/util');
const { usersAdd, usersImport, newKey, basicAuth, tempDir, waitUntil } = require('../lib/users');

const MS = 10000;

// Every secret this file sends (passwords, right and wrong, and every
// Authorization header value): none may appear in a users file or a log.
const secrets = new Set();
const secret = (s) => { secrets.add(s); return s; };
const header = (user, pw) => secret(basicAuth(user, pw));

const key = {
  CP001: secret(newKey()),
  'CP-WRONG': secret(newKey()),
  'CP-BRUTE': secret(newKey()),
  'CP-ROT': secret(newKey()),
  'depot-user': secret(newKey()),
};
const pw = {
  csms: secret(`csms-pass-${newKey()}`),
  ops: secret(`ops-pass-${newKey()}`),
  dashboard: secret(`dash-pass-${newKey()}`),
  brute: secret(`brute-pass-${newKey()}`),
  viewer: secret(`view-pass-${newKey()}`),
};
const wrong = () => secret(`wrong-${newKey()}`);

const tmp = tempDir();
const usersFiles = [];
const servers = [];
let server; // users file, username_must_match_cid: true (the default)
let usersFile;

before(async () => {
  usersFile = path.join(tmp.dir, 'users.yaml');
  usersFiles.push(usersFile);
  await usersAdd(usersFile, 'CP001', { password: key.CP001 });
  await usersAdd(usersFile, 'CP-ROT', { password: key['CP-ROT'] });
  await usersAdd(usersFile, 'csms', {
    role: 'mqtt', password: pw.csms, pub: ['ocpp/cs/#', 'dev/%c/cmd'], sub: ['ocpp/#', 'csms/%u/#'],
  });
  await usersAdd(usersFile, 'ops', { role: 'admin', password: pw.ops });
  // A depot's worth at once (imported mqtt users have no rules).
  await usersImport(usersFile, [
    ['CP-WRONG', key['CP-WRONG'], 'chargepoint'],
    ['CP-BRUTE', key['CP-BRUTE'], 'chargepoint'],
    ['depot-user', key['depot-user'], 'chargepoint'],
    ['dashboard', pw.dashboard, 'mqtt'],
    ['brute', pw.brute, 'mqtt'],
    ['viewer', pw.viewer, 'mqtt'],
  ]);
  server = await startServer({ config: `auth:\n  users_file: ${JSON.stringify(usersFile)}\n` });
  servers.push(server);
});
after(async () => {
  try {
    if (server) await server.stop();
  } finally {
    tmp.remove();
  }
});

/** connectCp, noting the Authorization value ocpp-rpc makes of identity and password. */
function authCp(url, identity, opts) {
  if (opts.password !== undefined) header(identity, opts.password);
  return connectCp(url, identity, opts);
}

/** One ocpp-rpc connect attempt: resolves to {cp} or {err} (err.code = HTTP status; the client is closed). */
async function tryCp(url, identity, opts = {}) {
  if (opts.password !== undefined) header(identity, opts.password);
  const cp = new RPCClient({ endpoint: url, identity, protocols: ['ocpp1.6'], strictMode: true, reconnect: false, ...opts });
  try {
    await deadline(cp.connect(), MS, `OCPP connect ${identity}`);
    return { cp };
  } catch (err) {
    await closeQuietly(cp);
    return { err };
  }
}

/** An ocpp-rpc connect that must be refused: resolves to the error. */
async function refusedCp(url, identity, opts = {}) {
  const { cp, err } = await tryCp(url, identity, opts);
  if (cp) {
    await closeQuietly(cp);
    throw new Error(`charge point ${identity} was admitted, want a refusal`);
  }
  return err;
}

function assert401(err, what) {
  assert.equal(err.code, 401, `${what}: ${err.message}`);
  assert.equal(err.response.headers['www-authenticate'], 'Basic realm="chargemq"', `${what}: WWW-Authenticate`);
}

/** An mqtt.js connect that must be refused: resolves to the CONNACK code (mqtt.js err.code). */
async function refusedMqtt(url, opts) {
  try {
    const c = await deadline(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: MS, ...opts }), MS, 'MQTT connect');
    await closeQuietly(c);
  } catch (err) {
    return err.code;
  }
  throw new Error(`MQTT client ${opts.username} was admitted, want a refusal`);
}

/** subscribeAsync that must be refused: resolves to the SUBACK codes (mqtt.js 5.16: e.packet.granted). */
async function refusedSub(client, filter) {
  try {
    await deadline(client.subscribeAsync(filter, { qos: 1 }), MS, `subscribe ${filter}`);
  } catch (err) {
    assert.ok(err.packet && Array.isArray(err.packet.granted), `subscribe ${filter}: ${err.message}`);
    return err.packet.granted;
  }
  throw new Error(`subscription to ${filter} was granted, want a refusal`);
}

/** publishAsync (MQTT 5, QoS 1) that must be refused: resolves to the PUBACK reason code. */
async function refusedPub(client, topic, payload = '{}') {
  try {
    await deadline(client.publishAsync(topic, payload, { qos: 1 }), MS, `PUBACK ${topic}`);
  } catch (err) {
    return err.code;
  }
  throw new Error(`publish on ${topic} was acked, want a refusal`);
}

const presence = (cid) => `ocpp/presence/${cid}`;
const connectedLog = (srv, cid) => srv.findLogs((r) => r.msg === 'charge point connected' && r.cid === cid);

test('a charge point with its own key connects; its BootNotification reaches an authorised mqtt user, who answers it', { timeout: 30000 }, async (t) => {
  const cid = 'CP001';
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'auth-csms', protocolVersion: 5, username: 'csms', password: pw.csms });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, ['ocpp/cp/+'], 1);

  const cp = await authCp(server.ocppUrl, cid, { password: key.CP001 });
  t.after(() => closeQuietly(cp));
  assert.equal(cp.protocol, 'ocpp1.6');

  const bootReq = { chargePointVendor: 'VendorX', chargePointModel: 'ModelY' };
  const bootCall = cp.call('BootNotification', bootReq);
  const up = await inbox.next(`ocpp/cp/${cid}`, (j) => j && j.Action === 'BootNotification', MS);
  assert.deepEqual(up.json, { MessageTypeId: 2, UniqueId: up.json.UniqueId, Action: 'BootNotification', Payload: bootReq });
  const bootConf = { status: 'Accepted', currentTime: new Date().toISOString(), interval: 300 };
  // Resolves only on a successful PUBACK: the csms user may publish on ocpp/cs/#.
  await deadline(csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify({
    MessageTypeId: 3, UniqueId: up.json.UniqueId, Action: 'BootNotification', Payload: bootConf,
  }), { qos: 1 }), MS, 'PUBACK answer');
  assert.deepEqual(await deadline(bootCall, MS, 'BootNotification call'), bootConf);

  // The connection is recorded under the username it authenticated as.
  const logged = await waitUntil(() => connectedLog(server, cid).length && connectedLog(server, cid), MS, `no "charge point connected" log line for ${cid}`);
  assert.ok(logged.every((r) => r.username === cid), JSON.stringify(logged));
});

test('charge point refusals: wrong key 401, no credentials 401, another role 401, repeated wrong keys 429 with Retry-After', { timeout: 30000 }, async () => {
  const url = server.ocppUrl;
  assert401(await refusedCp(url, 'CP-WRONG', { password: wrong() }), 'wrong key');
  assert401(await refusedCp(url, 'CP-NOKEY'), 'no credentials');
  assert401(await refusedCp(url, 'CP-UNKNOWN', { password: wrong() }), 'unknown user');
  // An mqtt user cannot log in as a charge point, even with its right password.
  assert401(await refusedCp(url, 'viewer', { password: pw.viewer }), 'mqtt user as charge point');
  // The right key still works after one failure (the first mistake is free).
  const ok = await authCp(url, 'CP-WRONG', { password: key['CP-WRONG'] });
  await closeQuietly(ok);

  // Guessing: 401, 401, then 429 while the (address, username) key must wait.
  const codes = [];
  let backoff;
  for (let i = 0; i < 6 && !backoff; i++) {
    const err = await refusedCp(url, 'CP-BRUTE', { password: wrong() });
    codes.push(err.code);
    if (err.code === 429) backoff = err;
    else assert401(err, `guess ${i + 1}`);
  }
  assert.ok(backoff, `no 429 after ${codes.length} wrong keys: ${codes}`);
  assert.ok(codes.length >= 3, `429 before the second failure: ${codes}`);
  const retryAfter = backoff.response.headers['retry-after'];
  assert.match(String(retryAfter), /^[1-9]\d*$/, `Retry-After: ${retryAfter}`);
  assert.ok(Number(retryAfter) <= 60, `Retry-After ${retryAfter} over the 60 s cap`);
  // While the key waits, even the right key is refused without being checked.
  const during = await refusedCp(url, 'CP-BRUTE', { password: key['CP-BRUTE'] });
  assert.equal(during.code, 429, during.message);
  // Once the wait is over the right key is admitted (a refused attempt does not lengthen it).
  const until = Date.now() + MS;
  let cp;
  for (let i = 0; i < 200 && !cp && Date.now() < until; i++) {
    const r = await tryCp(url, 'CP-BRUTE', { password: key['CP-BRUTE'] });
    cp = r.cp;
    if (!cp) {
      assert.equal(r.err.code, 429, `right key during back-off: ${r.err.message}`);
      await new Promise((res) => setTimeout(res, 100)); // poll interval, not a synchronisation
    }
  }
  assert.ok(cp, 'the right key was never admitted after the back-off');
  await closeQuietly(cp);
  // A success forgets the failures: the next mistake is a plain 401 again.
  assert401(await refusedCp(url, 'CP-BRUTE', { password: wrong() }), 'first mistake after a success');

  // Refusals are logged with the username and the reason.
  const refusedLog = (user, reason) => server.findLogs((r) => r.msg === 'handshake refused' && r.username === user && r.reason === reason);
  await waitUntil(() => refusedLog('CP-WRONG', 'unauthorized').length, MS, 'no "handshake refused" line for CP-WRONG');
  await waitUntil(() => refusedLog('CP-BRUTE', 'auth_backoff').length, MS, 'no "handshake refused" auth_backoff line for CP-BRUTE');
});

test('ocpp.username_must_match_cid: false — one chargepoint user "depot-user" serves CP-A and CP-B (EMQX set-up)', { timeout: 30000 }, async (t) => {
  const file = path.join(tmp.dir, 'users-depot.yaml'); // kept for the last test
  usersFiles.push(file);
  await usersAdd(file, 'depot-user', { password: key['depot-user'] });
  await usersAdd(file, 'ops', { role: 'admin', password: pw.ops });
  const shared = await startServer({
    config: `auth:\n  users_file: ${JSON.stringify(file)}\nocpp:\n  username_must_match_cid: false\n`,
  });
  servers.push(shared);
  const cps = [];
  let watcher;
  t.after(async () => {
    for (const cp of cps) await closeQuietly(cp);
    await closeQuietly(watcher);
    await shared.stop();
  });

  watcher = await connectMqtt(shared.mqttUrl, { clientId: 'depot-ops', protocolVersion: 5, username: 'ops', password: pw.ops });
  const inbox = new Inbox(watcher);
  await subscribe(watcher, ['ocpp/presence/#'], 1);

  const depotAuth = { headers: { authorization: header('depot-user', key['depot-user']) } };
  for (const cid of ['CP-A', 'CP-B']) {
    const cp = await authCp(shared.ocppUrl, cid, depotAuth);
    cps.push(cp);
    await inbox.next(presence(cid), (j) => j && j.state === 'online', MS);
    const logged = await waitUntil(() => connectedLog(shared, cid).length && connectedLog(shared, cid), MS, `no "charge point connected" log line for ${cid}`);
    assert.ok(logged.length === 1 && logged[0].username === 'depot-user', JSON.stringify(logged));
  }
  assert.deepEqual(cps.map((c) => c.state), [RPCClient.OPEN, RPCClient.OPEN], 'both charge points connected at once');

  // Still authenticated: a wrong password for the shared user, or an id that is not a user.
  assert401(await refusedCp(shared.ocppUrl, 'CP-C', { headers: { authorization: header('depot-user', wrong()) } }), 'depot-user, wrong key');
  assert401(await refusedCp(shared.ocppUrl, 'CP-C', { password: key['depot-user'] }), 'username CP-C (no such user)');
  // The same credentials on the default server (must match) are refused.
  assert401(await refusedCp(server.ocppUrl, 'CP-A', depotAuth), 'depot-user for CP-A with username_must_match_cid: true');
  assert.deepEqual(cps.map((c) => c.state), [RPCClient.OPEN, RPCClient.OPEN], 'refused attempts did not disturb them');
});

test('MQTT: bad credentials refused (v5 0x86, v3.1.1 4), back-off 0x9F/5; an mqtt user held to its pub/sub ACL (%u, %c); admin everywhere but the gateway topics', { timeout: 30000 }, async (t) => {
  const url = server.mqttUrl;
  // Credentials.
  assert.equal(await refusedMqtt(url, { protocolVersion: 5, clientId: 'bad-1', username: 'dashboard', password: wrong() }), 0x86);
  assert.equal(await refusedMqtt(url, { protocolVersion: 4, clientId: 'bad-2', username: 'ops', password: wrong() }), 4);
  assert.equal(await refusedMqtt(url, { protocolVersion: 5, clientId: 'bad-3' }), 0x86, 'no credentials');
  assert.equal(await refusedMqtt(url, { protocolVersion: 5, clientId: 'bad-4', username: 'CP001', password: key.CP001 }), 0x86, 'a charge point user on MQTT');
  const guesses = [];
  for (let i = 0; i < 6 && guesses.at(-1) !== 0x9f; i++) {
    guesses.push(await refusedMqtt(url, { protocolVersion: 5, clientId: `guess-${i}`, username: 'brute', password: wrong() }));
  }
  assert.equal(guesses.at(-1), 0x9f, `no CONNACK 0x9F after wrong passwords: ${guesses}`);
  assert.ok(guesses.length >= 3 && guesses.slice(0, -1).every((c) => c === 0x86), `guesses: ${guesses}`);
  assert.equal(await refusedMqtt(url, { protocolVersion: 4, clientId: 'guess-v3', username: 'brute', password: wrong() }), 5, 'v3.1.1 back-off');

  // An mqtt user with no rules may connect (3.1.1) but not subscribe: SUBACK 0x80.
  const dash = await connectMqtt(url, { clientId: 'dash-v3', protocolVersion: 4, username: 'dashboard', password: pw.dashboard });
  t.after(() => closeQuietly(dash));
  assert.deepEqual(await refusedSub(dash, 'ocpp/#'), [0x80]);

  // The csms user: pub ocpp/cs/#, dev/%c/cmd; sub ocpp/#, csms/%u/#.
  const csms = await connectMqtt(url, { clientId: 'acl-csms', protocolVersion: 5, username: 'csms', password: pw.csms });
  t.after(() => closeQuietly(csms));
  const csmsInbox = new Inbox(csms);
  await subscribe(csms, ['ocpp/#', 'ocpp/+/CP001', 'csms/csms/#', '$share/g/ocpp/cp/+'], 1);
  for (const f of ['#', 'other/#', 'csms/ops/#', 'csms/+/#', 'dev/acl-csms/cmd']) {
    assert.deepEqual(await refusedSub(csms, f), [0x87], `subscribe ${f}`);
  }
  await deadline(csms.publishAsync('dev/acl-csms/cmd', 'x', { qos: 1 }), MS, 'PUBACK dev/%c/cmd');
  for (const topic of ['other/topic', 'dev/someone-else/cmd', 'csms/csms/x', 'ocpp/cp/CP001', 'ocpp/cp/CP001/Reply', 'ocpp/presence/CP001']) {
    assert.equal(await refusedPub(csms, topic, JSON.stringify({ forged: topic })), 0x87, `publish on ${topic}`);
  }
  assert.ok(csms.connected, 'refused publishes/subscribes do not disconnect the client');

  // The admin: every filter, any topic, except the gateway's own.
  const ops = await connectMqtt(url, { clientId: 'acl-ops', protocolVersion: 5, username: 'ops', password: pw.ops });
  t.after(() => closeQuietly(ops));
  const opsInbox = new Inbox(ops);
  await subscribe(ops, ['#', 'csms/ops/#', 'anything/+/x'], 1);
  for (const topic of ['ocpp/cp/CP001', 'ocpp/cp/CP001/Reply', 'ocpp/presence/CP001']) {
    assert.equal(await refusedPub(ops, topic, JSON.stringify({ forged: topic })), 0x87, `admin publish on ${topic}`);
  }
  await deadline(ops.publishAsync('csms/csms/note', 'for csms', { qos: 1 }), MS, 'PUBACK admin anywhere');
  // Delivered to the csms user (csms/%u/#) and to the admin, in order after everything refused above.
  await csmsInbox.next('csms/csms/note', () => true, MS);
  await opsInbox.next('csms/csms/note', () => true, MS);
  const forged = [...csmsInbox.seen, ...opsInbox.seen].filter((m) => m.json && m.json.forged);
  assert.deepEqual(forged.map((m) => m.topic), [], 'a refused publish was delivered');
});

test('reload: a replaced key closes the connected charge point (1008, presence offline/auth_revoked); it reconnects with the new key', { timeout: 30000 }, async (t) => {
  const cid = 'CP-ROT';
  const ops = await connectMqtt(server.mqttUrl, { clientId: 'rot-ops', protocolVersion: 5, username: 'ops', password: pw.ops });
  t.after(() => closeQuietly(ops));
  const inbox = new Inbox(ops);
  await subscribe(ops, ['ocpp/presence/#'], 1);
  // Bystanders whose users do not change.
  const csms = await connectMqtt(server.mqttUrl, { clientId: 'rot-csms', protocolVersion: 5, username: 'csms', password: pw.csms });
  t.after(() => closeQuietly(csms));
  const other = await authCp(server.ocppUrl, 'CP001', { password: key.CP001 });
  t.after(() => closeQuietly(other));
  const otherCloses = [];
  other.on('close', (e) => otherCloses.push(e));

  const cp = await authCp(server.ocppUrl, cid, { password: key['CP-ROT'] });
  t.after(() => closeQuietly(cp));
  const closed = onceWithin(cp, 'close', MS, `${cid} was not closed after its key was replaced`);
  closed.catch(() => {}); // awaited below
  await inbox.next(presence(cid), (j) => j && j.state === 'online', MS);

  const newKeyRot = secret(newKey());
  await usersAdd(usersFile, cid, { password: newKeyRot, replace: true });

  const ev = await closed;
  assert.equal(ev.code, 1008, `close: ${JSON.stringify(ev)}`);
  assert.equal(String(ev.reason), 'auth_revoked', `close: ${JSON.stringify(ev)}`);
  const off = await inbox.next(presence(cid), (j) => j && j.state === 'offline', MS);
  assert.equal(off.json.reason, 'auth_revoked', off.raw);

  // The old key no longer opens it; the new one does.
  assert401(await refusedCp(server.ocppUrl, cid, { password: key['CP-ROT'] }), 'old key after rotation');
  const again = await authCp(server.ocppUrl, cid, { password: newKeyRot });
  t.after(() => closeQuietly(again));
  await inbox.next(presence(cid), (j) => j && j.state === 'online', MS);

  assert.deepEqual(otherCloses, [], 'a charge point whose key did not change was closed');
  assert.equal(other.state, RPCClient.OPEN);
  assert.ok(csms.connected && ops.connected, 'MQTT users that did not change were disconnected');
});

test('no secret at rest or in the log: users files hold hashes only (mode 0600); logs carry no password or Authorization value', { timeout: 30000 }, async () => {
  assert.ok(secrets.size >= 20, `only ${secrets.size} secrets were used`);
  for (const file of usersFiles) {
    const text = fs.readFileSync(file, 'utf8');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, `${file} mode`);
    assert.match(text, /password: "sha256:[0-9a-f]{32}:[0-9a-f]{64}"/, 'charge point keys as salted SHA-256');
    assert.match(text, /password: "bcrypt:\$2[aby]\$10\$/, 'people\'s passwords as bcrypt');
    for (const s of secrets) assert.ok(!text.includes(s), `${path.basename(file)} contains a secret: ${s}`);
  }
  // Every server stopped, and its log read to the last line ("stopped").
  await server.stop();
  for (const srv of servers) {
    await waitUntil(() => srv.logs.some((r) => r.msg === 'stopped'), MS, 'the log never reached its last line "stopped"');
    const lines = [...srv.logs.map((r) => JSON.stringify(r)), ...srv.rawStderr];
    for (const s of secrets) {
      const base64 = s.startsWith('Basic ') ? s.slice(6) : null;
      for (const line of lines) {
        assert.ok(!line.includes(s) && !(base64 && line.includes(base64)), `log line contains a secret (${s}): ${line}`);
      }
    }
    const mentions = lines.filter((l) => /authorization/i.test(l) && /basic/i.test(l));
    assert.deepEqual(mentions, [], 'log lines mentioning an Authorization header');
  }
});
