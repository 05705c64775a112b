'use strict';
// TLS (docs/security.md, "TLS: security profiles 2 and 3") with other
// people's clients: ocpp-rpc charge points over wss, trusting a test CA made
// at run time with the openssl CLI (lib/tls.js), with HTTP Basic credentials
// (profile 2) or a client certificate (profile 3); mqtt.js over mqtts and
// MQTT over wss, with a password or a client certificate; Node's TLS stack
// for the cipher suites and versions each listener offers; SIGHUP reloading
// certificates and the client CA without dropping connections.
//
// Four servers: A serves profile 2 (no client CA), B profile 3 with
// `cn` identity and a required organization plus profile 2 next to it
// (--ocpp-tls-basic-addr), C profile 3 with `serial` identity and a server
// certificate that expires in 10 days; D the same rule with a 1 s ocpp.idle_timeout.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { test, before, after } = require('node:test');
const mqtt = require('mqtt');
const { RPCClient } = require('ocpp-rpc');
const { deadline, onceWithin, Inbox, connectMqtt, subscribe, connectCp, closeQuietly } = require('../lib/util');
const { runBinary, newKey, tempDir, waitUntil } = require('../lib/users');
const { requireOpenssl, makeCa, startTlsServer, handshake } = require('../lib/tls');

const MS = 10000;
const ORG = 'ChargeMQ Interop Depot';

const key = { 'CP-P2': newKey(), 'CP-MIN2': newKey(), 'CP-P2B': newKey(), 'CP-MIN3': newKey() };
const pw = { csms: `csms-pass-${newKey()}`, ops: `ops-pass-${newKey()}` };

const tmp = tempDir('chargemq-tls-');
let ca1; // the depot's CA: server certificates and client certificates
let ca2; // another CA: refused, until B's client CA is switched to it
const crt = {}; // issued certificates by name
let A; // profile 2
let B; // profile 3 (cn, organization ORG) + profile 2 next to it
let C; // profile 3 (serial)
let D; // profile 3 (serial), ocpp.idle_timeout 1s

/** `chargemq users add` with the secret on stdin (bcrypt cost 4: people's logins stay fast here). */
function addUser(file, name, { role = 'chargepoint', password, minProfile, pub = [], sub = [] }) {
  const args = ['users', 'add', name, '--users-file', file, '--role', role, '--bcrypt-cost', '4'];
  if (minProfile !== undefined) args.push('--min-profile', String(minProfile));
  for (const f of pub) args.push('--pub', f);
  for (const f of sub) args.push('--sub', f);
  args.push('--password-stdin');
  return runBinary(args, `${password}\n`);
}

before(async () => {
  requireOpenssl();
  const dir = tmp.dir;
  [ca1, ca2] = await Promise.all([
    makeCa(dir, 'ca1', { O: ORG, CN: 'chargemq interop CA 1' }),
    makeCa(dir, 'ca2', { O: ORG, CN: 'chargemq interop CA 2' }),
  ]);
  const issued = await Promise.all([
    ca1.issue('server-rsa', { CN: 'localhost', profile: 'server-rsa' }),
    ca1.issue('server-ec', { CN: 'localhost', profile: 'server-ec' }),
    ca1.issue('b-ec', { CN: 'localhost', profile: 'server-ec' }),
    ca1.issue('b-ec-new', { CN: 'localhost', profile: 'server-ec', days: 20 }),
    ca1.issue('server-ec-soon', { CN: 'localhost', profile: 'server-ec', days: 10 }),
    ca1.issue('CP001', { CN: 'CP001', O: ORG }),
    ca1.issue('CP001-other-org', { CN: 'CP001', O: 'Someone Else' }),
    ca1.issue('CP-MIN3', { CN: 'CP-MIN3', O: ORG }),
    ca1.issue('dashboard', { CN: 'dashboard', O: ORG }),
    ca1.issue('stranger', { CN: 'stranger', O: ORG }),
    ca1.issue('SN-4711', { CN: 'SN-4711', O: ORG }),
    ca1.issue('SN-9999', { CN: 'SN-9999', O: ORG }),
    ca2.issue('CP001-ca2', { CN: 'CP001', O: ORG }),
    ca2.issue('CP002-ca2', { CN: 'CP002', O: ORG }),
  ]);
  for (const c of issued) crt[c.name] = c;
  // B's client CA file is rewritten by the reload test.
  const bClientCa = path.join(dir, 'b-client-ca.pem');
  fs.copyFileSync(ca1.cert, bClientCa);

  const usersA = path.join(dir, 'users-a.yaml');
  await addUser(usersA, 'CP-P2', { password: key['CP-P2'] });
  await addUser(usersA, 'CP-MIN2', { password: key['CP-MIN2'], minProfile: 2 });
  await addUser(usersA, 'csms', { role: 'mqtt', password: pw.csms, pub: ['ocpp/cs/#'], sub: ['ocpp/#'] });
  await addUser(usersA, 'ops', { role: 'admin', password: pw.ops });
  const usersB = path.join(dir, 'users-b.yaml');
  await addUser(usersB, 'CP-P2B', { password: key['CP-P2B'] });
  await addUser(usersB, 'CP-MIN3', { password: key['CP-MIN3'], minProfile: 3 });
  await addUser(usersB, 'csms', { role: 'mqtt', password: pw.csms, pub: ['ocpp/cs/#'], sub: ['ocpp/#'] });
  // Logs in by certificate only: its password is never sent.
  await addUser(usersB, 'dashboard', { role: 'mqtt', password: `unused-${newKey()}`, sub: ['ocpp/presence/#'] });

  const servers = await Promise.allSettled([
    startTlsServer({
      tlsListeners: ['ocpp-tls', 'mqtt-tls', 'http-tls'],
      certs: [crt['server-rsa'], crt['server-ec']],
      usersFile: usersA,
    }),
    startTlsServer({
      tlsListeners: ['ocpp-tls', 'ocpp-tls-basic', 'mqtt-tls', 'mqtt-wss'],
      certs: [crt['server-rsa'], crt['b-ec']],
      clientCa: bClientCa,
      usersFile: usersB,
      ocpp: [`client_cert_organization: ${JSON.stringify(ORG)}`],
    }),
    startTlsServer({
      tlsListeners: ['ocpp-tls'],
      certs: [crt['server-rsa'], crt['server-ec-soon']],
      clientCa: ca1.cert,
      ocpp: ['client_cert_identity: serial'],
    }),
    startTlsServer({
      tlsListeners: ['ocpp-tls'],
      certs: [crt['server-ec']],
      clientCa: ca1.cert,
      ocpp: ['client_cert_identity: serial', 'idle_timeout: 1s'],
    }),
  ]);
  [A, B, C, D] = servers.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = servers.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
});

after(async () => {
  try {
    for (const s of [A, B, C, D]) if (s) await s.stop();
  } finally {
    tmp.remove();
  }
});

/** TLS options of a client that trusts ca1 and, given a certificate, presents it. */
const trust = (cert) => ({ ca: ca1.certPem, ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) });

/** One ocpp-rpc connect attempt: resolves to {cp} or {err} (the client closed). */
async function tryCp(url, identity, opts = {}) {
  const cp = new RPCClient({ endpoint: url, identity, protocols: ['ocpp1.6'], strictMode: true, reconnect: false, ...opts });
  try {
    await deadline(cp.connect(), MS, `OCPP connect ${identity}`);
    return { cp };
  } catch (err) {
    await closeQuietly(cp);
    return { err };
  }
}

/** A connect that must be refused: resolves to the error (err.code: the HTTP status, or a TLS error code). */
async function refusedCp(url, identity, opts) {
  const { cp, err } = await tryCp(url, identity, opts);
  if (cp) {
    await closeQuietly(cp);
    throw new Error(`charge point ${identity} was admitted at ${url}, want a refusal`);
  }
  return err;
}

/** An mqtt.js connect that must be refused: resolves to the CONNACK code. */
async function refusedMqtt(url, opts) {
  try {
    const c = await deadline(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: MS, ...opts }), MS, 'MQTT connect');
    await closeQuietly(c);
  } catch (err) {
    return err.code;
  }
  throw new Error(`MQTT client ${opts.clientId} was admitted, want a refusal`);
}

/** The HTTP refusal of a handshake the TLS layer accepted. */
function assertHttp(err, status, what) {
  assert.equal(err.code, status, `${what}: ${err.code} ${err.message}`);
}

/** A refusal by the TLS layer itself: no HTTP response at all. */
function assertTlsRefusal(err, codes, what) {
  assert.ok(!err.response, `${what}: got an HTTP response ${err.code}, want a TLS refusal`);
  assert.ok(codes.includes(err.code), `${what}: ${err.code} ${err.message}, want one of ${codes}`);
}

const refusedLog = (srv, cid, authReason) => srv.findLogs((r) => r.msg === 'handshake refused' && r.path === `/ocpp/${cid}` && r.auth_reason === authReason);

/** CSMS side of a charge point's CALL: waits for it on MQTT, answers `payload`, returns the published CALL. */
async function answer(csms, inbox, cid, action, payload) {
  const up = await inbox.next(`ocpp/cp/${cid}`, (j) => j && j.MessageTypeId === 2 && j.Action === action, MS);
  await deadline(csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify({
    MessageTypeId: 3, UniqueId: up.json.UniqueId, Action: action, Payload: payload,
  }), { qos: 1 }), MS, `PUBACK answer to ${action}`);
  return up.json;
}

const bootReq = (serial) => ({ chargePointVendor: 'VendorX', chargePointModel: 'ModelY', ...(serial ? { chargePointSerialNumber: serial } : {}) });
const bootConf = () => ({ status: 'Accepted', currentTime: new Date().toISOString(), interval: 300 });

test('profile 2: ocpp-rpc over wss with Basic auth; its BootNotification reaches a CSMS on mqtts and is answered from there', { timeout: 30000 }, async (t) => {
  const cid = 'CP-P2';
  const csms = await connectMqtt(A.tls['mqtt-tls'], { clientId: 'p2-csms', protocolVersion: 5, username: 'csms', password: pw.csms, ca: ca1.certPem });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, ['ocpp/cp/+', 'ocpp/presence/+'], 1);

  const cp = await connectCp(A.tls['ocpp-tls'], cid, { password: key[cid], wsOpts: trust() });
  t.after(() => closeQuietly(cp));
  const closes = [];
  cp.on('close', (e) => closes.push(e));
  assert.equal(cp.protocol, 'ocpp1.6');
  await inbox.next(`ocpp/presence/${cid}`, (j) => j && j.state === 'online', MS);

  const req = bootReq();
  const call = cp.call('BootNotification', req);
  const conf = bootConf();
  const up = await answer(csms, inbox, cid, 'BootNotification', conf);
  assert.deepEqual(up, { MessageTypeId: 2, UniqueId: up.UniqueId, Action: 'BootNotification', Payload: req });
  assert.deepEqual(await deadline(call, MS, 'BootNotification call'), conf);

  // Profile 2 is still profile 1's credentials: a wrong key is 401 over wss too.
  assertHttp(await refusedCp(A.tls['ocpp-tls'], cid, { password: newKey(), wsOpts: trust() }), 401, 'wrong key over wss');
  assertHttp(await refusedCp(A.tls['ocpp-tls'], cid, { wsOpts: trust() }), 401, 'no credentials over wss');
  // A client that does not trust the depot CA stops at the server certificate.
  assertTlsRefusal(await refusedCp(A.tls['ocpp-tls'], cid, { password: key[cid] }), ['UNABLE_TO_VERIFY_LEAF_SIGNATURE'], 'client without the CA');
  assert.deepEqual(closes, [], 'the charge point was disconnected');
  assert.equal(cp.state, RPCClient.OPEN);
});

test('cipher suites and versions: TLS 1.2 with the four OCPP suites (RSA and ECDSA certificates), modern ECDHE, TLS 1.3; TLS 1.0/1.1 and CBC refused; https admin API', { timeout: 30000 }, async () => {
  const rsa = crt['server-rsa'].fingerprint;
  const ec = crt['server-ec'].fingerprint;
  const tls12 = (ciphers) => ({ ca: ca1.certPem, ciphers, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
  for (const name of ['ocpp-tls', 'mqtt-tls', 'http-tls']) {
    const addr = A.tlsAddrs[name];
    const ok = async (opts, cipher, protocol, fingerprint) => {
      const r = await handshake(addr, opts);
      assert.ok(r.ok, `${name} ${opts.ciphers || protocol}: ${r.err && (r.err.code || r.err.message)}`);
      assert.equal(r.protocol, protocol, `${name} ${opts.ciphers}`);
      if (cipher) assert.equal(r.cipher, cipher, `${name} ${opts.ciphers}`);
      if (fingerprint) assert.equal(r.peer.fingerprint256, fingerprint, `${name} ${opts.ciphers}: served certificate`);
      return r;
    };
    const refused = async (opts, code, what) => {
      const r = await handshake(addr, opts);
      assert.ok(!r.ok, `${name} ${what}: handshake succeeded (${r.protocol} ${r.cipher})`);
      assert.equal(r.err.code, code, `${name} ${what}: ${r.err.message}`);
    };
    // The four OCPP suites [OCPP 2.0.1 A00.FR.317; 1.6 security whitepaper]: TLS_RSA needs the RSA certificate, ECDHE_ECDSA the ECDSA one.
    await ok(tls12('AES128-GCM-SHA256'), 'TLS_RSA_WITH_AES_128_GCM_SHA256', 'TLSv1.2', rsa);
    await ok(tls12('AES256-GCM-SHA384'), 'TLS_RSA_WITH_AES_256_GCM_SHA384', 'TLSv1.2', rsa);
    await ok(tls12('ECDHE-ECDSA-AES128-GCM-SHA256'), 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLSv1.2', ec);
    await ok(tls12('ECDHE-ECDSA-AES256-GCM-SHA384'), 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'TLSv1.2', ec);
    // Go's modern defaults, and TLS 1.3.
    await ok(tls12('ECDHE-RSA-AES128-GCM-SHA256'), 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLSv1.2', rsa);
    await ok(tls12('ECDHE-ECDSA-CHACHA20-POLY1305'), 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'TLSv1.2', ec);
    await ok({ ca: ca1.certPem }, null, 'TLSv1.3');
    // Older versions: Node's OpenSSL offers them only at security level 0 (LIBRARIES.md); the server refuses.
    await refused({ ca: ca1.certPem, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'TLS 1.1');
    await refused({ ca: ca1.certPem, minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'TLS 1.0');
    // Nothing weaker than the list: CBC suites are not offered.
    await refused(tls12('AES128-SHA'), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'TLS_RSA_WITH_AES_128_CBC_SHA');
    await refused(tls12('ECDHE-RSA-AES128-SHA'), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA');
    // The WebSocket listener speaks HTTP/1.1 only (a WebSocket upgrade needs it); https offers h2 too (a
    // browser's six HTTP/1.1 connections would be taken by a few pages' event streams); mqtts negotiates no ALPN.
    const alpn = await ok({ ca: ca1.certPem, ALPNProtocols: ['h2', 'http/1.1'] }, null, 'TLSv1.3');
    const wantALPN = { 'mqtt-tls': false, 'http-tls': 'h2' }[name] ?? 'http/1.1';
    assert.equal(alpn.alpn, wantALPN, `${name}: ALPN`);
  }

  // The admin API over https: health open, /api/v1 for an admin user (there is a users file).
  const get = (p, auth) => deadline(new Promise((resolve, reject) => {
    https.get(`${A.tls['http-tls']}${p}`, { ca: ca1.certPem, auth }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    }).on('error', reject);
  }), MS, `GET ${p}`);
  assert.equal((await get('/readyz')).status, 200);
  assert.equal((await get('/healthz')).status, 200);
  assert.equal((await get('/metrics')).status, 200);
  const anon = await get('/api/v1/stats');
  assert.equal(anon.status, 401, anon.body);
  assert.match(String(anon.headers['www-authenticate']), /^Basic realm="chargemq"/);
  const stats = await get('/api/v1/stats', `ops:${pw.ops}`);
  assert.equal(stats.status, 200, stats.body);
  assert.equal(typeof JSON.parse(stats.body).ocpp, 'object');
});

test('min_profile 2: the right key on plain ws is refused 403 (no downgrade); a wrong one 401; admitted over wss', { timeout: 30000 }, async (t) => {
  const cid = 'CP-MIN2';
  assertHttp(await refusedCp(A.ocppUrl, cid, { password: key[cid] }), 403, 'right key, profile 1');
  // The minimum is told only to the key's holder.
  assertHttp(await refusedCp(A.ocppUrl, cid, { password: newKey() }), 401, 'wrong key, profile 1');
  await waitUntil(() => refusedLog(A, cid, 'profile_below_minimum').length, MS, 'no "handshake refused" line with auth_reason profile_below_minimum');
  const cp = await connectCp(A.tls['ocpp-tls'], cid, { password: key[cid], wsOpts: trust() });
  t.after(() => closeQuietly(cp));
  assert.equal(cp.state, RPCClient.OPEN);
  // A user without a minimum may still use profile 1.
  const p1 = await connectCp(A.ocppUrl, 'CP-P2', { password: key['CP-P2'] });
  await closeQuietly(p1);
});

test('profile 3 (cn identity, organization): a client certificate connects and exchanges calls; wrong CN or O → 403; no certificate, or another CA\'s, refused by TLS; a wrong Basic key with a good certificate → 401', { timeout: 30000 }, async (t) => {
  const cid = 'CP001';
  const url = B.tls['ocpp-tls'];
  // The CSMS over MQTT-over-wss, trusting the depot CA, with a password.
  const csms = await connectMqtt(B.tls['mqtt-wss'], { clientId: 'p3-csms', protocolVersion: 5, username: 'csms', password: pw.csms, ca: ca1.certPem });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, ['ocpp/cp/+', 'ocpp/cp/+/Reply', 'ocpp/presence/+'], 1);

  // No users-file entry and no Basic credentials: the certificate is the credential.
  const cp = await connectCp(url, cid, { wsOpts: trust(crt.CP001) });
  t.after(() => closeQuietly(cp));
  const closes = [];
  cp.on('close', (e) => closes.push(e));
  await inbox.next(`ocpp/presence/${cid}`, (j) => j && j.state === 'online', MS);
  const req = bootReq();
  const call = cp.call('BootNotification', req);
  const conf = bootConf();
  assert.deepEqual((await answer(csms, inbox, cid, 'BootNotification', conf)).Payload, req);
  assert.deepEqual(await deadline(call, MS, 'BootNotification call'), conf);
  // And a command the other way.
  cp.handle('RemoteStartTransaction', ({ params }) => ({ status: params.idTag === 'T1' ? 'Accepted' : 'Rejected' }));
  await deadline(csms.publishAsync(`ocpp/cs/${cid}`, JSON.stringify({
    MessageTypeId: 2, UniqueId: 'p3-c1', Action: 'RemoteStartTransaction', Payload: { idTag: 'T1' },
  }), { qos: 1 }), MS, 'PUBACK command');
  const reply = await inbox.next(`ocpp/cp/${cid}/Reply`, (j) => j && j.UniqueId === 'p3-c1', MS);
  assert.deepEqual(reply.json.Payload, { status: 'Accepted' });

  // The certificate binds the id: CP001's certificate does not open CP002.
  assertHttp(await refusedCp(url, 'CP002', { wsOpts: trust(crt.CP001) }), 403, 'CN CP001 as CP002');
  // The operator's organization is required (A00.FR.404).
  assertHttp(await refusedCp(url, cid, { wsOpts: trust(crt['CP001-other-org']) }), 403, 'O "Someone Else"');
  // Credentials sent next to a certificate must be right.
  assertHttp(await refusedCp(url, cid, { password: newKey(), wsOpts: trust(crt.CP001) }), 401, 'good certificate, wrong Basic key');
  // No certificate: TLS 1.2 refuses it in the handshake; TLS 1.3 (LIBRARIES.md) with an alert after it.
  assertTlsRefusal(await refusedCp(url, cid, { wsOpts: { ...trust(), maxVersion: 'TLSv1.2' } }), ['EPROTO'], 'no certificate, TLS 1.2');
  assertTlsRefusal(await refusedCp(url, cid, { wsOpts: trust() }), ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'], 'no certificate, TLS 1.3');
  // A certificate of another CA, with the right CN and O.
  assertTlsRefusal(await refusedCp(url, cid, { wsOpts: trust(crt['CP001-ca2']) }), ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'], 'certificate of another CA');

  await waitUntil(() => refusedLog(B, 'CP002', 'certificate_cn_mismatch').length, MS, 'no refusal logged with auth_reason certificate_cn_mismatch');
  await waitUntil(() => refusedLog(B, cid, 'certificate_organization').length, MS, 'no refusal logged with auth_reason certificate_organization');
  assert.deepEqual(closes, [], 'refused attempts disturbed the connected charge point');
  assert.equal(cp.state, RPCClient.OPEN);
});

test('profile 2 next to profile 3 (--ocpp-tls-basic-addr); min_profile 3 refuses Basic over TLS (403) and admits the certificate', { timeout: 30000 }, async (t) => {
  const basic = B.tls['ocpp-tls-basic'];
  const cp2 = await connectCp(basic, 'CP-P2B', { password: key['CP-P2B'], wsOpts: trust() });
  t.after(() => closeQuietly(cp2));
  assertHttp(await refusedCp(basic, 'CP-P2B', { password: newKey(), wsOpts: trust() }), 401, 'wrong key on the profile 2 port');

  const cid = 'CP-MIN3';
  assertHttp(await refusedCp(basic, cid, { password: key[cid], wsOpts: trust() }), 403, 'min_profile 3, right key over TLS');
  assertHttp(await refusedCp(B.ocppUrl, cid, { password: key[cid] }), 403, 'min_profile 3, right key over plain ws');
  assertHttp(await refusedCp(basic, cid, { password: newKey(), wsOpts: trust() }), 401, 'min_profile 3, wrong key');
  const cp3 = await connectCp(B.tls['ocpp-tls'], cid, { wsOpts: trust(crt[cid]) });
  t.after(() => closeQuietly(cp3));
  // The key as well as the certificate: still profile 3.
  const both = await connectCp(B.tls['ocpp-tls'], cid, { password: key[cid], wsOpts: trust(crt[cid]) });
  await closeQuietly(both);
  assert.equal(cp2.state, RPCClient.OPEN);
});

test('MQTT certificate logins on mqtts and MQTT over wss: username = CN, an mqtt user of the users file, held to its ACL; unknown or charge point CNs refused', { timeout: 30000 }, async (t) => {
  for (const [name, url] of [['mqtts', B.tls['mqtt-tls']], ['wss', B.tls['mqtt-wss']]]) {
    const dash = await connectMqtt(url, { clientId: `dash-${name}`, protocolVersion: 5, ...trust(crt.dashboard) });
    t.after(() => closeQuietly(dash));
    // Its ACL (sub ocpp/presence/#, no pub) applies.
    await subscribe(dash, ['ocpp/presence/#'], 1);
    await assert.rejects(deadline(dash.subscribeAsync('#', { qos: 1 }), MS, 'subscribe #'),
      (err) => { assert.deepEqual(err.packet && err.packet.granted, [0x87], err.message); return true; });
    await assert.rejects(deadline(dash.publishAsync('ocpp/cs/CP001', '{}', { qos: 1 }), MS, 'publish'),
      (err) => { assert.equal(err.code, 0x87, err.message); return true; });
    // The username may be given, if it is the CN.
    const named = await connectMqtt(url, { clientId: `dash-named-${name}`, protocolVersion: 5, username: 'dashboard', ...trust(crt.dashboard) });
    await closeQuietly(named);
    // A CN that is no user, or a charge point's.
    assert.equal(await refusedMqtt(url, { clientId: `stranger-${name}`, protocolVersion: 5, ...trust(crt.stranger) }), 0x86, `${name}: CN stranger`);
    assert.equal(await refusedMqtt(url, { clientId: `cp-${name}`, protocolVersion: 5, ...trust(crt['CP-MIN3']) }), 0x86, `${name}: CN of a chargepoint user`);
    // Without a certificate a password login still works (the certificate is optional on MQTT).
    const csms = await connectMqtt(url, { clientId: `csms-${name}`, protocolVersion: 4, username: 'csms', password: pw.csms, ca: ca1.certPem });
    await closeQuietly(csms);
  }
  // The name alone, without the certificate, is nothing.
  assert.equal(await refusedMqtt(B.mqttUrl, { clientId: 'dash-plain', protocolVersion: 5, username: 'dashboard' }), 0x86, 'username dashboard, no password, plain TCP');
  assert.equal(await refusedMqtt(B.tls['mqtt-tls'], { clientId: 'dash-nocert', protocolVersion: 5, username: 'dashboard', ca: ca1.certPem }), 0x86, 'username dashboard, no password, no certificate');
});

test('serial identity: calls before BootNotification get SecurityError and are not forwarded; the right chargePointSerialNumber brings it online; another or none → Rejected, 1008 auth_failed', { timeout: 30000 }, async (t) => {
  // C's ECDSA certificate expires in 10 days: warned about at start.
  const soon = C.findLogs((r) => r.msg === 'certificate expires soon' && r.file === crt['server-ec-soon'].cert);
  assert.equal(soon.length, 1, JSON.stringify(C.findLogs((r) => /certificate/.test(r.msg))));
  assert.ok(soon[0].level === 'WARN' && soon[0].days_left >= 8 && soon[0].days_left <= 10, JSON.stringify(soon[0]));
  assert.deepEqual(C.findLogs((r) => r.msg === 'certificate expires soon' && r.file !== crt['server-ec-soon'].cert), [], 'a certificate far from expiry was warned about');

  const csms = await connectMqtt(C.mqttUrl, { clientId: 'serial-csms', protocolVersion: 5 });
  t.after(() => closeQuietly(csms));
  const inbox = new Inbox(csms);
  await subscribe(csms, ['ocpp/cp/+', 'ocpp/presence/+'], 1);
  const url = C.tls['ocpp-tls'];

  const cid = 'CP-SER';
  const cp = await connectCp(url, cid, { wsOpts: trust(crt['SN-4711']) });
  t.after(() => closeQuietly(cp));
  const closes = [];
  cp.on('close', (e) => closes.push(e));
  await assert.rejects(deadline(cp.call('Heartbeat', {}), MS, 'Heartbeat before BootNotification'), (err) => {
    assert.equal(err.rpcErrorCode, 'SecurityError', `${err.rpcErrorCode}: ${err.message}`);
    return true;
  });
  const req = bootReq('SN-4711');
  const call = cp.call('BootNotification', req);
  const conf = bootConf();
  assert.deepEqual((await answer(csms, inbox, cid, 'BootNotification', conf)).Payload, req);
  assert.deepEqual(await deadline(call, MS, 'BootNotification call'), conf);
  const hb = cp.call('Heartbeat', {});
  await answer(csms, inbox, cid, 'Heartbeat', { currentTime: new Date().toISOString() });
  await deadline(hb, MS, 'Heartbeat after BootNotification');
  // Nothing before the BootNotification was forwarded, and it came online only then.
  const mine = inbox.seen.filter((m) => m.topic === `ocpp/cp/${cid}` || m.topic === `ocpp/presence/${cid}`);
  assert.deepEqual(mine.map((m) => [m.topic, m.json && (m.json.Action || m.json.state)]), [
    [`ocpp/presence/${cid}`, 'online'],
    [`ocpp/cp/${cid}`, 'BootNotification'],
    [`ocpp/cp/${cid}`, 'Heartbeat'],
  ]);
  assert.deepEqual(closes, []);

  // As OCPP words the rule, the certificate does not bind the id: the same
  // certificate proves any id whose BootNotification reports its serial (docs/security.md).
  const other = await connectCp(url, 'CP-ANY', { wsOpts: trust(crt['SN-4711']) });
  t.after(() => closeQuietly(other));
  const otherBoot = other.call('BootNotification', bootReq('SN-4711'));
  await answer(csms, inbox, 'CP-ANY', 'BootNotification', bootConf());
  await deadline(otherBoot, MS, 'CP-ANY BootNotification');

  // Another serial, or none: Rejected by the gateway itself, closed 1008 auth_failed, presence offline auth_failed.
  for (const [badCid, serial] of [['CP-SER2', 'SN-0000'], ['CP-SER3', undefined]]) {
    const bad = await connectCp(url, badCid, { wsOpts: trust(crt['SN-9999']) });
    t.after(() => closeQuietly(bad));
    const closed = onceWithin(bad, 'close', MS, `${badCid} was not closed`);
    closed.catch(() => {});
    const res = await deadline(bad.call('BootNotification', bootReq(serial)), MS, `${badCid} BootNotification`);
    assert.equal(res.status, 'Rejected', JSON.stringify(res));
    const ev = await closed;
    assert.equal(ev.code, 1008, JSON.stringify(ev));
    assert.equal(String(ev.reason), 'auth_failed', JSON.stringify(ev));
    const off = await inbox.next(`ocpp/presence/${badCid}`, (j) => j && j.state === 'offline', MS);
    assert.equal(off.json.reason, 'auth_failed', off.raw);
    assert.deepEqual(inbox.seen.filter((m) => m.topic === `ocpp/cp/${badCid}` || (m.topic === `ocpp/presence/${badCid}` && m.json.state === 'online')).map((m) => m.raw),
      [], `${badCid}: forwarded or online before proving its serial`);
  }
  assert.equal(cp.state, RPCClient.OPEN);
});

test('serial identity: calls but no BootNotification within ocpp.idle_timeout → closed 1008 auth_failed, presence offline auth_failed', { timeout: 30000 }, async (t) => {
  const cid = 'CP-SLOW';
  const watcher = await connectMqtt(D.mqttUrl, { clientId: 'slow-watcher', protocolVersion: 5 });
  t.after(() => closeQuietly(watcher));
  const inbox = new Inbox(watcher);
  await subscribe(watcher, ['ocpp/presence/+'], 1);
  const cp = await connectCp(D.tls['ocpp-tls'], cid, { wsOpts: trust(crt['SN-4711']) });
  t.after(() => closeQuietly(cp));
  const closed = onceWithin(cp, 'close', MS, `${cid} was not closed after idle_timeout`);
  closed.catch(() => {});
  const started = Date.now();
  await assert.rejects(deadline(cp.call('Heartbeat', {}), MS, 'Heartbeat'), (err) => err.rpcErrorCode === 'SecurityError');
  const ev = await closed;
  assert.equal(ev.code, 1008, JSON.stringify(ev));
  assert.equal(String(ev.reason), 'auth_failed', JSON.stringify(ev));
  assert.ok(Date.now() - started >= 900, `closed after ${Date.now() - started} ms, before idle_timeout`);
  const off = await inbox.next(`ocpp/presence/${cid}`, (j) => j && j.state === 'offline', MS);
  assert.equal(off.json.reason, 'auth_failed', off.raw);
  await waitUntil(() => D.logs.some((r) => r.msg === "charge point refused: no BootNotification proving the certificate's serial number in time" && r.cid === cid), MS, 'no refusal logged');
});

test('SIGHUP re-reads the server certificates and the client CA without dropping connections; a file that does not load keeps the current ones', { timeout: 30000 }, async (t) => {
  const cp = await connectCp(B.tls['ocpp-tls'], 'CP001', { wsOpts: trust(crt.CP001) });
  t.after(() => closeQuietly(cp));
  const closes = [];
  cp.on('close', (e) => closes.push(e));
  const csms = await connectMqtt(B.tls['mqtt-tls'], { clientId: 'reload-csms', protocolVersion: 5, username: 'csms', password: pw.csms, ca: ca1.certPem });
  t.after(() => closeQuietly(csms));
  const ecdsa = { ca: ca1.certPem, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' };
  const before = await handshake(B.tlsAddrs['ocpp-tls-basic'], ecdsa);
  assert.equal(before.peer.fingerprint256, crt['b-ec'].fingerprint);

  // SIGHUP is handled once the start line is logged.
  await waitUntil(() => B.logs.some((r) => r.msg === 'chargemq started'), MS, 'no "chargemq started" line');
  const hup = async (msg) => {
    const seen = B.logs.length;
    process.kill(B.pid, 'SIGHUP');
    return waitUntil(() => B.logs.slice(seen).find((r) => r.msg === msg), MS, `no "${msg}" line after SIGHUP`);
  };
  // New files: an ECDSA certificate (expiring in 20 days) and another client CA.
  fs.copyFileSync(crt['b-ec-new'].cert, crt['b-ec'].cert);
  fs.copyFileSync(crt['b-ec-new'].key, crt['b-ec'].key);
  fs.copyFileSync(ca2.cert, path.join(tmp.dir, 'b-client-ca.pem'));
  const seen = B.logs.length;
  await hup('certificates reloaded');
  const warned = await waitUntil(() => B.logs.slice(seen).find((r) => r.msg === 'certificate expires soon' && r.file === crt['b-ec'].cert), MS, 'the 20-day certificate was not warned about after the reload');
  assert.ok(warned.days_left >= 18 && warned.days_left <= 20, JSON.stringify(warned));

  const afterReload = await handshake(B.tlsAddrs['ocpp-tls-basic'], ecdsa);
  assert.equal(afterReload.peer.fingerprint256, crt['b-ec-new'].fingerprint, 'the new certificate is served');
  // The new client CA decides new handshakes: ca1's certificates are refused, ca2's admitted.
  assertTlsRefusal(await refusedCp(B.tls['ocpp-tls'], 'CP-MIN3', { wsOpts: trust(crt['CP-MIN3']) }), ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'], 'ca1 certificate after the reload');
  const cp2 = await connectCp(B.tls['ocpp-tls'], 'CP002', { wsOpts: trust(crt['CP002-ca2']) });
  t.after(() => closeQuietly(cp2));

  // A certificate file that does not load: an error, and the current certificates stay.
  fs.writeFileSync(crt['b-ec'].cert, 'not a certificate\n');
  const err = await hup('certificates not reloaded; the current ones stay');
  assert.equal(err.level, 'ERROR', JSON.stringify(err));
  const kept = await handshake(B.tlsAddrs['ocpp-tls-basic'], ecdsa);
  assert.equal(kept.peer.fingerprint256, crt['b-ec-new'].fingerprint, 'a broken file replaced the served certificate');

  // Nobody was dropped: the charge point admitted by the old CA is still connected and answers.
  assert.deepEqual(closes, []);
  assert.equal(cp.state, RPCClient.OPEN);
  assert.ok(csms.connected, 'the mqtts client was disconnected');
  const inbox = new Inbox(csms);
  await subscribe(csms, ['ocpp/cp/CP001'], 1);
  const call = cp.call('Heartbeat', {});
  await answer(csms, inbox, 'CP001', 'Heartbeat', { currentTime: new Date().toISOString() });
  await deadline(call, MS, 'Heartbeat after the reload');
});
