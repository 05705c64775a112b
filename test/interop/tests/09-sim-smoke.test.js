'use strict';
// Smoke test of `chargemq sim`: the built binary simulates a few charge
// points against the built binary serving, for a few seconds, with the MQTT
// responder and downstream commands, and its --json summary must show
// calls completed both ways and nothing failed.
const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const { execFile } = require('node:child_process');
const { startServer, binaryPath } = require('../lib/server');

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

function sim(args) {
  return new Promise((resolve, reject) => {
    execFile(binaryPath(), ['sim', ...args], { timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`sim failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

test('chargemq sim completes calls both ways against the binary', async () => {
  const { stdout } = await sim([
    '--url', server.ocppUrl.replace(/\/$/, ''),
    '--mqtt-url', server.mqttUrl,
    '--count', '5', '--connect-rate', '50', '--duration', '3s',
    '--call-rate', '10', '--respond', '--command-rate', '4', '--json',
  ]);
  const r = JSON.parse(stdout);
  assert.equal(r.connections.connected, 5, stdout);
  assert.equal(r.connections.failed, 0, stdout);
  assert.equal(r.connections.dropped, 0, stdout);
  assert.ok(r.upstream.answered > 0, `no upstream call answered: ${stdout}`);
  assert.equal(r.upstream.errors, 0, stdout);
  assert.ok(r.downstream.answered > 0, `no command answered: ${stdout}`);
  assert.equal(r.downstream.errors, 0, stdout);
});
