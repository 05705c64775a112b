'use strict';
// Helpers for the Clients page test (tests/12-page.test.js): Debian's
// chromium driven by playwright-core (which never downloads a browser), a
// collector of console errors and warnings and page errors, and a small PNG
// decoder so that a screenshot can be checked to show something.

const fs = require('node:fs');
const zlib = require('node:zlib');

/** Path of the browser: $CHROMIUM_BIN, else Debian's /usr/bin/chromium (make page-deps installs it). */
function chromiumPath() {
  return process.env.CHROMIUM_BIN || '/usr/bin/chromium';
}

/**
 * launchChromium starts headless chromium. As root it needs --no-sandbox;
 * the background-networking flags keep it from calling out, which this
 * machine's closed network would refuse.
 */
async function launchChromium() {
  const exe = chromiumPath();
  if (!fs.existsSync(exe)) {
    throw new Error(`chromium not found at ${exe}: run \`make page-deps\` (Debian package chromium) or set CHROMIUM_BIN`);
  }
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: exe,
    timeout: 30000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
    ],
  });
}

/**
 * watchPage records every console error and warning and every uncaught
 * page error of page into problems (strings), so that a test can require
 * none at its end.
 */
function watchPage(page, problems, name) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      const loc = msg.location();
      problems.push(`${name}: console ${msg.type()}: ${msg.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`${name}: page error: ${err.stack || err.message}`));
  page.on('crash', () => problems.push(`${name}: page crashed`));
  return page;
}

/**
 * decodePNG decodes an 8-bit, non-interlaced RGB or RGBA PNG (what
 * chromium's screenshots are) to {width, height, channels, data}.
 */
function decodePNG(buf) {
  const SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIG)) throw new Error('not a PNG');
  let off = 8;
  let ihdr = null;
  const idat = [];
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const body = buf.subarray(off + 8, off + 8 + len);
    off += 12 + len;
    if (type === 'IHDR') {
      ihdr = {
        width: body.readUInt32BE(0), height: body.readUInt32BE(4), depth: body[8], colour: body[9], interlace: body[12],
      };
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
  }
  if (!ihdr) throw new Error('PNG without IHDR');
  const channels = { 2: 3, 6: 4 }[ihdr.colour];
  if (ihdr.depth !== 8 || !channels || ihdr.interlace !== 0) {
    throw new Error(`unsupported PNG: depth ${ihdr.depth}, colour type ${ihdr.colour}, interlace ${ihdr.interlace}`);
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const { width, height } = ihdr;
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('PNG data too short');
  const data = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? data[dst + x - channels] : 0;
      const b = y > 0 ? data[dst - stride + x] : 0;
      const c = x >= channels && y > 0 ? data[dst - stride + x - channels] : 0;
      let v = raw[src + x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) >> 1; break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: throw new Error(`bad PNG filter ${filter} in row ${y}`);
      }
      data[dst + x] = v & 0xff;
    }
  }
  return { width, height, channels, data };
}

/**
 * pngSummary says how varied a screenshot is: its size, the number of
 * distinct colours and the share of the most common one.
 */
function pngSummary(buf) {
  const img = decodePNG(buf);
  const counts = new Map();
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const o = i * img.channels;
    const rgb = (img.data[o] << 16) | (img.data[o + 1] << 8) | img.data[o + 2];
    counts.set(rgb, (counts.get(rgb) || 0) + 1);
  }
  let top = 0;
  for (const c of counts.values()) top = Math.max(top, c);
  return { width: img.width, height: img.height, bytes: buf.length, colours: counts.size, topShare: top / n };
}

module.exports = { chromiumPath, launchChromium, watchPage, decodePNG, pngSummary };
