'use strict';
// The Clients page (broker/web/static, docs/operations.md) in a real
// browser: Debian's chromium driven by playwright-core, against the built
// binary, with ocpp-rpc charge points and mqtt.js clients. Everything the
// page shows must arrive without a reload (the event stream), every text
// from a charge point must stay text, and no page may log an error or a
// warning. Screenshots at desktop and phone width go to out/ (and to docs/
// with INTEROP_WRITE_DOCS=1).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const { RPCClient } = require('ocpp-rpc');
const { startServer } = require('../lib/server');
const { deadline, onceWithin, connectMqtt, subscribe, connectCp, closeQuietly } = require('../lib/util');
const { launchChromium, watchPage, pngSummary } = require('../lib/page');

const MS = 10000;
const OUT_DIR = path.resolve(__dirname, '..', process.env.INTEROP_OUT_DIR || 'out');
const DOCS_DIR = path.resolve(__dirname, '..', '..', '..', 'docs');
const XSS_CID = '<img src=x onerror=window.__pwned=1>';

let server;
let browser;
let ctx; // desktop context, clipboard permissions granted
let page;
let csms; // answers the charge points' calls; listed on the MQTT tab
const problems = []; // console errors and warnings, page errors: of every page
let releaseDepot = () => {}; // answers DEPOT-03's outstanding command
const cps = new Map(); // cid → ocpp-rpc client
const calls = []; // the charge points' calls as the CSMS saw them: {cid, id, action, payload}

before(async () => {
  // Most charge points here never send a frame: keep the first-frame
  // deadline (30 s by default) out of the way of a slow run.
  server = await startServer({ config: 'ocpp:\n  idle_timeout: 5m\n' });
  browser = await launchChromium();
  ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.httpUrl });
  page = watchPage(await ctx.newPage(), problems, 'desktop');
  page.setDefaultTimeout(MS);

  csms = await connectMqtt(server.mqttUrl, { clientId: 'page-csms', protocolVersion: 5 });
  await subscribe(csms, ['ocpp/cp/+'], 1);
  csms.on('message', (topic, buf) => {
    const m = JSON.parse(buf.toString());
    if (m.MessageTypeId !== 2) return;
    const cid = topic.slice('ocpp/cp/'.length);
    calls.push({ cid, id: m.UniqueId, action: m.Action, payload: m.Payload });
    const now = new Date().toISOString();
    const answer = m.Action === 'BootNotification' ? { status: 'Accepted', currentTime: now, interval: 300 } : { currentTime: now };
    csms.publish(`ocpp/cs/${cid}`, JSON.stringify({ MessageTypeId: 3, UniqueId: m.UniqueId, Action: m.Action, Payload: answer }), { qos: 1 });
  });
});

after(async () => {
  try {
    releaseDepot();
    if (browser) await browser.close();
    for (const cp of cps.values()) await closeQuietly(cp);
    await closeQuietly(csms);
  } finally {
    if (server) await server.stop();
  }
});

/** cp connects an ocpp-rpc charge point that the test closes at the end. */
async function cp(cid, opts) {
  const c = await connectCp(server.ocppUrl, cid, opts);
  cps.set(cid, c);
  return c;
}

/** The row of a charge point (the cids here need no escaping in a quoted CSS attribute value). */
const row = (p, cid) => p.locator(`#clients-body tr[data-cid=${JSON.stringify(cid)}]`);

/** rowCids is the order of the rows in the table. */
const rowCids = (p) => p.$$eval('#clients-body tr', (trs) => trs.map((tr) => tr.dataset.cid));

/** A frame of the detail pane, by type and unique id. */
const frame = (p, type, uid) => p.locator(`#frames li[data-type=${type}][data-uid=${JSON.stringify(uid)}]`);

function noProblems() {
  assert.deepEqual(problems, [], 'console errors, warnings or page errors');
}

async function openPage(p) {
  await p.goto(`${server.httpUrl}/`);
  await p.waitForSelector('body[data-state=live]');
  // Marks this document: a reload would lose it.
  await p.evaluate(() => { window.__loadedOnce = true; });
}

async function assertNotReloaded(p) {
  assert.equal(await p.evaluate(() => window.__loadedOnce === true), true, 'the page was reloaded');
}

test('the page loads with no console errors; a charge point that connects later appears without a reload', { timeout: 30000 }, async () => {
  const res = await page.goto(`${server.httpUrl}/`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'] || '', /script-src 'self'/);
  await page.waitForSelector('body[data-state=live]');
  await page.evaluate(() => { window.__loadedOnce = true; });
  await page.locator('#clients-empty').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#clients-body tr').count(), 0);

  await cp('CP-PAGE-1');
  const r = row(page, 'CP-PAGE-1');
  await r.waitFor();
  assert.equal(await r.locator('td.col-protocol').textContent(), 'ocpp1.6');
  assert.match(await r.locator('td.col-remote').textContent(), /^127\.0\.0\.1:\d+$/);
  await page.waitForFunction(() => document.getElementById('count-connected').textContent === '1');
  assert.equal(await page.locator('#clients-empty').isHidden(), true);

  // A charge point id is untrusted text: it must show as text, and run nothing.
  await cp(XSS_CID);
  await row(page, XSS_CID).waitFor();
  assert.equal(await row(page, XSS_CID).locator('.cid-link').textContent(), XSS_CID);
  assert.equal(await page.evaluate(() => document.querySelectorAll('#clients-body img').length), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await page.waitForFunction(() => document.getElementById('count-connected').textContent === '2');
  await assertNotReloaded(page);
  noProblems();
});

test('the detail pane shows the frames, a new frame live, a payload expanded, and Copy copies the frame', { timeout: 30000 }, async () => {
  const c1 = cps.get('CP-PAGE-1');
  const bootReq = { chargePointVendor: 'chargemq-test', chargePointModel: 'Page 1', firmwareVersion: '1.0.0' };
  await deadline(c1.call('BootNotification', bootReq), MS, 'BootNotification');
  const boot = calls.find((c) => c.cid === 'CP-PAGE-1' && c.action === 'BootNotification');

  // A click on the row (not on its id) opens the pane.
  await row(page, 'CP-PAGE-1').locator('td.col-remote').click();
  const pane = page.locator('#detail');
  await pane.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#detail-title').textContent(), 'CP-PAGE-1');
  await frame(page, 'call', boot.id).waitFor();
  await frame(page, 'callresult', boot.id).waitFor();
  await page.locator('#detail-info dd', { hasText: '300 s' }).waitFor(); // the heartbeat interval the answer set

  // A frame sent while the pane is open appears live, newest first.
  await deadline(c1.call('Heartbeat', {}), MS, 'Heartbeat');
  const hb = calls.find((c) => c.cid === 'CP-PAGE-1' && c.action === 'Heartbeat');
  await frame(page, 'callresult', hb.id).waitFor();
  const order = await page.$$eval('#frames li', (lis) => lis.map((li) => `${li.dataset.type}:${li.dataset.uid}`));
  assert.deepEqual(order.slice(0, 4), [`callresult:${hb.id}`, `call:${hb.id}`, `callresult:${boot.id}`, `call:${boot.id}`]);
  await assertNotReloaded(page);

  // Expanding a frame shows its payload, pretty-printed.
  const bootFrame = frame(page, 'call', boot.id);
  await bootFrame.locator('summary').click();
  const pre = bootFrame.locator('pre.payload');
  await pre.waitFor({ state: 'visible' });
  const text = await pre.textContent();
  assert.deepEqual(JSON.parse(text), bootReq);
  assert.match(text, /\n {2}"chargePointVendor": "chargemq-test"/);

  // Copy puts the OCPP-J frame on the clipboard (navigator.clipboard here).
  const copied = page.evaluate(() => new Promise((resolve) => {
    window.addEventListener('chargemq:copy', (e) => resolve(e.detail), { once: true });
  }));
  await bootFrame.locator('button.copy').click();
  const detail = await deadline(copied, MS, 'no chargemq:copy event');
  assert.equal(detail.ok, true);
  assert.equal(detail.via, 'clipboard');
  await bootFrame.locator('button.copy', { hasText: 'Copied' }).waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert.deepEqual(JSON.parse(clip), [2, boot.id, 'BootNotification', bootReq]);

  // Escape closes the pane and gives the focus back to the row.
  await page.keyboard.press('Escape');
  await pane.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.cid), 'CP-PAGE-1');
  // Enter on the focused id opens it again; Escape closes it again.
  await page.keyboard.press('Enter');
  await pane.waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  await pane.waitFor({ state: 'hidden' });
  noProblems();
});

test('a command from MQTT shows as the outstanding call until it is answered', { timeout: 30000 }, async () => {
  const c1 = cps.get('CP-PAGE-1');
  let release;
  const answered = new Promise((resolve) => { release = resolve; });
  c1.handle('ChangeAvailability', () => answered.then(() => ({ status: 'Accepted' })));
  await csms.publishAsync('ocpp/cs/CP-PAGE-1', JSON.stringify({
    MessageTypeId: 2, UniqueId: 'page-cmd-1', Action: 'ChangeAvailability', Payload: { connectorId: 0, type: 'Operative' },
  }), { qos: 1 });
  const cell = row(page, 'CP-PAGE-1').locator('td.col-outstanding');
  await page.waitForFunction((el) => el.textContent === 'ChangeAvailability · page-cmd-1', await cell.elementHandle());
  release();
  await page.waitForFunction((el) => el.textContent === '—', await cell.elementHandle());
  noProblems();
});

test('headers sort (by keyboard too) and the search box filters by cid', { timeout: 30000 }, async () => {
  await cp('CP-PAGE-2');
  await cp('CP-PAGE-3');
  await row(page, 'CP-PAGE-3').waitFor();
  assert.deepEqual(await rowCids(page), [XSS_CID, 'CP-PAGE-1', 'CP-PAGE-2', 'CP-PAGE-3']); // by cid, ascending

  const cidHeader = page.locator('th[data-key=cid]');
  await cidHeader.locator('button').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('th[data-key=cid]').getAttribute('aria-sort') === 'descending');
  await page.waitForFunction(() => document.querySelector('#clients-body tr').dataset.cid === 'CP-PAGE-3');
  assert.deepEqual(await rowCids(page), ['CP-PAGE-3', 'CP-PAGE-2', 'CP-PAGE-1', XSS_CID]);
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.querySelector('th[data-key=cid]').getAttribute('aria-sort') === 'ascending');

  // Sorting by another column: the most recently seen last; a new frame moves its row.
  await page.locator('th[data-key=last_seen] button').click();
  await deadline(cps.get('CP-PAGE-2').call('Heartbeat', {}), MS, 'Heartbeat');
  await page.waitForFunction(() => [...document.querySelectorAll('#clients-body tr')].at(-1).dataset.cid === 'CP-PAGE-2');
  assert.equal(await page.locator('th[data-key=cid]').getAttribute('aria-sort'), null);
  await page.locator('th[data-key=cid] button').click();
  await page.waitForFunction((first) => document.querySelector('#clients-body tr').dataset.cid === first, XSS_CID);

  await page.fill('#filter', 'page-2');
  await page.waitForFunction(() => document.querySelectorAll('#clients-body tr').length === 1);
  assert.deepEqual(await rowCids(page), ['CP-PAGE-2']);
  assert.equal(await page.locator('#shown').textContent(), '1 of 4 shown');
  // A charge point that connects while filtered shows only if it matches.
  await cp('CP-PAGE-20');
  await row(page, 'CP-PAGE-20').waitFor();
  assert.deepEqual(await rowCids(page), ['CP-PAGE-2', 'CP-PAGE-20']);
  await page.fill('#filter', '');
  await page.waitForFunction(() => document.querySelectorAll('#clients-body tr').length === 5);
  noProblems();
});

test('kick asks first (Escape cancels), then closes the charge point with 1000 and blocks its reconnect', { timeout: 30000 }, async () => {
  const c3 = cps.get('CP-PAGE-3');
  const closed = onceWithin(c3, 'close', MS, 'CP-PAGE-3 was not closed');
  closed.catch(() => {}); // awaited below
  const dialog = page.locator('#kick-dialog');

  await row(page, 'CP-PAGE-3').locator('button.kick').click();
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#kick-name').textContent(), 'CP-PAGE-3');
  assert.equal(await page.locator('#kick-block').isVisible(), true);
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await row(page, 'CP-PAGE-3').count(), 1, 'Escape must not kick');

  await row(page, 'CP-PAGE-3').locator('button.kick').click();
  await dialog.waitFor({ state: 'visible' });
  await page.getByLabel('1 minute').check();
  await page.locator('#kick-confirm').click();
  await dialog.waitFor({ state: 'hidden' });
  await row(page, 'CP-PAGE-3').waitFor({ state: 'detached' });
  // The keyboard focus went to the neighbouring row, not lost with the row.
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.cid), 'CP-PAGE-20');
  const ev = await closed;
  assert.equal(ev.code, 1000, `close: ${JSON.stringify(ev)}`);
  cps.delete('CP-PAGE-3');
  await page.waitForFunction(() => document.getElementById('count-connected').textContent === '4');

  // The block: a reconnect within the minute is refused (403, counted as refused).
  const again = new RPCClient({ endpoint: server.ocppUrl, identity: 'CP-PAGE-3', protocols: ['ocpp1.6'], strictMode: true, reconnect: false });
  const err = await deadline(again.connect().then(() => null, (e) => e), MS, 'reconnect');
  await closeQuietly(again);
  assert.ok(err, 'the kicked charge point reconnected during its block');
  assert.equal(err.code, 403, err.message);
  // The refused counter follows the next event (counters refresh on events).
  await cp('CP-PAGE-4');
  await page.waitForFunction(() => document.getElementById('count-refused').textContent === '1', null, { timeout: MS });
  noProblems();
});

test('the MQTT tab lists the mqtt.js clients by client id; kick disconnects one', { timeout: 30000 }, async (t) => {
  const victim = await connectMqtt(server.mqttUrl, { clientId: 'page-victim', protocolVersion: 5 });
  t.after(() => closeQuietly(victim));
  await subscribe(victim, ['ocpp/presence/#'], 1);
  const gone = onceWithin(victim, 'close', MS, 'page-victim was not disconnected');
  gone.catch(() => {}); // awaited below

  await page.getByRole('tab', { name: 'MQTT clients' }).click();
  await page.locator('#panel-mqtt').waitFor({ state: 'visible' });
  await page.locator('#mqtt-body tr[data-id="page-csms"]').waitFor();
  const vrow = page.locator('#mqtt-body tr[data-id="page-victim"]');
  await vrow.waitFor();
  assert.match(await vrow.textContent(), /ocpp\/presence\/#/);
  assert.match(await vrow.textContent(), /5\.0/);

  await vrow.locator('button.kick').click();
  await page.locator('#kick-dialog').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#kick-block').isVisible(), false, 'no block for MQTT clients');
  await page.locator('#kick-confirm').click();
  await page.locator('#kick-dialog').waitFor({ state: 'hidden' });
  await gone;
  // Listed again after the kick: gone, or a session no longer connected.
  await page.waitForFunction(() => {
    const tr = document.querySelector('#mqtt-body tr[data-id="page-victim"]');
    return !tr || tr.querySelector('button.kick').disabled;
  });
  await page.locator('#mqtt-body tr[data-id="page-csms"]').waitFor();

  // The arrow keys move between the tabs.
  await page.getByRole('tab', { name: 'MQTT clients' }).focus();
  await page.keyboard.press('ArrowLeft');
  await page.locator('#panel-ocpp').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#panel-mqtt').isHidden(), true);
  noProblems();
});

test('Copy falls back to a hidden textarea and execCommand without navigator.clipboard', { timeout: 30000 }, async () => {
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    await ctx2.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.httpUrl });
    // As over plain http from another host: no navigator.clipboard. The
    // real one is kept aside to read what the fallback copied.
    await ctx2.addInitScript(() => {
      window.__realClipboard = navigator.clipboard;
      delete Navigator.prototype.clipboard;
      window.__copies = [];
      window.addEventListener('chargemq:copy', (e) => window.__copies.push(e.detail));
    });
    const p2 = watchPage(await ctx2.newPage(), problems, 'no-clipboard');
    p2.setDefaultTimeout(MS);
    await openPage(p2);
    assert.equal(await p2.evaluate(() => navigator.clipboard), undefined);
    await row(p2, 'CP-PAGE-1').locator('.cid-link').click();
    const hb = calls.find((c) => c.cid === 'CP-PAGE-1' && c.action === 'Heartbeat');
    const f = frame(p2, 'call', hb.id);
    await f.waitFor();
    await p2.evaluate(() => window.__realClipboard.writeText('sentinel'));
    await f.locator('button.copy').click();
    await f.locator('button.copy', { hasText: 'Copied' }).waitFor();
    const copies = await p2.evaluate(() => window.__copies);
    assert.equal(copies.length, 1);
    assert.equal(copies[0].via, 'execCommand');
    assert.equal(copies[0].ok, true);
    const clip = await p2.evaluate(() => window.__realClipboard.readText());
    assert.deepEqual(JSON.parse(clip), [2, hb.id, 'Heartbeat', {}]);
    assert.equal(clip, copies[0].text);
    // The focus went back to the button, and the textarea is hidden again.
    assert.equal(await p2.evaluate(() => document.activeElement.classList.contains('copy')), true);
    assert.equal(await p2.locator('#copy-buffer').isHidden(), true);
  } finally {
    await ctx2.close();
  }
  noProblems();
});

test('events lost to an overflow or a reconnect are made good by refetching the list', { timeout: 30000 }, async () => {
  const ctx4 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    // A hook on EventSource: while window.__deaf is set, the page's
    // listeners hear nothing (as when the stream fell behind or was down);
    // the test then sends the event that the server would.
    await ctx4.addInitScript(() => {
      window.__deaf = false;
      window.__streams = [];
      const Native = window.EventSource;
      window.EventSource = class extends Native {
        constructor(...args) {
          super(...args);
          window.__streams.push(this);
        }

        addEventListener(type, fn, opts) {
          super.addEventListener(type, (ev) => { if (!window.__deaf || !ev.isTrusted) fn.call(this, ev); }, opts);
        }
      };
    });
    const p4 = watchPage(await ctx4.newPage(), problems, 'resync');
    p4.setDefaultTimeout(MS);
    await openPage(p4);
    await row(p4, 'CP-PAGE-1').waitFor();
    const main = 'window.__streams.find((s) => !s.url.includes("cid="))';

    // Missed: a connect and a kick. An overflow refetches the list.
    await p4.evaluate(() => { window.__deaf = true; });
    await cp('CP-MISSED-1');
    const kicked = onceWithin(cps.get('CP-PAGE-4'), 'close', MS, 'CP-PAGE-4 was not closed');
    const res = await p4.evaluate(async () => (await fetch('api/v1/clients/CP-PAGE-4', { method: 'DELETE' })).status);
    assert.equal(res, 200);
    await kicked;
    cps.delete('CP-PAGE-4');
    assert.equal(await row(p4, 'CP-MISSED-1').count(), 0, 'the page heard a connect it should have missed');
    assert.equal(await row(p4, 'CP-PAGE-4').count(), 1);
    await p4.evaluate(`(${main}).dispatchEvent(new MessageEvent('overflow', { data: '{"type":"overflow"}' }))`);
    await p4.evaluate(() => { window.__deaf = false; });
    await row(p4, 'CP-MISSED-1').waitFor();
    await row(p4, 'CP-PAGE-4').waitFor({ state: 'detached' });
    await p4.waitForSelector('body[data-state=live]');

    // Missed while "reconnecting": the next open refetches the list.
    await p4.evaluate(`(${main}).dispatchEvent(new Event('error'))`);
    await p4.waitForSelector('body[data-state=reconnecting]');
    await p4.evaluate(() => { window.__deaf = true; });
    await cp('CP-MISSED-2');
    await p4.evaluate(() => { window.__deaf = false; });
    await p4.evaluate(`(${main}).dispatchEvent(new Event('open'))`);
    await row(p4, 'CP-MISSED-2').waitFor();
    await p4.waitForSelector('body[data-state=live]');
    // And it agrees with the API, row for row.
    const listed = await p4.evaluate(async () => (await (await fetch('api/v1/clients?limit=10000')).json()).clients.map((c) => c.cid));
    await p4.waitForFunction((n) => document.querySelectorAll('#clients-body tr').length === n, listed.length);
    assert.deepEqual(await rowCids(p4), listed);
    await assertNotReloaded(p4);
  } finally {
    await ctx4.close();
  }
  noProblems();
});

test('screenshots at desktop (1280×800) and phone (390×844) width show the page', { timeout: 30000 }, async () => {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  // A depot's worth of charge points, some with frames.
  for (let i = 1; i <= 6; i++) {
    const cid = `DEPOT-${String(i).padStart(2, '0')}`;
    const c = await cp(cid);
    await deadline(c.call('BootNotification', { chargePointVendor: 'Depot', chargePointModel: `AC-${i}` }), MS, `${cid} boot`);
  }
  await row(page, 'DEPOT-06').waitFor();
  // Two commands for DEPOT-03 that it answers only at the end: one
  // outstanding, one queued behind it. The queue depth changes without an
  // event: the page refetches that charge point after the CALL went out.
  const d3 = cps.get('DEPOT-03');
  d3.handle('GetConfiguration', () => new Promise((resolve) => { releaseDepot = () => resolve({ configurationKey: [] }); }));
  for (const id of ['cfg-1', 'cfg-2']) {
    await csms.publishAsync('ocpp/cs/DEPOT-03', JSON.stringify({
      MessageTypeId: 2, UniqueId: id, Action: 'GetConfiguration', Payload: { key: ['HeartbeatInterval'] },
    }), { qos: 1 });
  }
  await page.waitForFunction(() => {
    const tr = document.querySelector('#clients-body tr[data-cid="DEPOT-03"]');
    return tr.querySelector('.col-outstanding').textContent === 'GetConfiguration · cfg-1' &&
      tr.querySelector('.col-queue_depth').textContent === '1';
  });

  await row(page, 'CP-PAGE-1').locator('.cid-link').click();
  const boot = calls.find((c) => c.cid === 'CP-PAGE-1' && c.action === 'BootNotification');
  await frame(page, 'call', boot.id).locator('summary').click();
  await frame(page, 'call', boot.id).locator('pre.payload').waitFor();
  await page.mouse.move(0, 0);
  const desktop = await page.screenshot({ path: path.join(OUT_DIR, 'clients-page.png') });

  const ctx3 = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  let phone;
  try {
    const p3 = watchPage(await ctx3.newPage(), problems, 'phone');
    p3.setDefaultTimeout(MS);
    await openPage(p3);
    await row(p3, 'DEPOT-06').waitFor({ state: 'attached' });
    // Readable at 390 px: nothing wider than the screen, the key fields shown.
    assert.ok(await p3.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      `page wider than the phone: ${await p3.evaluate(() => document.documentElement.scrollWidth)} px`);
    const card = row(p3, 'CP-PAGE-1');
    for (const col of ['cid', 'remote', 'last_seen', 'outstanding']) {
      assert.equal(await card.locator(`td.col-${col}`).isVisible(), true, `${col} hidden on a phone`);
    }
    phone = await p3.screenshot({ path: path.join(OUT_DIR, 'clients-page-phone.png') });
  } finally {
    await ctx3.close();
  }

  for (const [name, buf, w, h] of [['desktop', desktop, 1280, 800], ['phone', phone, 780, 1688]]) {
    const s = pngSummary(buf);
    assert.equal(s.width, w, `${name} width`);
    assert.equal(s.height, h, `${name} height`);
    assert.ok(s.bytes > 10 * 1024, `${name} screenshot only ${s.bytes} bytes`);
    assert.ok(s.colours > 50 && s.topShare < 0.95, `${name} screenshot looks blank: ${JSON.stringify(s)}`);
  }
  if (process.env.INTEROP_WRITE_DOCS === '1') {
    fs.copyFileSync(path.join(OUT_DIR, 'clients-page.png'), path.join(DOCS_DIR, 'clients-page.png'));
    fs.copyFileSync(path.join(OUT_DIR, 'clients-page-phone.png'), path.join(DOCS_DIR, 'clients-page-phone.png'));
  }
  noProblems();
});
