// responses.mjs drives llmproxy's /v1/responses with the official OpenAI
// Node SDK for the end-to-end tests (test/e2e/responses_test.go).
//
//   LLMPROXY_URL=http://127.0.0.1:8080 LLMPROXY_KEY=sk-... \
//     node test/node/responses.mjs <scenario> <model>
//
// Scenarios:
//   text            one responses.create with instructions and a string input
//   stream          responses.stream: every event as the SDK parsed it, then
//                   the SDK's own finalResponse()
//   tools_items     a function tool: the call, then a second request that
//                   sends the conversation back as input items with the
//                   function_call_output
//   tools_previous  the same second turn through previous_response_id
//   tools_stream    tools_items with both turns streamed
//   json_schema     text.format json_schema; output_text is the JSON
//   stream_error    responses.stream where the provider fails part-way: the
//                   events seen before the SDK raised the stream's error
//                   event, and that error's code and message
//
// The script prints one JSON object on stdout describing what the SDK saw.
// Anything unexpected is printed on stderr and ends the process with
// status 1.

import OpenAI from "openai";

const [scenario, model] = process.argv.slice(2);
const baseURL = process.env.LLMPROXY_URL;
const apiKey = process.env.LLMPROXY_KEY;
if (!scenario || !model || !baseURL || !apiKey) {
  console.error("usage: LLMPROXY_URL=... LLMPROXY_KEY=... node responses.mjs <scenario> <model>");
  process.exit(2);
}

const client = new OpenAI({ baseURL: baseURL.replace(/\/$/, "") + "/v1", apiKey, maxRetries: 0, timeout: 60_000 });

const weatherTool = {
  type: "function",
  name: "get_weather",
  description: "Current weather in a city.",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  strict: false,
};

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

// streamed runs responses.stream and returns the event types (runs of the
// same type folded), whether sequence numbers counted from 0, the text
// deltas and the SDK's final response.
async function streamed(params) {
  const stream = client.responses.stream(params);
  const events = [];
  let deltas = "";
  let sequenceOK = true;
  let i = 0;
  for await (const ev of stream) {
    if (ev.sequence_number !== i++) sequenceOK = false;
    if (events[events.length - 1] !== ev.type) events.push(ev.type);
    if (ev.type === "response.output_text.delta") deltas += ev.delta;
  }
  const final = await stream.finalResponse();
  return { events, sequence_ok: sequenceOK, deltas, final };
}

function callOf(response) {
  const calls = response.output.filter((it) => it.type === "function_call");
  if (calls.length !== 1) fail(`expected one function call, got ${JSON.stringify(response.output)}`);
  return calls[0];
}

function report(extra, response) {
  console.log(
    JSON.stringify({
      scenario,
      id: response.id,
      status: response.status,
      output_text: response.output_text,
      usage: response.usage,
      previous_response_id: response.previous_response_id ?? "",
      ...extra,
    }),
  );
}

const question = "Weather in Paris?";

switch (scenario) {
  case "text": {
    const r = await client.responses.create({
      model,
      instructions: "Answer in one sentence.",
      input: "What is the capital of France?",
    });
    report({}, r);
    break;
  }
  case "stream": {
    const s = await streamed({ model, input: "What is the capital of France?" });
    report({ events: s.events, sequence_ok: s.sequence_ok, deltas: s.deltas }, s.final);
    break;
  }
  case "tools_items":
  case "tools_stream": {
    const stream = scenario === "tools_stream";
    const first = stream
      ? (await streamed({ model, input: question, tools: [weatherTool], store: false })).final
      : await client.responses.create({ model, input: question, tools: [weatherTool], store: false });
    const call = callOf(first);
    const input = [
      { role: "user", content: question },
      ...first.output,
      { type: "function_call_output", call_id: call.call_id, output: "18 degrees, sunny" },
    ];
    const final = stream
      ? (await streamed({ model, input, tools: [weatherTool] })).final
      : await client.responses.create({ model, input, tools: [weatherTool] });
    report({ call }, final);
    break;
  }
  case "tools_previous": {
    const first = await client.responses.create({ model, input: question, tools: [weatherTool] });
    const call = callOf(first);
    const final = await client.responses.create({
      model,
      previous_response_id: first.id,
      tools: [weatherTool],
      input: [{ type: "function_call_output", call_id: call.call_id, output: "18 degrees, sunny" }],
    });
    if (final.previous_response_id !== first.id) fail(`previous_response_id ${final.previous_response_id}, want ${first.id}`);
    report({ call }, final);
    break;
  }
  case "json_schema": {
    const r = await client.responses.create({
      model,
      input: "Which city is the capital of France?",
      text: {
        format: {
          type: "json_schema",
          name: "city",
          strict: true,
          schema: {
            type: "object",
            properties: { city: { type: "string" } },
            required: ["city"],
            additionalProperties: false,
          },
        },
      },
    });
    report({}, r);
    break;
  }
  case "stream_error": {
    const stream = client.responses.stream({ model, input: "What is the capital of France?" });
    const events = [];
    let deltas = "";
    let sequenceOK = true;
    let i = 0;
    let raised = null;
    try {
      for await (const ev of stream) {
        if (ev.sequence_number !== i++) sequenceOK = false;
        if (events[events.length - 1] !== ev.type) events.push(ev.type);
        if (ev.type === "response.output_text.delta") deltas += ev.delta;
      }
      await stream.finalResponse();
    } catch (err) {
      raised = { code: err.code, message: err.message };
    }
    if (!raised) fail("the stream ended without raising the provider's error");
    console.log(JSON.stringify({ scenario, events, sequence_ok: sequenceOK, deltas, error: raised }));
    break;
  }
  default:
    fail(`unknown scenario ${scenario}`);
}
