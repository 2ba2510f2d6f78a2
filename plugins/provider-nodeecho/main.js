#!/usr/bin/env node
'use strict';
// llmproxy-provider-nodeecho: an llmproxy provider plugin in JavaScript.
// The host starts it like any plugin binary; it speaks go-plugin's
// handshake (lib/goplugin.js) and serves llmproxy.provider.v1.Provider
// from the repository's .proto files. Nothing here is generated from or
// linked against the Go SDK: the contract is the proto.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const goplugin = require('./lib/goplugin');
const { Echo } = require('./lib/echo');
const { Statuses, unimplemented } = require('./lib/status');

// HANDSHAKE is the go-plugin handshake shared by every llmproxy plugin.
const HANDSHAKE = {
  cookieKey: 'LLMPROXY_PLUGIN',
  cookieValue: 'd3c1c3b6-6f0c-4f52-9a53-llmproxy',
  versions: [1],
};

// MAX_MESSAGE_BYTES matches the host's bound on one gRPC message.
const MAX_MESSAGE_BYTES = 256 << 20;

// protoDirs are where the .proto files are found: beside this file once
// installed (make build copies them), or in the SDK of the source tree.
const protoDirs = [path.join(__dirname, 'proto'), path.join(__dirname, '..', '..', 'sdk', 'proto')]
  .filter((d) => fs.existsSync(d));

const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: protoDirs };

function load(file) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, LOADER_OPTIONS));
}

// statusTypes loads google.rpc.Status and the llmproxy ErrorDetail for
// encoding error details.
function statusTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const d of protoDirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(['status.proto', 'llmproxy/plugin/v1/plugin.proto'], { keepCase: true });
  return new Statuses(root.lookupType('google.rpc.Status'), root.lookupType('llmproxy.plugin.v1.ErrorDetail'));
}

function main() {
  const core = load('goplugin.proto');
  const health = load('health.proto');
  const llm = load('llmproxy/provider/v1/provider.proto');
  const statuses = statusTypes();
  const echo = new Echo();

  // unary wraps a handler so that a thrown error answers the call with
  // the error detail the host expects.
  const unary = (f) => (call, cb) => {
    let out;
    try {
      out = f(call.request, call);
    } catch (err) {
      if (!err || !err.status) goplugin.log('error', 'call failed', { error: String(err && err.stack || err) });
      cb(statuses.from(err));
      return;
    }
    cb(null, out);
  };

  const provider = {
    Describe: unary(() => echo.describe()),
    Configure: unary((req) => ({ diagnostics: echo.configure(req.config_json) })),
    ChatCompletion: unary((req) => ({
      body: Buffer.from(JSON.stringify(echo.completion(req.meta, req.body))),
      header: {},
    })),
    ChatCompletionStream(call) {
      let chunks;
      try {
        chunks = echo.chunks(call.request.meta, call.request.body);
      } catch (err) {
        call.emit('error', statuses.from(err));
        return;
      }
      let cancelled = false;
      call.on('cancelled', () => { cancelled = true; });
      const delay = echo.config.chunk_delay_ms;
      let i = 0;
      // next sends one chunk, then waits for the delay, or for the
      // connection to drain when its buffer is full.
      const next = () => {
        if (cancelled) return;
        if (i === chunks.length) {
          call.end();
          return;
        }
        const room = call.write({ data: Buffer.from(JSON.stringify(chunks[i++])), header: {} });
        if (delay > 0) setTimeout(next, delay);
        else if (!room) call.once('drain', next);
        else setImmediate(next);
      };
      next();
    },
    ListModels: unary(() => ({ models: echo.describe().models })),
    Health: unary(() => ({ ok: true, message: '' })),
    Embeddings: (call, cb) => cb(unimplemented('Embeddings')),
    Passthrough: (call) => call.emit('error', unimplemented('Passthrough')),
  };

  goplugin.serve({
    handshake: HANDSHAKE,
    core: {
      health: health.grpc.health.v1.Health,
      controller: core.plugin.GRPCController,
      stdio: core.plugin.GRPCStdio,
      broker: core.plugin.GRPCBroker,
    },
    serverOptions: {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.keepalive_permit_without_calls': 1,
    },
    register(server) {
      server.addService(llm.llmproxy.provider.v1.Provider.service, provider);
    },
  });
}

// An exception no call handler caught leaves the process in an unknown
// state: log it for the host and exit, and the host starts a new process.
process.on('uncaughtException', (err) => {
  goplugin.log('error', 'plugin crashed', { error: String(err && err.stack || err) });
  process.exit(1);
});

main();
