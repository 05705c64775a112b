'use strict';
// Helpers for the TLS tests (tests/11-tls.test.js): a throw-away PKI made at
// run time with the openssl CLI (Node 20 cannot issue X.509 certificates),
// chargemq started with TLS listeners on 127.0.0.1:0 (their bound addresses
// read from its "listening" log lines), and single TLS handshakes for the
// cipher-suite and version checks.
//
// The certificates are made the way docs/security.md tells an operator to
// make them (a CSR, then `openssl x509 -req` with an extension file), with
// P-256 keys where the key type does not matter, because they are made in
// milliseconds; only the RSA server certificate has an RSA key. Serial
// numbers are random (-set_serial), so certificates can be issued in
// parallel without a shared serial file.

const { execFile, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { startServer } = require('./server');
const { deadline } = require('./util');
const { waitUntil } = require('./users');

/** The openssl CLI's version line; throws, saying what to install, when it is missing. */
function requireOpenssl() {
  try {
    return execFileSync('openssl', ['version'], { encoding: 'utf8', timeout: 10000 }).trim();
  } catch (err) {
    throw new Error(`the TLS tests make their certificates with the openssl CLI, which did not run (${err.code || err.message}): ` +
      'install it (Debian: apt-get install openssl); make interop-deps should have');
  }
}

function openssl(args, cwd) {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 20000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) {
        err.message = `openssl ${args.join(' ')}: ${err.message}\n${stderr}`;
        reject(err);
      } else {
        resolve(stdout);
      }
    });
  });
}

const randomSerial = () => `0x${crypto.randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`;

const EXTENSIONS = {
  ca: ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign'],
  'server-rsa': ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost, IP:127.0.0.1'],
  'server-ec': ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost, IP:127.0.0.1'],
  client: ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth'],
};

const KEYS = { rsa: ['-newkey', 'rsa:2048'], ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] };

/** An OpenSSL -subj value from {CN, O}. */
function subj({ CN, O }) {
  const esc = (s) => s.replace(/[/\\=+,]/g, (c) => `\\${c}`);
  return (O !== undefined ? `/O=${esc(O)}` : '') + `/CN=${esc(CN)}`;
}

/**
 * A certificate authority in dir. ca.issue(name, opts) makes name.key and
 * name.crt signed by it; opts: {CN, O, profile: 'server-rsa'|'server-ec'|
 * 'client', days}. Each certificate is returned as {name, cert, key, certPem,
 * keyPem, fingerprint}, with file paths in cert and key.
 */
async function makeCa(dir, name, subject, days = 3650) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [profile, lines] of Object.entries(EXTENSIONS)) {
    const f = path.join(dir, `${profile}.ext`);
    if (!fs.existsSync(f)) fs.writeFileSync(f, `${lines.join('\n')}\n`);
  }
  await openssl(['req', '-x509', ...KEYS.ec, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-days', String(days), '-subj', subj(subject), '-set_serial', randomSerial(),
    '-addext', EXTENSIONS.ca[0], '-addext', EXTENSIONS.ca[1]], dir);
  const ca = {
    name,
    dir,
    cert: path.join(dir, `${name}.pem`),
    key: path.join(dir, `${name}.key`),
    certPem: fs.readFileSync(path.join(dir, `${name}.pem`)),
    /** Issues leaf `file` (file.key, file.crt). */
    async issue(file, { CN, O, profile = 'client', days = 365 }) {
      const keyType = profile === 'server-rsa' ? 'rsa' : 'ec';
      await openssl(['req', '-new', ...KEYS[keyType], '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`,
        '-subj', subj({ CN, O })], dir);
      await openssl(['x509', '-req', '-in', `${file}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', randomSerial(),
        '-days', String(days), '-sha256', '-extfile', `${profile}.ext`, '-out', `${file}.crt`], dir);
      return leaf(dir, file);
    },
  };
  return ca;
}

/** The files of an issued certificate. */
function leaf(dir, file) {
  const cert = path.join(dir, `${file}.crt`);
  const key = path.join(dir, `${file}.key`);
  const certPem = fs.readFileSync(cert);
  return {
    name: file, cert, key, certPem, keyPem: fs.readFileSync(key),
    fingerprint: new crypto.X509Certificate(certPem).fingerprint256,
  };
}

/** YAML for a string (JSON strings are YAML strings). */
const y = (s) => JSON.stringify(s);

/**
 * Starts chargemq (lib/server.js) with the TLS listeners `tlsListeners`
 * (names as logged: ocpp-tls, ocpp-tls-basic, mqtt-tls, mqtt-wss, http-tls)
 * on 127.0.0.1:0, serving `certs` ([{cert, key}] files), with `clientCa` and
 * the users file if given; `ocpp` is extra YAML lines under `ocpp:`. Resolves
 * to the server handle with `tls` added: {'ocpp-tls': 'wss://127.0.0.1:P/ocpp',
 * 'mqtt-tls': 'mqtts://…', 'mqtt-wss': 'wss://…/mqtt', 'http-tls': 'https://…',
 * …} and `tlsAddrs` (host:port by listener).
 */
async function startTlsServer({ tlsListeners, certs, clientCa, usersFile, ocpp = [] }) {
  const key = (n) => n.replace(/-/g, '_');
  const lines = ['listeners:', ...tlsListeners.map((n) => `  ${key(n)}: "127.0.0.1:0"`), 'tls:', '  certificates:'];
  for (const c of certs) lines.push(`    - cert: ${y(c.cert)}`, `      key: ${y(c.key)}`);
  if (clientCa) lines.push(`  client_ca: ${y(clientCa)}`);
  if (usersFile) lines.push('auth:', `  users_file: ${y(usersFile)}`);
  if (ocpp.length) lines.push('ocpp:', ...ocpp.map((l) => `  ${l}`));
  const server = await startServer({ config: `${lines.join('\n')}\n` });
  try {
    const tlsAddrs = {};
    // Logged before /readyz turned 200; the stderr reader may be a line behind.
    await waitUntil(() => {
      for (const r of server.logs) {
        if (r.msg === 'listening' && tlsListeners.includes(r.listener)) tlsAddrs[r.listener] = r.addr;
      }
      return tlsListeners.every((n) => tlsAddrs[n]);
    }, 10000, () => `TLS listeners not all logged: want ${tlsListeners}, got ${JSON.stringify(tlsAddrs)}`);
    const scheme = { 'ocpp-tls': ['wss', '/ocpp'], 'ocpp-tls-basic': ['wss', '/ocpp'], 'mqtt-tls': ['mqtts', ''], 'mqtt-wss': ['wss', '/mqtt'], 'http-tls': ['https', ''] };
    server.tls = {};
    for (const n of tlsListeners) {
      if (!/^127\.0\.0\.1:\d+$/.test(tlsAddrs[n])) throw new Error(`listener ${n} bound to unexpected address ${tlsAddrs[n]}`);
      server.tls[n] = `${scheme[n][0]}://${tlsAddrs[n]}${scheme[n][1]}`;
    }
    server.tlsAddrs = tlsAddrs;
    return server;
  } catch (err) {
    await server.kill();
    throw err;
  }
}

/**
 * One TLS handshake with `addr` (host:port) and `opts` (tls.connect
 * options: ca, ciphers, minVersion, maxVersion, ALPNProtocols, cert, key).
 * Resolves to {ok: true, protocol, cipher, alpn, peer} (peer: the server
 * certificate, as getPeerCertificate() gives it) or {ok: false, err}; never
 * rejects but at its deadline.
 */
function handshake(addr, opts, ms = 10000) {
  const [host, port] = addr.split(':');
  return deadline(new Promise((resolve) => {
    const sock = tls.connect({ host, port: Number(port), ...opts });
    sock.once('secureConnect', () => {
      const r = { ok: sock.authorized, protocol: sock.getProtocol(), cipher: sock.getCipher().standardName, alpn: sock.alpnProtocol, peer: sock.getPeerCertificate() };
      if (!sock.authorized) r.err = new Error(`not authorized: ${sock.authorizationError}`);
      sock.destroy();
      resolve(r);
    });
    sock.once('error', (err) => { sock.destroy(); resolve({ ok: false, err }); });
  }), ms, `TLS handshake with ${addr}`);
}

module.exports = { requireOpenssl, makeCa, startTlsServer, handshake };
