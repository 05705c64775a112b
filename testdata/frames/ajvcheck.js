// Runs the corpus through ocpp-rpc's strict validator (ajv + the official OCPP 1.6 schemas).
// Usage: node testdata/frames/ajvcheck.js /tmp/ocpprpc   (a directory where ocpp-rpc@2.2.1 is installed)
const path = require('path');
const fs = require('fs');
const base = path.join(process.argv[2] || '/tmp/ocpprpc', 'node_modules', 'ocpp-rpc', 'lib');
const {createValidator} = require(path.join(base, 'validator'));
const v = createValidator('ocpp1.6', require(path.join(base, 'schemas', 'ocpp1_6.json')));
const ok = (id, p) => { try { v.validate(id, p); return true; } catch (e) { return false; } };
let n = 0, bad = 0;
for (const f of fs.readdirSync(__dirname).filter(f => f.endsWith('.json'))) {
  const d = JSON.parse(fs.readFileSync(path.join(__dirname, f)));
  const check = (id, p, want, what) => { n++; if (ok(id, p) !== want) { bad++; console.log(`${f}: ${what}: ajv says ${!want ? 'valid' : 'invalid'}`); } };
  d.valid.request.forEach((p, i) => check(`urn:${d.action}.req`, p, true, `valid request ${i}`));
  d.valid.response.forEach((p, i) => check(`urn:${d.action}.conf`, p, true, `valid response ${i}`));
  for (const c of d.invalid) check(`urn:${d.action}.${c.response ? 'conf' : 'req'}`, c.payload, !!c.ajvAccepts, c.name);
}
console.log(`${n} cases, ${bad} disagreements`);
process.exit(bad ? 1 : 0);
