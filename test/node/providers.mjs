// providers.mjs drives llmproxy with the official OpenAI Node SDK for the
// end-to-end provider tests (test/e2e/providers_test.go).
//
//   LLMPROXY_URL=http://127.0.0.1:8080 LLMPROXY_KEY=sk-... \
//     node test/node/providers.mjs <scenario> <model>
//
// Scenarios:
//   chat          one non-streamed completion
//   stream        one streamed completion with stream_options.include_usage
//   tools         a non-streamed request offering two tools (parallel calls)
//   tools_stream  the same request streamed
//   error         a non-streamed completion that is expected to fail
//   tool_followup the tools request, then a second turn answering every tool
//                 call it returned (tool results keyed by tool_call_id)
//   tool_followup_stream  the same, with both turns streamed
//   rate_limited  a non-streamed completion that must fail with 429; reports
//                 the Retry-After the SDK saw
//   stream_error  a streamed completion that must fail part-way: reports the
//                 chunks seen before the SDK raised the error
//
// The script prints one JSON object on stdout describing what the SDK saw;
// streamed scenarios also report every chunk as the SDK parsed it and the
// tool-call fragments in the order they arrived. Anything unexpected (an
// error outside the error scenario, a call that should have failed and did
// not) is printed on stderr and ends the process with status 1.

import OpenAI from "openai";

const [scenario, model] = process.argv.slice(2);
const baseURL = process.env.LLMPROXY_URL;
const apiKey = process.env.LLMPROXY_KEY;
if (!scenario || !model || !baseURL || !apiKey) {
  console.error("usage: LLMPROXY_URL=... LLMPROXY_KEY=... node providers.mjs <scenario> <model>");
  process.exit(2);
}

// Retries are off so that every failure the gateway returns reaches the
// caller unchanged: the tests assert the gateway's own failover, not the
// SDK's.
const client = new OpenAI({ baseURL: baseURL.replace(/\/$/, "") + "/v1", apiKey, maxRetries: 0, timeout: 60_000 });

const question = [
  { role: "system", content: "You are a concise assistant." },
  { role: "user", content: "What is the weather like in Paris?" },
];

const toolQuestion = [{ role: "user", content: "What are the weather and the local time in Paris?" }];

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather of a city.",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
  {
    type: "function",
    function: {
      name: "get_time",
      description: "Local time in a time zone.",
      parameters: { type: "object", properties: { timezone: { type: "string" } }, required: ["timezone"] },
    },
  },
];

// completion reports a non-streamed chat.completion.
function completion(data, response) {
  const choice = data.choices[0];
  return {
    request_id: response.headers.get("x-request-id"),
    id: data.id,
    object: data.object,
    model: data.model,
    choices: data.choices.length,
    role: choice.message.role,
    content: choice.message.content,
    finish_reason: choice.finish_reason,
    tool_calls: (choice.message.tool_calls ?? []).map((tc) => ({
      id: tc.id,
      type: tc.type,
      name: tc.function.name,
      arguments: tc.function.arguments,
    })),
    usage: data.usage ?? null,
  };
}

// streamed iterates the SDK's stream and reports what its chunks carried.
async function streamed(params) {
  const { data: stream, response } = await client.chat.completions
    .create({ ...params, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  const out = {
    request_id: response.headers.get("x-request-id"),
    content_type: response.headers.get("content-type"),
    ids: [],
    models: [],
    objects: [],
    roles: [],
    content: "",
    finish_reasons: [],
    usage: null,
    usage_chunks: 0,
    tool_call_fragments: [],
    tool_calls: [],
    chunks: [],
  };
  const add = (list, v) => {
    if (v !== undefined && v !== null && !list.includes(v)) list.push(v);
  };
  const calls = new Map();
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    add(out.ids, chunk.id);
    add(out.models, chunk.model);
    add(out.objects, chunk.object);
    if (chunk.choices.length === 0 && chunk.usage) {
      out.usage_chunks++;
      out.usage = chunk.usage;
    }
    for (const choice of chunk.choices) {
      const delta = choice.delta ?? {};
      if (delta.role) out.roles.push(delta.role);
      if (typeof delta.content === "string") out.content += delta.content;
      if (choice.finish_reason) out.finish_reasons.push(choice.finish_reason);
      for (const tc of delta.tool_calls ?? []) {
        const fragment = {
          index: tc.index,
          id: tc.id ?? null,
          name: tc.function?.name ?? null,
          arguments: tc.function?.arguments ?? null,
        };
        out.tool_call_fragments.push(fragment);
        if (!calls.has(tc.index)) calls.set(tc.index, { index: tc.index, id: null, name: null, arguments: "" });
        const call = calls.get(tc.index);
        call.id ??= fragment.id;
        call.name ??= fragment.name;
        call.arguments += fragment.arguments ?? "";
      }
    }
  }
  out.tool_calls = [...calls.values()].sort((a, b) => a.index - b.index);
  return out;
}

// answerTools builds the follow-up conversation: the first turn's assistant
// message with its tool calls, then one tool result per call.
function answerTools(calls) {
  const assistant = {
    role: "assistant",
    content: null,
    tool_calls: calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })),
  };
  const results = calls.map((c) => ({
    role: "tool",
    tool_call_id: c.id,
    content: c.name === "get_weather" ? "18°C and sunny" : "14:05",
  }));
  return [...toolQuestion, assistant, ...results];
}

// apiError reports an OpenAI.APIError the way the error scenarios print it.
function apiError(err) {
  if (!(err instanceof OpenAI.APIError)) throw err;
  return {
    status: err.status ?? null,
    class: err.constructor.name,
    type: err.type ?? null,
    code: err.code ?? null,
    error: err.error ?? null,
    message: err.message ?? null,
    request_id: err.headers?.get?.("x-request-id") ?? null,
    retry_after: err.headers?.get?.("retry-after") ?? null,
  };
}

async function run() {
  switch (scenario) {
    case "chat": {
      const { data, response } = await client.chat.completions
        .create({ model, messages: question, max_tokens: 256 })
        .withResponse();
      return completion(data, response);
    }
    case "stream":
      return streamed({ model, messages: question, max_tokens: 256 });
    case "tools": {
      const { data, response } = await client.chat.completions
        .create({ model, messages: toolQuestion, tools, tool_choice: "auto", parallel_tool_calls: true })
        .withResponse();
      return completion(data, response);
    }
    case "tools_stream":
      return streamed({ model, messages: toolQuestion, tools, tool_choice: "auto", parallel_tool_calls: true });
    case "error":
      try {
        const data = await client.chat.completions.create({ model, messages: question });
        throw new Error("the call was expected to fail but returned " + JSON.stringify(data));
      } catch (err) {
        return apiError(err);
      }
    case "rate_limited":
      try {
        const data = await client.chat.completions.create({ model, messages: question });
        throw new Error("the call was expected to be rate limited but returned " + JSON.stringify(data));
      } catch (err) {
        return apiError(err);
      }
    case "tool_followup": {
      const first = await client.chat.completions.create({
        model,
        messages: toolQuestion,
        tools,
        tool_choice: "auto",
        parallel_tool_calls: true,
      });
      const calls = (first.choices[0].message.tool_calls ?? []).map((tc) => ({
        id: tc.id,
        name: tc.function.name,
        arguments: tc.function.arguments,
      }));
      if (calls.length === 0) throw new Error("the first turn returned no tool calls: " + JSON.stringify(first));
      const { data, response } = await client.chat.completions
        .create({ model, messages: answerTools(calls), tools })
        .withResponse();
      return { first_turn: completion(first, response), ...completion(data, response) };
    }
    case "tool_followup_stream": {
      const first = await streamed({ model, messages: toolQuestion, tools, tool_choice: "auto", parallel_tool_calls: true });
      if (first.tool_calls.length === 0) throw new Error("the first turn returned no tool calls: " + JSON.stringify(first));
      const second = await streamed({ model, messages: answerTools(first.tool_calls), tools });
      delete first.chunks;
      return { first_turn: first, ...second };
    }
    case "stream_error": {
      const seen = [];
      try {
        const stream = await client.chat.completions.create({
          model,
          messages: question,
          max_tokens: 256,
          stream: true,
        });
        for await (const chunk of stream) seen.push(chunk);
        throw new Error("the stream was expected to fail but ended cleanly after " + seen.length + " chunks");
      } catch (err) {
        if (err instanceof OpenAI.APIError) return { chunks_before_error: seen.length, ...apiError(err) };
        throw err;
      }
    }
    default:
      throw new Error(`unknown scenario ${JSON.stringify(scenario)}`);
  }
}

try {
  process.stdout.write(JSON.stringify({ scenario, model, ...(await run()) }) + "\n");
} catch (err) {
  console.error(err?.stack ?? String(err));
  // A connection error says why only in its cause.
  if (err?.cause) console.error("cause:", err.cause);
  process.exit(1);
}
