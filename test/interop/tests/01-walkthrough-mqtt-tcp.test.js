'use strict';
// Test 1: the walkthrough with ocpp-rpc as the charge point and mqtt.js over TCP as the CSMS.
const { test, before, after } = require('node:test');
const { startServer } = require('../lib/server');
const { walkthrough } = require('../lib/walkthrough');

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

test('walkthrough: ocpp-rpc charge point <-> mqtt.js over TCP', { timeout: 60000 }, async (t) => {
  await walkthrough(t, server, server.mqttUrl, 'CP001');
});
