// messages.mjs drives llmproxy's POST /v1/messages with the official
// Anthropic Node SDK for the end-to-end tests (test/e2e/messages_test.go).
//
//   LLMPROXY_URL=http://127.0.0.1:8080 LLMPROXY_KEY=sk-... \
//     node test/node/messages.mjs <scenario> <model>
//
// Scenarios:
//   text          one messages.create
//   stream        one messages.stream: every event the SDK parsed, in
//                 order, and its finalMessage()
//   tools         a streamed turn offering two tools (parallel calls),
//                 then a streamed second turn answering both with
//                 tool_result blocks
//   rate_limited  a messages.create that must fail with 429: status,
//                 error type, retry-after and request id as the SDK saw them
//   stream_error  a stream that must fail after it started: the events
//                 seen and the error the SDK raised
//
// The script prints one JSON object on stdout; anything unexpected is
// printed on stderr and ends the process with status 1.

import Anthropic from "@anthropic-ai/sdk";

const [scenario, model] = process.argv.slice(2);
const baseURL = process.env.LLMPROXY_URL;
const apiKey = process.env.LLMPROXY_KEY;
if (!scenario || !model || !baseURL || !apiKey) {
  console.error("usage: LLMPROXY_URL=... LLMPROXY_KEY=... node messages.mjs <scenario> <model>");
  process.exit(2);
}

// The SDK sends the key as x-api-key. Retries are off so that the
// gateway's errors reach the caller unchanged.
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

const question = [{ role: "user", content: "What are the weather and the local time in Paris?" }];

const tools = [
  {
    name: "get_weather",
    description: "Current weather of a city.",
    input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
  {
    name: "get_time",
    description: "Local time in a time zone.",
    input_schema: { type: "object", properties: { timezone: { type: "string" } }, required: ["timezone"] },
  },
];

// stream runs one streamed request and reports the events in order and
// the SDK's final message.
async function stream(params) {
  const s = client.messages.stream(params);
  const events = [];
  s.on("streamEvent", (ev) => events.push(ev));
  const final = await s.finalMessage();
  return { events: events.map((e) => e.type), deltas: events.filter((e) => e.type === "content_block_delta").map((e) => e.delta.type), final };
}

async function run() {
  switch (scenario) {
    case "text": {
      const { data, response } = await client.messages
        .create({ model, max_tokens: 256, system: "You are a concise assistant.", messages: [{ role: "user", content: "What is the weather like in Paris?" }] })
        .withResponse();
      return { message: data, request_id: response.headers.get("request-id") };
    }
    case "stream":
      return stream({ model, max_tokens: 256, messages: [{ role: "user", content: "What is the weather like in Paris?" }] });
    case "tools": {
      const first = await stream({ model, max_tokens: 256, tools, messages: question });
      const uses = first.final.content.filter((b) => b.type === "tool_use");
      const results = uses.map((u) => ({ type: "tool_result", tool_use_id: u.id, content: u.name === "get_weather" ? "sunny, 21 degrees" : "14:05" }));
      const second = await stream({
        model,
        max_tokens: 256,
        tools,
        messages: [...question, { role: "assistant", content: first.final.content }, { role: "user", content: results }],
      });
      return { first, second };
    }
    case "rate_limited":
    case "stream_error": {
      const events = [];
      try {
        if (scenario === "rate_limited") {
          await client.messages.create({ model, max_tokens: 16, messages: [{ role: "user", content: "hi" }] });
        } else {
          const s = client.messages.stream({ model, max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
          s.on("streamEvent", (ev) => events.push(ev.type));
          await s.finalMessage();
        }
      } catch (err) {
        if (!(err instanceof Anthropic.APIError)) throw err;
        return {
          events,
          status: err.status ?? null,
          type: err.type,
          message: err.apiMessage,
          request_id: err.requestID ?? null,
          retry_after: err.headers?.get("retry-after") ?? null,
          class: err.constructor.name,
        };
      }
      throw new Error(`${scenario}: the call succeeded`);
    }
  }
  throw new Error(`unknown scenario ${scenario}`);
}

run().then(
  (out) => console.log(JSON.stringify({ scenario, ...out })),
  (err) => {
    console.error(err?.stack ?? String(err));
    process.exit(1);
  },
);
