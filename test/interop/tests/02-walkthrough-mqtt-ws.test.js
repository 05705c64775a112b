'use strict';
// Test 2: the same walkthrough with mqtt.js over WebSocket (ws://127.0.0.1:PORT/mqtt).
const { test, before, after } = require('node:test');
const { startServer } = require('../lib/server');
const { walkthrough } = require('../lib/walkthrough');

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

test('walkthrough: ocpp-rpc charge point <-> mqtt.js over WebSocket', { timeout: 60000 }, async (t) => {
  await walkthrough(t, server, server.mqttWsUrl, 'CP001');
});
