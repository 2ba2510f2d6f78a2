'use strict';
// The echo provider: it answers "<prefix><last user message>", word by word
// when streamed, with usage counted in words. Its answer depends only on
// the request, so tests can predict it.

const crypto = require('node:crypto');
const { OpenAIError, invalidRequest } = require('./status');

const NAME = 'nodeecho';
const VERSION = require('../package.json').version;
const MODEL = 'node-echo';

// CONFIG_SCHEMA is the instance's config block, in the wire form of
// llmproxy.plugin.v1.Schema.
const CONFIG_SCHEMA = {
  attributes: [
    { name: 'prefix', type: 'string', description: 'Text every reply starts with (default "You said: ").', required: false, sensitive: false },
    { name: 'chunk_delay_ms', type: 'number', description: 'Pause between streamed words in milliseconds (default 0, at most 10000).', required: false, sensitive: false },
  ],
  blocks: [],
};

const DEFAULTS = Object.freeze({ prefix: 'You said: ', chunk_delay_ms: 0 });

// diagnostic is one error diagnostic for the wire.
function diagnostic(summary, pathParts) {
  return { severity: 'SEVERITY_ERROR', summary, detail: '', attribute_path: pathParts || [] };
}

// parseConfig checks an instance's config JSON; it returns the config or
// the diagnostics that refuse it.
function parseConfig(json) {
  let raw;
  try {
    raw = json.length === 0 ? {} : JSON.parse(json.toString('utf8'));
  } catch (err) {
    return { diagnostics: [diagnostic(`config is not valid JSON: ${err.message}`)] };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { diagnostics: [diagnostic('config must be a JSON object')] };
  }
  const cfg = Object.assign({}, DEFAULTS);
  const diagnostics = [];
  for (const [k, v] of Object.entries(raw)) {
    if (v === null) continue;
    switch (k) {
      case 'prefix':
        if (typeof v !== 'string') diagnostics.push(diagnostic('prefix must be a string', [k]));
        else cfg.prefix = v;
        break;
      case 'chunk_delay_ms':
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 10000) {
          diagnostics.push(diagnostic('chunk_delay_ms must be a number of milliseconds from 0 to 10000', [k]));
        } else cfg.chunk_delay_ms = v;
        break;
      default:
        diagnostics.push(diagnostic(`unknown argument "${k}"; this plugin accepts prefix and chunk_delay_ms`, [k]));
    }
  }
  return diagnostics.length ? { diagnostics } : { config: cfg };
}

// text returns the text of a message's content: a string or an array of
// parts, of which text parts count.
function text(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.filter((p) => p && p.type === 'text' && typeof p.text === 'string').map((p) => p.text).join(' ');
  }
  return '';
}

function words(s) {
  return s.split(/\s+/).filter(Boolean);
}

// parseChat decodes and checks an OpenAI chat.completions request body.
function parseChat(body) {
  let chat;
  try {
    chat = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (err) {
    throw invalidRequest('invalid_json', `the request body is not valid JSON: ${err.message}`);
  }
  if (chat === null || typeof chat !== 'object' || Array.isArray(chat)) {
    throw invalidRequest('invalid_json', 'the request body must be a JSON object');
  }
  if (!Array.isArray(chat.messages) || chat.messages.length === 0) {
    throw invalidRequest('invalid_value', 'messages must be a non-empty array', 'messages');
  }
  for (const [i, m] of chat.messages.entries()) {
    if (m === null || typeof m !== 'object' || typeof m.role !== 'string') {
      throw invalidRequest('invalid_value', `messages[${i}] must be an object with a role`, `messages[${i}]`);
    }
  }
  return chat;
}

// Echo is the provider's state: the configuration of its instance.
class Echo {
  constructor() {
    this.config = Object.assign({}, DEFAULTS);
  }

  describe() {
    return {
      name: NAME,
      version: VERSION,
      capabilities: ['chat', 'chat_stream', 'models', 'health'],
      config_schema: CONFIG_SCHEMA,
      credentials: [],
      models: [{ id: MODEL, owned_by: 'llmproxy', created: 0 }],
      data_address: '',
      data_token: Buffer.alloc(0),
      acknowledges_calls: false,
    };
  }

  // configure applies an instance's config JSON and returns diagnostics;
  // a refused config leaves the previous one in force.
  configure(json) {
    const r = parseConfig(json);
    if (r.config) this.config = r.config;
    return r.diagnostics || [];
  }

  // answer computes the reply to a chat request.
  answer(meta, body) {
    const chat = parseChat(body);
    let last = '';
    for (const m of chat.messages) {
      if (m.role === 'user') last = text(m.content);
    }
    let reply = this.config.prefix + last;
    let finish = 'stop';
    const max = chat.max_completion_tokens || chat.max_tokens || 0;
    if (max > 0 && words(reply).length > max) {
      reply = words(reply).slice(0, max).join(' ');
      finish = 'length';
    }
    const stops = typeof chat.stop === 'string' ? [chat.stop] : Array.isArray(chat.stop) ? chat.stop : [];
    for (const stop of stops) {
      const i = typeof stop === 'string' && stop !== '' ? reply.indexOf(stop) : -1;
      if (i >= 0) {
        reply = reply.slice(0, i);
        finish = 'stop';
      }
    }
    const prompt = chat.messages.reduce((n, m) => n + words(text(m.content)).length + 3, 0);
    const completion = words(reply).length;
    return {
      id: 'chatcmpl-nodeecho-' + crypto.createHash('sha256').update(body).digest('hex').slice(0, 16),
      created: Math.floor(Date.now() / 1000),
      model: (meta && meta.model) || chat.model || MODEL,
      text: reply,
      finish,
      usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
      includeUsage: !!(chat.stream_options && chat.stream_options.include_usage),
    };
  }

  // completion is the chat.completion JSON for a request.
  completion(meta, body) {
    const r = this.answer(meta, body);
    return {
      id: r.id,
      object: 'chat.completion',
      created: r.created,
      model: r.model,
      choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finish, logprobs: null }],
      usage: r.usage,
    };
  }

  // chunks returns the chat.completion.chunk objects of a streamed answer:
  // the role, each word, the finish reason and, when asked for, the usage.
  // It checks the request first, so that a bad one fails before the stream
  // starts.
  chunks(meta, body) {
    const r = this.answer(meta, body);
    const chunk = (delta, finish) => ({
      id: r.id, object: 'chat.completion.chunk', created: r.created, model: r.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    const out = [chunk({ role: 'assistant', content: '' }, null)];
    for (const w of r.text.split(/(?<= )/)) {
      if (w !== '') out.push(chunk({ content: w }, null));
    }
    out.push(chunk({}, r.finish));
    if (r.includeUsage) {
      out.push({ id: r.id, object: 'chat.completion.chunk', created: r.created, model: r.model, choices: [], usage: r.usage });
    }
    return out;
  }
}

module.exports = { Echo, parseConfig, OpenAIError, MODEL };
