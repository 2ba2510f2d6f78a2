// sdk.mjs drives llmproxy with the official OpenAI Node SDK for the
// end-to-end tests (test/e2e/sdk_test.go).
//
// Usage: LLMPROXY_URL=http://127.0.0.1:PORT LLMPROXY_KEY=sk-... \
//          node sdk.mjs <scenario> [model] [text]
//
// Each scenario makes one kind of call through the SDK and prints one JSON
// object on stdout describing what the SDK returned, so that the Go test
// asserts on what a Node application would see. Retries are off
// (maxRetries: 0): an error status reaches the caller as the SDK raises it.
//
// Scenarios:
//   chat          non-streaming chat completion
//   stream        streaming chat completion, iterating the SDK's stream
//   tools         non-streaming chat completion offering two tools
//   tools-stream  streaming chat completion offering two tools
//   embeddings    embeddings of two inputs
//   models        the model list
//   error         a chat completion expected to fail; prints the error
import OpenAI from "openai";

const [scenario, model = "", text = "hello"] = process.argv.slice(2);

const client = new OpenAI({
  baseURL: `${requiredEnv("LLMPROXY_URL")}/v1`,
  apiKey: requiredEnv("LLMPROXY_KEY"),
  maxRetries: 0,
  timeout: 30_000,
});

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather of a city.",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    },
  },
  {
    type: "function",
    function: {
      name: "get_time",
      description: "Current time in a time zone.",
      parameters: {
        type: "object",
        properties: { tz: { type: "string" } },
        required: ["tz"],
      },
    },
  },
];

const messages = [{ role: "user", content: text }];

const scenarios = {
  async chat() {
    const c = await client.chat.completions.create({ model, messages });
    return {
      object: c.object,
      model: c.model,
      content: c.choices[0].message.content,
      finish_reason: c.choices[0].finish_reason,
      total_tokens: c.usage?.total_tokens ?? 0,
    };
  },

  async stream() {
    const stream = await client.chat.completions.create({
      model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = "";
    let finish = null;
    let chunks = 0;
    let usage = null;
    for await (const chunk of stream) {
      chunks++;
      for (const choice of chunk.choices) {
        content += choice.delta?.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) {
        usage = chunk.usage;
      }
    }
    return { content, finish_reason: finish, chunks, total_tokens: usage?.total_tokens ?? 0 };
  },

  async tools() {
    const c = await client.chat.completions.create({
      model,
      messages,
      tools,
      parallel_tool_calls: true,
    });
    const msg = c.choices[0].message;
    return {
      finish_reason: c.choices[0].finish_reason,
      content: msg.content,
      tool_calls: (msg.tool_calls ?? []).map((tc) => ({
        id: tc.id,
        type: tc.type,
        name: tc.function.name,
        arguments: tc.function.arguments,
      })),
    };
  },

  async "tools-stream"() {
    const stream = await client.chat.completions.create({
      model,
      messages,
      tools,
      parallel_tool_calls: true,
      stream: true,
    });
    const calls = [];
    let finish = null;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        finish = choice.finish_reason ?? finish;
        for (const d of choice.delta?.tool_calls ?? []) {
          const tc = (calls[d.index] ??= { id: "", type: "", name: "", arguments: "" });
          tc.id ||= d.id ?? "";
          tc.type ||= d.type ?? "";
          tc.name += d.function?.name ?? "";
          tc.arguments += d.function?.arguments ?? "";
        }
      }
    }
    return { finish_reason: finish, tool_calls: calls };
  },

  async embeddings() {
    const e = await client.embeddings.create({ model, input: ["first input", "second input"] });
    return {
      object: e.object,
      count: e.data.length,
      indexes: e.data.map((d) => d.index),
      dimensions: e.data.map((d) => d.embedding.length),
    };
  },

  async models() {
    const ids = [];
    for await (const m of client.models.list()) {
      ids.push(m.id);
    }
    return { ids };
  },

  async error() {
    try {
      await client.chat.completions.create({ model, messages });
    } catch (err) {
      if (!(err instanceof OpenAI.APIError)) {
        throw err;
      }
      return {
        class: err.constructor.name,
        not_found: err instanceof OpenAI.NotFoundError,
        rate_limit: err instanceof OpenAI.RateLimitError,
        status: err.status,
        code: err.code ?? null,
        type: err.type ?? null,
        retry_after: err.headers?.get("retry-after") ?? null,
      };
    }
    throw new Error(`chat completion with model ${model} succeeded; an error was expected`);
  },
};

function requiredEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`sdk.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const run = scenarios[scenario];
if (!run) {
  console.error(`sdk.mjs: unknown scenario ${JSON.stringify(scenario)}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
try {
  process.stdout.write(JSON.stringify(await run()) + "\n");
} catch (err) {
  console.error(`sdk.mjs ${scenario}: ${err?.stack ?? err}`);
  process.exit(1);
}
