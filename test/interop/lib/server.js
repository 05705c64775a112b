'use strict';
// Spawns the built chargemq binary with every listener on 127.0.0.1:0, learns
// the bound ports from its JSON log, waits for /readyz and stops it again with
// SIGTERM (expecting exit code 0). No fixed ports, no sleeps as
// synchronisation: every wait is for an event or a condition, with a deadline.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const readline = require('node:readline');
const { deadline } = require('./util');

const INTEROP_DIR = path.resolve(__dirname, '..');
const LISTENERS = ['mqtt', 'mqtt-ws', 'ocpp', 'http'];

/** Path of the binary under test: $CHARGEMQ_BIN, else ../../bin/chargemq. */
function binaryPath() {
  const p = process.env.CHARGEMQ_BIN || '../../bin/chargemq';
  return path.resolve(INTEROP_DIR, p);
}

function httpGetStatus(url, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

/**
 * Starts chargemq. `opts.config` (a string of YAML) is written to a file and
 * passed with --config; the listener flags still put every listener on port 0.
 * Resolves to a handle: { mqttUrl, mqttWsUrl, ocppUrl, httpUrl, addrs, logs,
 * stop() }.
 */
async function startServer(opts = {}) {
  const startTimeoutMs = opts.startTimeoutMs ?? 20000;
  const bin = binaryPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`chargemq binary not found at ${bin}: build it (go build -o bin/chargemq ./cmd/chargemq) or set CHARGEMQ_BIN`);
  }
  // A private working directory, so anything the process writes relative to
  // its cwd (e.g. a data directory) never lands in the repository.
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chargemq-interop-'));
  const args = [
    'serve',
    '--mqtt-addr', '127.0.0.1:0',
    '--mqtt-ws-addr', '127.0.0.1:0',
    '--ocpp-addr', '127.0.0.1:0',
    '--http-addr', '127.0.0.1:0',
    '--log-format', 'json',
  ];
  if (opts.config !== undefined) {
    const cfgFile = path.join(workDir, 'chargemq.yaml');
    fs.writeFileSync(cfgFile, opts.config);
    args.push('--config', cfgFile);
  }
  if (opts.logLevel) args.push('--log-level', opts.logLevel);

  // Only our own CHARGEMQ_* settings: the environment must not move listeners.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CHARGEMQ_')) env[k] = v;
  }
  const child = spawn(bin, args, { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });

  const logs = []; // parsed JSON log records
  const rawStderr = []; // lines that were not JSON (kept for diagnostics)
  const addrs = {};
  let exited = null; // {code, signal} once the process has exited
  const exitWaiters = [];
  let onProgress = () => {};

  child.stdout.resume();
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    let rec;
    try {
      rec = JSON.parse(line);
    } catch {
      rawStderr.push(line);
      return;
    }
    logs.push(rec);
    if (rec.msg === 'listening' && LISTENERS.includes(rec.listener)) {
      addrs[rec.listener] = rec.addr;
      onProgress();
    }
  });
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    onProgress();
    for (const w of exitWaiters.splice(0)) w(exited);
  });

  const tail = () => [
    ...rawStderr.slice(-20),
    ...logs.slice(-20).map((r) => JSON.stringify(r)),
  ].join('\n');

  const waitExit = () => (exited ? Promise.resolve(exited) : new Promise((r) => exitWaiters.push(r)));

  async function kill() {
    if (!exited) {
      child.kill('SIGKILL');
      await waitExit();
    }
    fs.rmSync(workDir, { recursive: true, force: true });
  }

  try {
    // 1. Every listener has logged its bound address.
    await deadline(new Promise((resolve, reject) => {
      onProgress = () => {
        if (exited) reject(new Error(`chargemq exited early (${JSON.stringify(exited)}):\n${tail()}`));
        else if (LISTENERS.every((l) => addrs[l])) resolve();
      };
      onProgress();
    }), startTimeoutMs, `chargemq did not log all listeners (${LISTENERS.join(', ')}); got ${JSON.stringify(addrs)}`);
    onProgress = () => {};
    for (const l of LISTENERS) {
      if (!/^127\.0\.0\.1:\d+$/.test(addrs[l])) throw new Error(`listener ${l} bound to unexpected address ${addrs[l]}`);
    }

    // 2. /readyz answers 200 (bounded polling: each probe is a real request).
    const httpUrl = `http://${addrs.http}`;
    const until = Date.now() + startTimeoutMs;
    let status = 0;
    for (let i = 0; i < 2000 && Date.now() < until && !exited; i++) {
      status = await httpGetStatus(`${httpUrl}/readyz`, 2000);
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 25)); // poll interval, not a synchronisation
    }
    if (status !== 200) throw new Error(`/readyz never answered 200 (last ${status}):\n${tail()}`);
  } catch (err) {
    await kill();
    throw err;
  }

  let stopped = false;
  return {
    addrs,
    logs,
    rawStderr, // stderr lines that were not JSON
    mqttUrl: `mqtt://${addrs.mqtt}`,
    mqttWsUrl: `ws://${addrs['mqtt-ws']}/mqtt`,
    ocppUrl: `ws://${addrs.ocpp}/ocpp`,
    httpUrl: `http://${addrs.http}`,
    pid: child.pid,
    /** Log records matching pred (for diagnostics and assertions). */
    findLogs(pred) {
      return logs.filter(pred);
    },
    /**
     * SIGTERM, wait for exit (deadline), and return {code, signal}. Throws
     * when the process does not exit in time (it is then SIGKILLed) or exits
     * with anything but code 0.
     */
    async stop(timeoutMs = 20000) {
      if (stopped) return exited;
      stopped = true;
      if (!exited) child.kill('SIGTERM');
      let res;
      try {
        res = await deadline(waitExit(), timeoutMs, 'chargemq did not exit within the deadline after SIGTERM');
      } catch (err) {
        await kill();
        throw err;
      }
      fs.rmSync(workDir, { recursive: true, force: true });
      if (res.code !== 0) {
        throw new Error(`chargemq exited with ${JSON.stringify(res)} after SIGTERM, want code 0:\n${tail()}`);
      }
      return res;
    },
    /** Last resort for a failing test: SIGKILL without checks. */
    kill,
  };
}

module.exports = { startServer, binaryPath };
