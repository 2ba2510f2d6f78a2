// retry.mjs makes two chat completions in a row through the official
// OpenAI Node SDK with its retries on, for test/e2e/traffic_test.go: when
// llmproxy refuses the second with 429 and Retry-After, the SDK waits and
// retries on its own.
//
// Usage: LLMPROXY_URL=http://127.0.0.1:PORT LLMPROXY_KEY=sk-... node retry.mjs <model>
//
// Prints a JSON array with, per call, ok, content, elapsed_ms and error.
import OpenAI from "openai";

const [model = "echo"] = process.argv.slice(2);
const client = new OpenAI({
  baseURL: `${process.env.LLMPROXY_URL}/v1`,
  apiKey: process.env.LLMPROXY_KEY,
  maxRetries: 3,
  timeout: 30_000,
});

const out = [];
for (let i = 0; i < 2; i++) {
  const start = performance.now();
  try {
    const c = await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "hello" }],
    });
    out.push({ ok: true, content: c.choices[0].message.content, elapsed_ms: performance.now() - start });
  } catch (e) {
    out.push({ ok: false, error: String(e), elapsed_ms: performance.now() - start });
  }
}
console.log(JSON.stringify(out));
