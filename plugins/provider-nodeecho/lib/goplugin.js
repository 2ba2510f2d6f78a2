'use strict';
// The process side of hashicorp/go-plugin's gRPC protocol, which is what an
// llmproxy host expects from every plugin binary whatever its language:
//
//  1. The host starts the binary with the magic cookie in the environment,
//     the protocol versions it speaks in PLUGIN_PROTOCOL_VERSIONS and, with
//     AutoMTLS, its client certificate (PEM) in PLUGIN_CLIENT_CERT.
//  2. The plugin listens on a unix socket and prints one line on stdout:
//     CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK-TYPE|NETWORK-ADDR|PROTOCOL|SERVER-CERT
//     where SERVER-CERT is its own self-signed certificate, DER in unpadded
//     base64, which the host then trusts alone. The plugin requires and
//     verifies the host's certificate on every connection.
//  3. Beside the plugin's own services it serves grpc.health.v1.Health
//     (service "plugin"), plugin.GRPCController (Shutdown ends the process),
//     plugin.GRPCStdio and plugin.GRPCBroker.
//  4. It exits when the host asks it to, or when the host is gone.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const forge = require('node-forge');

// CORE_PROTOCOL_VERSION is go-plugin's own protocol version.
const CORE_PROTOCOL_VERSION = 1;

// log writes one hclog JSON line on stderr; the host merges these into its
// own log by level.
// Only messages at or above LLMPROXY_LOG_LEVEL (default info) are written.
const LEVELS = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };
const minLevel = LEVELS[(process.env.LLMPROXY_LOG_LEVEL || '').toLowerCase()] ?? LEVELS.info;

function log(level, message, fields) {
  if ((LEVELS[level] ?? LEVELS.error) < minLevel) return;
  const line = Object.assign({ '@level': level, '@message': message, '@module': 'plugin', '@timestamp': new Date().toISOString() }, fields || {});
  process.stderr.write(JSON.stringify(line) + '\n');
}

// negotiate checks the cookie and picks the application protocol version:
// the highest one both sides speak. With no overlap it answers the highest
// version the plugin speaks, and the host refuses the plugin with a clear
// message, as go-plugin's own servers do.
function negotiate(handshake, env) {
  if (env[handshake.cookieKey] !== handshake.cookieValue) {
    process.stderr.write('This binary is an llmproxy plugin. It is not meant to be run directly;\n' +
      'put it in the plugins directory of llmproxy, which starts it.\n');
    process.exit(1);
  }
  const offered = (env.PLUGIN_PROTOCOL_VERSIONS || '').split(',').map(Number).filter(Number.isInteger);
  const mine = [...handshake.versions].sort((a, b) => b - a);
  return mine.find((v) => offered.includes(v)) ?? mine[0];
}

// serialNumber returns a random positive 128-bit certificate serial
// number in hex. Its first byte is kept in 0x40..0x7f: with the top bit
// set the DER integer would be negative, and a leading zero byte before a
// byte below 0x80 is padding DER forbids; either makes the certificate
// unreadable.
function serialNumber() {
  const b = crypto.randomBytes(16);
  b[0] = (b[0] & 0x3f) | 0x40;
  return b.toString('hex');
}

// serverCertificate makes the plugin's self-signed certificate for
// AutoMTLS: valid for "localhost", usable for server and client auth, and
// its own CA, as the host verifies it against itself alone. node:crypto
// makes the key (natively, fast) and node-forge the certificate, which
// node:crypto cannot create.
function serverCertificate() {
  const { privateKey: rsaKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = rsaKey.export({ type: 'pkcs1', format: 'pem' });
  const key = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  // A positive 128-bit serial number.
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 30 * 1000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);
  const name = [{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 'llmproxy plugin' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] },
  ]);
  cert.sign(key, forge.md.sha256.create());
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  return {
    certPem: forge.pki.certificateToPem(cert),
    keyPem,
    // go-plugin reads the certificate as base64.RawStdEncoding: no padding.
    announced: Buffer.from(der, 'binary').toString('base64').replace(/=+$/, ''),
  };
}

// credentials returns the server credentials and the certificate to
// announce: mutual TLS when the host sent its certificate, plaintext on the
// private socket otherwise.
function credentials(env) {
  const clientCert = env.PLUGIN_CLIENT_CERT;
  if (!clientCert) {
    return { creds: grpc.ServerCredentials.createInsecure(), announced: '' };
  }
  const c = serverCertificate();
  const creds = grpc.ServerCredentials.createSsl(
    Buffer.from(clientCert),
    [{ private_key: Buffer.from(c.keyPem), cert_chain: Buffer.from(c.certPem) }],
    true, // require and verify the host's certificate
  );
  return { creds, announced: c.announced };
}

// coreServices adds the services go-plugin's client calls on every plugin.
function coreServices(server, core, shutdown) {
  server.addService(core.health.service, {
    Check(call, cb) {
      if (call.request.service === '' || call.request.service === 'plugin') {
        cb(null, { status: 'SERVING' });
      } else {
        cb(null, { status: 'SERVICE_UNKNOWN' });
      }
    },
  });
  server.addService(core.controller.service, {
    Shutdown(call, cb) {
      cb(null, {});
      setImmediate(() => shutdown(0));
    },
  });
  // The plugin never writes to stdout or stderr for the host to relay
  // (logs go to stderr, which the host reads directly), so the stdio
  // stream stays open and silent until the host closes it.
  server.addService(core.stdio.service, {
    StreamStdio(call) {
      call.on('cancelled', () => call.end());
    },
  });
  // No brokered sub-connections are offered: the stream is accepted and
  // its messages ignored until the host closes it.
  server.addService(core.broker.service, {
    StartStream(call) {
      call.on('data', () => {});
      call.on('end', () => call.end());
      call.on('cancelled', () => call.end());
    },
  });
}

// socketPath is a fresh unix socket path in PLUGIN_UNIX_SOCKET_DIR or the
// temporary directory.
function socketPath(env) {
  const dir = fs.mkdtempSync(path.join(env.PLUGIN_UNIX_SOCKET_DIR || os.tmpdir(), 'plugin'));
  return { dir, sock: path.join(dir, 'plugin.sock') };
}

// serve runs the plugin: handshake, listen, announce, and exit when the
// host asks or is gone. register adds the plugin's own services to the
// gRPC server. It returns the server.
function serve({ handshake, core, serverOptions, register }) {
  const env = process.env;
  const version = negotiate(handshake, env);
  const { creds, announced } = credentials(env);
  const server = new grpc.Server(serverOptions);
  const { dir, sock } = socketPath(env);
  let stopping = false;
  const shutdown = (code) => {
    if (stopping) return;
    stopping = true;
    server.tryShutdown(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    // Give the Shutdown answer a moment to leave, then go.
    setTimeout(() => process.exit(code), 50).unref();
  };
  coreServices(server, core, shutdown);
  register(server);
  server.bindAsync('unix:' + sock, creds, (err) => {
    if (err) {
      log('error', 'cannot listen', { error: String(err), address: sock });
      process.exit(1);
    }
    process.stdout.write([CORE_PROTOCOL_VERSION, version, 'unix', sock, 'grpc', announced].join('|') + '\n');
  });
  // A host that dies without closing the plugin (even by SIGKILL) leaves
  // it re-parented; the plugin then exits on its own.
  const ppid = process.ppid;
  setInterval(() => {
    if (process.ppid !== ppid) {
      log('warn', 'host process is gone; exiting', { host_pid: ppid });
      shutdown(2);
    }
  }, 200);
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => shutdown(0));
  }
  return server;
}

module.exports = { serve, log, negotiate, serialNumber, CORE_PROTOCOL_VERSION };
