// The llmproxy console's script. It talks to the host through /ui/api/...
// with the session's CSRF token; the admin key never reaches it. The
// playground calls the AI API directly with a key the operator picks,
// held in memory only.
'use strict';

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const svgNS = 'http://www.w3.org/2000/svg';
const state = { info: null, page: '', poll: 0, history: [] };

// el builds an element; text is always set as text, never as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function flash(msg, kind) {
  const f = document.getElementById('flash');
  f.textContent = msg;
  f.className = 'flash ' + (kind || 'error');
  f.hidden = !msg;
}

// api calls the console API. A lost session sends the browser back to the
// sign-in page.
async function api(path, opts) {
  opts = opts || {};
  const headers = { 'X-CSRF-Token': csrf };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch('/ui/api' + path, {
    method: opts.method || 'GET', headers, credentials: 'same-origin',
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  const code = data && data.error && data.error.code;
  if (res.status === 401 && (code === 'console_session_required' || code === 'invalid_api_key')) {
    location.reload();
    throw new Error('signed out');
  }
  if (!res.ok && !opts.anyStatus) {
    throw new Error((data && data.error && data.error.message) || ('HTTP ' + res.status));
  }
  return data;
}

function fmtTime(s) {
  if (!s) return '–';
  const d = new Date(s);
  return isNaN(d) ? s : d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}
function fmtNum(n) { return (n || 0).toLocaleString('en-US'); }
function fmtUSD(n) { return (n || 0).toFixed(4); }
function list(a) { return a && a.length ? a.join(', ') : '–'; }
function badge(text, kind) { return el('span', { class: 'badge ' + (kind || text) }, text); }
function csv(s) { return s.split(',').map((x) => x.trim()).filter(Boolean); }
function fill(tbody, rows) { tbody.replaceChildren(...rows); }

async function loadInfo() {
  if (!state.info) state.info = await api('/info');
  return state.info;
}

// Instances: live health from /readyz.
async function showInstances() {
  const [info, ready] = await Promise.all([loadInfo(), api('/readyz', { anyStatus: true })]);
  const st = document.getElementById('ready-status');
  st.textContent = ready.status;
  st.className = 'badge ' + ready.status;
  const statuses = ready.instances || {};
  const circuits = ready.routing || {};
  const rows = info.instances.map((i) => {
    const s = statuses[i.name] || {};
    const c = circuits[i.name] || {};
    return el('tr', { 'data-instance': i.name },
      el('td', {}, i.name), el('td', {}, i.kind), el('td', {}, i.type),
      el('td', {}, badge(s.state || 'unknown')), el('td', {}, fmtTime(s.since)),
      el('td', {}, s.restarts || 0), el('td', {}, s.pid || '–'), el('td', {}, s.version || '–'),
      el('td', {}, c.state || '–'), el('td', {}, c.in_flight === undefined ? '–' : c.in_flight),
      el('td', {}, c.ttfb_ewma_ms ? c.ttfb_ewma_ms.toFixed(1) + ' ms' : '–'),
      el('td', { class: 'reason' }, s.reason || ''));
  });
  fill(document.querySelector('#instances-table tbody'), rows);
}

async function showRoutes() {
  const info = await loadInfo();
  const rows = info.routes.map((r) => el('tr', { 'data-route': r.name },
    el('td', {}, el('code', {}, r.name)), el('td', {}, r.strategy || 'failover'),
    el('td', {}, r.targets.map((t) => el('div', {}, t.instance + (t.model && t.model !== r.name ? ' → ' + t.model : '') +
      (t.weight > 1 ? ' (weight ' + t.weight + ')' : '')))),
    el('td', {}, list(r.aliases)),
    el('td', {}, r.cache ? 'ttl ' + (r.cache.ttl || 'default') : '–')));
  fill(document.querySelector('#routes-table tbody'), rows);
}

// Keys: list, create (the secret shown once), revoke.
// limitsText shows a key's own rate limits, e.g. "60 rpm, 2 concurrent".
function limitsText(l) {
  if (!l) return '–';
  const parts = [];
  if (l.rpm) parts.push(l.rpm + ' rpm');
  if (l.rps) parts.push(l.rps + ' rps');
  if (l.tpm) parts.push(l.tpm + ' tpm');
  if (l.concurrency) parts.push(l.concurrency + ' concurrent');
  return parts.length ? parts.join(', ') : '–';
}

async function showKeys() {
  const data = await api('/admin/v1/keys');
  const rows = (data.data || []).map((k) => {
    const revoked = !!k.revoked_at;
    const action = k.source === 'store' && !revoked
      ? el('button', { type: 'button', class: 'danger', 'data-revoke': k.id, onclick: () => revoke(k) }, 'Revoke')
      : (revoked ? badge('revoked') : el('span', { class: 'hint' }, 'config'));
    return el('tr', { 'data-key': k.name, class: revoked ? 'revoked' : '' },
      el('td', {}, k.name), el('td', {}, el('code', {}, k.id || '')), el('td', {}, el('code', {}, k.prefix || '')),
      el('td', {}, k.group || '–'), el('td', {}, list(k.models)),
      el('td', {}, k.instances && k.instances.length ? list(k.instances) + ' (' + list(k.storage_ops) + ')' : '–'),
      el('td', {}, k.budget ? '$' + k.budget.usd + ' / ' + (k.budget.period || 'month') : '–'),
      el('td', {}, limitsText(k.limits)),
      el('td', {}, fmtTime(k.created_at)), el('td', {}, fmtTime(k.expires_at)),
      el('td', {}, k.source || ''), el('td', {}, action));
  });
  fill(document.querySelector('#keys-table tbody'), rows);
}

async function createKey(ev) {
  ev.preventDefault();
  const v = (id) => document.getElementById(id).value.trim();
  const body = {
    name: v('key-name'), group: v('key-group'), models: csv(v('key-models')),
    instances: csv(v('key-instances')), storage_ops: csv(v('key-ops')),
    admin: document.getElementById('key-admin').checked, expires_at: null, budget: null,
  };
  if (v('key-expires')) body.expires_at = new Date(v('key-expires')).toISOString();
  if (v('key-budget')) body.budget = { usd: parseFloat(v('key-budget')), period: v('key-period') };
  try {
    const k = await api('/admin/v1/keys', { method: 'POST', body });
    document.getElementById('new-key-secret').textContent = k.key;
    document.getElementById('new-key').hidden = false;
    document.getElementById('key-form').reset();
    flash('Key ' + k.name + ' created.', 'ok');
    await showKeys();
  } catch (e) {
    flash('Creating the key failed: ' + e.message);
  }
}

async function revoke(k) {
  if (!confirm('Revoke ' + k.name + '? Requests with it are refused from now on.')) return;
  try {
    await api('/admin/v1/keys/' + encodeURIComponent(k.id), { method: 'DELETE' });
    flash('Key ' + k.name + ' revoked.', 'ok');
    await showKeys();
  } catch (e) {
    flash('Revoking failed: ' + e.message);
  }
}

// Usage: totals, a chart over time and tables by model and by key.
const ranges = { '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3, '30d': 30 * 24 * 3600e3 };

async function showUsage(ev) {
  if (ev) ev.preventDefault();
  const group = document.getElementById('usage-group').value;
  const step = group === 'hour' ? 3600e3 : 24 * 3600e3;
  const now = Date.now();
  const from = new Date(Math.floor((now - ranges[document.getElementById('usage-range').value]) / step) * step);
  const q = new URLSearchParams({ from: from.toISOString(), to: new Date(now + 60e3).toISOString() });
  const key = document.getElementById('usage-key').value.trim();
  if (key) q.set('key', key);
  const get = (by) => api('/admin/v1/usage?' + q + '&group_by=' + by);
  const [series, models, keys] = await Promise.all([get(group), get('model'), get('key')]);
  const tot = { requests: 0, tokens: 0, cost: 0, errors: 0 };
  for (const r of models.data || []) {
    tot.requests += r.requests || 0;
    tot.errors += r.errors || 0;
    tot.tokens += (r.prompt_tokens || 0) + (r.completion_tokens || 0);
    tot.cost += r.cost_usd || 0;
  }
  document.getElementById('usage-total-requests').textContent = fmtNum(tot.requests);
  document.getElementById('usage-total-tokens').textContent = fmtNum(tot.tokens);
  document.getElementById('usage-total-cost').textContent = '$' + fmtUSD(tot.cost);
  document.getElementById('usage-total-errors').textContent = fmtNum(tot.errors);
  const row = (r) => el('tr', { 'data-group': r.group }, el('td', {}, r.group), el('td', {}, fmtNum(r.requests)),
    el('td', {}, fmtNum(r.prompt_tokens)), el('td', {}, fmtNum(r.completion_tokens)),
    el('td', {}, fmtNum(r.cached_tokens)), el('td', {}, '$' + fmtUSD(r.cost_usd)));
  fill(document.querySelector('#usage-models tbody'), (models.data || []).map(row));
  fill(document.querySelector('#usage-keys tbody'), (keys.data || []).map(row));
  drawChart(series.data || [], from.getTime(), now, step, group);
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// drawChart draws requests per bucket as bars and spend as a line, in an
// inline SVG; empty buckets are drawn as zero.
function drawChart(rows, from, to, step, group) {
  const byTime = new Map();
  for (const r of rows) {
    const t = Date.parse(r.group);
    if (!isNaN(t)) byTime.set(Math.floor(t / step) * step, r);
  }
  const buckets = [];
  for (let t = from; t <= to; t += step) buckets.push({ t, r: byTime.get(t) || {} });
  const W = 900, H = 260, L = 48, R = 56, T = 12, B = 36;
  // Four grid steps of whole requests, and of a round amount of dollars.
  const maxReq = Math.ceil(Math.max(4, ...buckets.map((b) => b.r.requests || 0)) / 4) * 4;
  const maxCost = niceCeil(Math.max(0.0004, ...buckets.map((b) => b.r.cost_usd || 0)) / 4) * 4;
  const bw = (W - L - R) / buckets.length;
  const y = (v, max) => T + (H - T - B) * (1 - v / max);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'requests and spend per ' + group, id: 'usage-svg' });
  for (let i = 0; i <= 4; i++) {
    const v = (maxReq * i) / 4;
    g.append(svg('line', { x1: L, x2: W - R, y1: y(v, maxReq), y2: y(v, maxReq), class: 'grid' }));
    g.append(svg('text', { x: L - 6, y: y(v, maxReq) + 4, 'text-anchor': 'end', class: 'axis' }, Math.round(v)));
    g.append(svg('text', { x: W - R + 6, y: y((maxCost * i) / 4, maxCost) + 4, class: 'axis cost' }, '$' + +((maxCost * i) / 4).toPrecision(3)));
  }
  let path = '';
  buckets.forEach((b, i) => {
    const req = b.r.requests || 0;
    const x = L + i * bw;
    if (req > 0) {
      const bar = svg('rect', { x: x + bw * 0.15, width: Math.max(1, bw * 0.7), y: y(req, maxReq), height: H - B - y(req, maxReq), class: 'bar' });
      bar.append(svg('title', {}, `${new Date(b.t).toISOString()}: ${req} requests, $${fmtUSD(b.r.cost_usd)}`));
      g.append(bar);
    }
    path += (i ? 'L' : 'M') + (x + bw / 2).toFixed(1) + ',' + y(b.r.cost_usd || 0, maxCost).toFixed(1);
    const every = Math.ceil(buckets.length / 8);
    if (i % every === 0) {
      const d = new Date(b.t);
      const label = group === 'hour' ? d.toISOString().slice(11, 16) : d.toISOString().slice(5, 10);
      g.append(svg('text', { x: x + bw / 2, y: H - B + 16, 'text-anchor': 'middle', class: 'axis' }, label));
    }
  });
  g.append(svg('path', { d: path, class: 'cost-line' }));
  document.getElementById('usage-chart').replaceChildren(g);
}

// Playground: chat with a routed model, streamed, optionally with a
// document uploaded to a storage instance and attached by reference.
async function showPlayground() {
  const info = await loadInfo();
  const st = document.getElementById('pg-storage');
  if (st.options.length <= 1) {
    for (const i of info.instances.filter((x) => x.kind === 'storage')) {
      st.append(el('option', { value: i.type + '/' + i.name }, i.name + ' (' + i.type + ')'));
    }
    if (st.options.length > 1) st.selectedIndex = 1;
  }
  await loadModels();
}

async function loadModels() {
  const sel = document.getElementById('pg-model');
  const key = document.getElementById('pg-key').value.trim();
  let names = [];
  if (key) {
    try {
      const res = await fetch('/v1/models', { headers: { Authorization: 'Bearer ' + key } });
      if (res.ok) names = ((await res.json()).data || []).map((m) => m.id);
    } catch (_) { /* fall back to the routes */ }
  }
  if (!names.length) names = (await loadInfo()).routes.filter((r) => !r.pattern).map((r) => r.name);
  const keep = sel.value;
  sel.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
  if (names.includes(keep)) sel.value = keep;
}

function pgStatus(text, kind) {
  const s = document.getElementById('pg-status');
  s.textContent = text;
  s.className = 'hint ' + (kind || '');
}

async function errorText(res) {
  try {
    const d = await res.json();
    return (d.error && (d.error.message || d.error.code)) || ('HTTP ' + res.status);
  } catch (_) {
    return 'HTTP ' + res.status;
  }
}

async function send(ev) {
  ev.preventDefault();
  const key = document.getElementById('pg-key').value.trim();
  const model = document.getElementById('pg-model').value;
  const prompt = document.getElementById('pg-prompt').value;
  if (!key) { pgStatus('Enter an API key first (or create one under Keys).', 'error'); return; }
  const auth = { Authorization: 'Bearer ' + key };
  let content = prompt;
  const file = document.getElementById('pg-file').files[0];
  const storage = document.getElementById('pg-storage').value;
  document.getElementById('pg-send').disabled = true;
  try {
    if (file) {
      if (!storage) throw new Error('choose a storage instance for the document');
      const [type, instance] = storage.split('/');
      const bucket = document.getElementById('pg-bucket').value.trim();
      pgStatus('Uploading ' + file.name + '…');
      const put = await fetch(`/-${type}/${instance}/put/${encodeURIComponent(bucket)}/${encodeURIComponent(file.name)}`, {
        method: 'PUT', headers: Object.assign({ 'Content-Type': file.type || 'text/plain' }, auth), body: file,
      });
      if (!put.ok) throw new Error('upload: ' + await errorText(put));
      content = [{ type: 'text', text: prompt },
        { type: 'document', source: { type: 'storage', storage: instance, bucket, key: file.name } }];
    }
    const transcript = document.getElementById('pg-transcript');
    transcript.append(el('div', { class: 'msg user' }, el('b', {}, 'you'), prompt + (file ? ' [' + file.name + ']' : '')));
    const out = el('div', { class: 'msg assistant', id: 'pg-output' });
    document.querySelectorAll('#pg-output').forEach((e) => e.removeAttribute('id'));
    transcript.append(el('div', { class: 'msg-wrap' }, el('b', {}, model), out));
    state.history.push({ role: 'user', content });
    pgStatus('Waiting for ' + model + '…');
    const res = await fetch('/v1/chat/completions', {
      method: 'POST', headers: Object.assign({ 'Content-Type': 'application/json' }, auth),
      body: JSON.stringify({ model, messages: state.history, stream: true, stream_options: { include_usage: true } }),
    });
    if (!res.ok) throw new Error(await errorText(res));
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '', text = '', usage = null, chunks = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') continue;
          const c = JSON.parse(data);
          if (c.error) throw new Error(c.error.message || c.error.code);
          if (c.usage) usage = c.usage;
          const d = c.choices && c.choices[0] && c.choices[0].delta;
          if (d && d.content) {
            text += d.content;
            out.textContent = text;
            chunks++;
            pgStatus('Streaming… ' + chunks + ' chunks');
          }
        }
      }
    }
    state.history.push({ role: 'assistant', content: text });
    const cache = res.headers.get('X-LLMProxy-Cache');
    pgStatus('done', 'ok');
    const meta = [chunks + ' chunks'];
    if (usage) meta.push(usage.prompt_tokens + ' prompt + ' + usage.completion_tokens + ' completion tokens');
    if (cache) meta.push('cache ' + cache);
    if (res.headers.get('X-Request-Id')) meta.push(res.headers.get('X-Request-Id'));
    out.after(el('div', { class: 'meta', id: 'pg-meta' }, meta.join(' · ')));
    document.getElementById('pg-prompt').value = '';
    document.getElementById('pg-file').value = '';
  } catch (e) {
    pgStatus('Failed: ' + e.message, 'error');
  } finally {
    document.getElementById('pg-send').disabled = false;
  }
}

const pages = { instances: showInstances, routes: showRoutes, keys: showKeys, usage: showUsage, playground: showPlayground };

async function navigate() {
  const name = (location.hash || '#instances').slice(1);
  const show = pages[name] ? name : 'instances';
  state.page = show;
  flash('');
  for (const s of document.querySelectorAll('.page')) s.hidden = s.id !== 'page-' + show;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === show);
  clearInterval(state.poll);
  if (show === 'instances') state.poll = setInterval(() => showInstances().catch(() => {}), 2000);
  try {
    await pages[show]();
    document.body.dataset.loaded = show;
  } catch (e) {
    flash(e.message);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('key-form').addEventListener('submit', createKey);
  document.getElementById('usage-form').addEventListener('submit', showUsage);
  document.getElementById('usage-group').addEventListener('change', () => showUsage());
  document.getElementById('usage-range').addEventListener('change', () => showUsage());
  document.getElementById('pg-form').addEventListener('submit', send);
  document.getElementById('pg-key').addEventListener('change', () => loadModels());
  document.getElementById('pg-clear').addEventListener('click', () => {
    state.history = [];
    document.getElementById('pg-transcript').replaceChildren();
    pgStatus('');
  });
  document.getElementById('new-key-use').addEventListener('click', () => {
    document.getElementById('pg-key').value = document.getElementById('new-key-secret').textContent;
    location.hash = '#playground';
  });
  window.addEventListener('hashchange', navigate);
  navigate();
});
