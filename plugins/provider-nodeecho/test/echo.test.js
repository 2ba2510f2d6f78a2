'use strict';
// Unit tests of the echo provider and the error encoding: node --test.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Echo, parseConfig } = require('../lib/echo');
const { OpenAIError, codeForHTTP } = require('../lib/status');
const grpc = require('@grpc/grpc-js');

const chat = (obj) => Buffer.from(JSON.stringify(obj));

test('parseConfig', async (t) => {
  const cases = [
    { name: 'empty', json: '', want: { prefix: 'You said: ', chunk_delay_ms: 0 } },
    { name: 'both', json: '{"prefix":"> ","chunk_delay_ms":5}', want: { prefix: '> ', chunk_delay_ms: 5 } },
    { name: 'nulls keep defaults', json: '{"prefix":null}', want: { prefix: 'You said: ', chunk_delay_ms: 0 } },
    { name: 'broken JSON', json: '{"prefix":', path: [] },
    { name: 'not an object', json: '[1]', path: [] },
    { name: 'unknown argument', json: '{"colour":"blue"}', path: ['colour'] },
    { name: 'prefix type', json: '{"prefix":1}', path: ['prefix'] },
    { name: 'delay range', json: '{"chunk_delay_ms":-1}', path: ['chunk_delay_ms'] },
    { name: 'delay too long', json: '{"chunk_delay_ms":10001}', path: ['chunk_delay_ms'] },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const r = parseConfig(Buffer.from(c.json));
      if (c.want) {
        assert.deepEqual(r.config, c.want);
        assert.equal(r.diagnostics, undefined);
      } else {
        assert.equal(r.config, undefined);
        assert.equal(r.diagnostics[0].severity, 'SEVERITY_ERROR');
        assert.deepEqual(r.diagnostics[0].attribute_path, c.path);
      }
    });
  }
});

test('a refused config keeps the previous one', () => {
  const e = new Echo();
  assert.deepEqual(e.configure(Buffer.from('{"prefix":"A: "}')), []);
  assert.equal(e.configure(Buffer.from('{"prefix":2}')).length, 1);
  assert.equal(e.config.prefix, 'A: ');
});

test('completion', async (t) => {
  const e = new Echo();
  const cases = [
    { name: 'last user message', body: { messages: [{ role: 'user', content: 'first' }, { role: 'assistant', content: 'x' }, { role: 'user', content: 'second one' }] }, text: 'You said: second one', finish: 'stop', completion: 4 },
    { name: 'text parts', body: { messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'b' }] }] }, text: 'You said: a b', finish: 'stop', completion: 4 },
    { name: 'max_tokens', body: { max_tokens: 2, messages: [{ role: 'user', content: 'one two three' }] }, text: 'You said:', finish: 'length', completion: 2 },
    { name: 'stop', body: { stop: ['two'], messages: [{ role: 'user', content: 'one two three' }] }, text: 'You said: one ', finish: 'stop', completion: 3 },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const cc = e.completion({ model: 'm' }, chat(c.body));
      assert.equal(cc.object, 'chat.completion');
      assert.equal(cc.model, 'm');
      assert.match(cc.id, /^chatcmpl-nodeecho-[0-9a-f]{16}$/);
      assert.equal(cc.choices[0].message.content, c.text);
      assert.equal(cc.choices[0].finish_reason, c.finish);
      assert.equal(cc.usage.completion_tokens, c.completion);
      assert.equal(cc.usage.total_tokens, cc.usage.prompt_tokens + cc.usage.completion_tokens);
    });
  }
});

test('refused requests', async (t) => {
  const e = new Echo();
  const cases = [
    { name: 'broken JSON', body: Buffer.from('{"model":'), code: 'invalid_json', param: '' },
    { name: 'array body', body: Buffer.from('[]'), code: 'invalid_json', param: '' },
    { name: 'no messages', body: chat({ model: 'm' }), code: 'invalid_value', param: 'messages' },
    { name: 'empty messages', body: chat({ messages: [] }), code: 'invalid_value', param: 'messages' },
    { name: 'no role', body: chat({ messages: [{ role: 'user', content: 'x' }, { content: 'y' }] }), code: 'invalid_value', param: 'messages[1]' },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      for (const f of [() => e.completion({}, c.body), () => e.chunks({}, c.body)]) {
        assert.throws(f, (err) => err instanceof OpenAIError && err.status === 400 &&
          err.type === 'invalid_request_error' && err.code === c.code && err.param === c.param);
      }
    });
  }
});

test('chunks fold to the completion', () => {
  const e = new Echo();
  for (const includeUsage of [false, true]) {
    const body = chat({ stream: true, stream_options: { include_usage: includeUsage }, messages: [{ role: 'user', content: 'one two three' }] });
    const chunks = e.chunks({}, body);
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content || '')).join('');
    assert.equal(text, 'You said: one two three');
    const usage = chunks.filter((c) => c.usage);
    assert.equal(usage.length, includeUsage ? 1 : 0);
    const finishes = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter(Boolean);
    assert.deepEqual(finishes, ['stop']);
  }
});

test('codeForHTTP', () => {
  assert.equal(codeForHTTP(400), grpc.status.INVALID_ARGUMENT);
  assert.equal(codeForHTTP(429), grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(codeForHTTP(502), grpc.status.INTERNAL);
  assert.equal(codeForHTTP(418), grpc.status.UNKNOWN);
});
