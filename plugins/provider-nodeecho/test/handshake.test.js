'use strict';
// The go-plugin side of the process, run as the host runs it: node --test.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const path = require('node:path');

const MAIN = path.join(__dirname, '..', 'main.js');
const COOKIE = { LLMPROXY_PLUGIN: 'd3c1c3b6-6f0c-4f52-9a53-llmproxy' };

// handshake starts the plugin with env and returns its first stdout line;
// the plugin is stopped unless keep is set, when it is returned too.
function handshake(env, keep) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) {
        if (keep) {
          resolve({ line: out.slice(0, i), proc: p });
        } else {
          p.kill('SIGTERM');
          resolve(out.slice(0, i));
        }
      }
    });
    p.once('exit', (code) => reject(new Error(`plugin exited with ${code} before its handshake`)));
  });
}

test('run by hand, it refuses', () => {
  const r = spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /llmproxy plugin/);
  assert.equal(r.stdout, '');
});

test('plaintext handshake line', async () => {
  const line = await handshake({ ...COOKIE, PLUGIN_PROTOCOL_VERSIONS: '1' });
  const parts = line.split('|');
  assert.deepEqual([parts[0], parts[1], parts[2], parts[4], parts[5]], ['1', '1', 'unix', 'grpc', '']);
  assert.match(parts[3], /plugin\.sock$/);
});

test('an unknown host version gets the plugin version to refuse', async () => {
  const line = await handshake({ ...COOKIE, PLUGIN_PROTOCOL_VERSIONS: '2,3' });
  assert.equal(line.split('|')[1], '1');
});

test('AutoMTLS: a self-signed localhost certificate in the line', async () => {
  // Any PEM certificate stands for the host's here; the line must carry
  // the plugin's own certificate whatever it is.
  const line = await handshake({ ...COOKIE, PLUGIN_PROTOCOL_VERSIONS: '1', PLUGIN_CLIENT_CERT: selfSigned().cert });
  const b64 = line.split('|')[5];
  assert.ok(b64.length > 50);
  assert.doesNotMatch(b64, /=/, 'unpadded base64');
  const cert = new crypto.X509Certificate(Buffer.from(b64, 'base64'));
  assert.ok(cert.ca);
  assert.ok(cert.checkHost('localhost'));
  assert.ok(cert.verify(cert.publicKey), 'self-signed');
  assert.ok(new Date(cert.validFrom) <= new Date());
});

test('AutoMTLS: only the host that sent its certificate gets in', async () => {
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const def = protoLoader.loadSync('health.proto', { enums: String, includeDirs: [path.join(__dirname, '..', 'proto')] });
  const { Health } = grpc.loadPackageDefinition(def).grpc.health.v1;
  const hostCert = selfSigned();
  const { line, proc } = await handshake({ ...COOKIE, PLUGIN_PROTOCOL_VERSIONS: '1', PLUGIN_CLIENT_CERT: hostCert.cert }, true);
  try {
    const parts = line.split('|');
    const serverPem = new crypto.X509Certificate(Buffer.from(parts[5], 'base64')).toString();
    const check = (creds) => new Promise((resolve) => {
      const c = new Health('unix:' + parts[3], creds, { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' });
      c.Check({ service: 'plugin' }, { deadline: Date.now() + 5000 }, (err, res) => {
        c.close();
        resolve(err ? { err } : { res });
      });
    });
    const ok = await check(grpc.credentials.createSsl(Buffer.from(serverPem), Buffer.from(hostCert.key), Buffer.from(hostCert.cert)));
    assert.equal(ok.err, undefined, String(ok.err));
    assert.equal(ok.res.status, 'SERVING');
    const stranger = selfSigned();
    for (const creds of [
      grpc.credentials.createSsl(Buffer.from(serverPem)),
      grpc.credentials.createSsl(Buffer.from(serverPem), Buffer.from(stranger.key), Buffer.from(stranger.cert)),
    ]) {
      const r = await check(creds);
      assert.ok(r.err, 'a client without the host certificate was served');
    }
  } finally {
    proc.kill('SIGTERM');
  }
});

// selfSigned makes a throwaway localhost certificate and its key (PEM).
function selfSigned() {
  const forge = require('node-forge');
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = privateKey.export({ type: 'pkcs1', format: 'pem' });
  const priv = forge.pki.privateKeyFromPem(key);
  const keys = { privateKey: priv, publicKey: forge.pki.setRsaPublicKey(priv.n, priv.e) };
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60000);
  cert.validity.notAfter = new Date(Date.now() + 3600000);
  cert.setSubject([{ name: 'commonName', value: 'localhost' }]);
  cert.setIssuer([{ name: 'commonName', value: 'localhost' }]);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key };
}

test('certificate serial numbers are positive DER integers without padding', () => {
  const forge = require('node-forge');
  const { serialNumber } = require('../lib/goplugin.js');
  for (let i = 0; i < 2000; i++) {
    const hex = serialNumber();
    assert.equal(hex.length, 32, hex);
    // The DER encoding of the integer reads back as the same value.
    const der = forge.asn1.toDer(forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.INTEGER, false,
      forge.util.hexToBytes(hex))).getBytes();
    const back = forge.asn1.fromDer(der, { strict: true });
    assert.equal(forge.util.bytesToHex(back.value), hex);
    assert.ok(parseInt(hex.slice(0, 2), 16) >= 0x40 && parseInt(hex.slice(0, 2), 16) < 0x80, hex);
  }
});
