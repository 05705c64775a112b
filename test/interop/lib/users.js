'use strict';
// Helpers for the auth tests: a users file made by the binary under test
// (`chargemq users add` / `users import`, secrets on stdin, never on the
// command line), random keys, and HTTP Basic header values.

const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { binaryPath } = require('./server');

/** Runs `chargemq ARGS` with `input` on stdin; resolves {stdout, stderr}, rejects on a non-zero exit. */
function runBinary(args, input = '', timeoutMs = 20000) {
  // Only our own CHARGEMQ_* settings ($CHARGEMQ_USERS_FILE must not pick the file).
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CHARGEMQ_')) env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = execFile(binaryPath(), args, { env, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) {
        err.message = `chargemq ${args.join(' ')}: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`;
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
    child.stdin.on('error', () => {}); // the process may exit before reading stdin
    child.stdin.end(input);
  });
}

/**
 * `chargemq users add NAME --users-file FILE --role ROLE [--pub F]... [--sub F]... [--replace] --password-stdin`,
 * with the password as one line of stdin.
 */
function usersAdd(file, name, { password, role = 'chargepoint', pub = [], sub = [], replace = false } = {}) {
  const args = ['users', 'add', name, '--users-file', file, '--role', role];
  for (const f of pub) args.push('--pub', f);
  for (const f of sub) args.push('--sub', f);
  if (replace) args.push('--replace');
  args.push('--password-stdin');
  return runBinary(args, `${password}\n`);
}

/** `chargemq users import --users-file FILE -` with `rows` ([name, password, role]) as CSV on stdin. */
function usersImport(file, rows) {
  const csv = ['name,password,role', ...rows.map((r) => r.join(','))].join('\n') + '\n';
  return runBinary(['users', 'import', '--users-file', file, '-'], csv);
}

/** A random charge point key: 20 bytes as 40 hex digits (OCPP 1.6 AuthorizationKey). */
function newKey() {
  return crypto.randomBytes(20).toString('hex');
}

/** The value of an `Authorization` header for HTTP Basic auth (RFC 7617). */
function basicAuth(username, password) {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/**
 * Resolves once cond() is truthy (checked every 20 ms), or rejects after ms.
 * For state read from a stream (the server's log lines), not for time to pass.
 */
async function waitUntil(cond, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() >= until) throw new Error(`${typeof what === 'function' ? what() : what} (deadline ${ms} ms)`);
    await new Promise((r) => setTimeout(r, 20)); // poll interval, not a synchronisation
  }
}

/** A private temporary directory; returns {dir, remove()}. */
function tempDir(prefix = 'chargemq-auth-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

module.exports = { runBinary, usersAdd, usersImport, newKey, basicAuth, tempDir, waitUntil };
