package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// A 1x1 PNG and a minimal PDF, small enough to read in golden files.
const (
	pngDataURL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	pdfBytes   = "%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
)

var weatherTool = `{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}`
var timeTool = `{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}}`

// scenario is one golden translation case: an OpenAI request, what the
// fake answers, and where it fails.
type scenario struct {
	name  string
	api   string
	body  string
	docs  []provider.Document
	reply *bedrockfake.Reply
	fail  *bedrockfake.Failure
	creds map[string]string
	// streamOnly marks replies whose failure shows only in a stream.
	streamOnly bool
}

func text(s string) bedrockfake.Block { return bedrockfake.Block{Text: s} }

func tool(id, name, input string) bedrockfake.Block {
	return bedrockfake.Block{ToolUse: &bedrockfake.ToolUse{ID: id, Name: name, Input: input}}
}

func scenarios() []scenario {
	usage := bedrockfake.Usage{Input: 20, Output: 9}
	return []scenario{
		{name: "plain_text", body: `{"model":"claude","messages":[{"role":"user","content":"Hello"}]}`},
		{name: "system", body: `{"model":"claude","messages":[{"role":"system","content":"You are terse."},{"role":"developer","content":[{"type":"text","text":"Answer in English."}]},{"role":"user","content":"Hi"}],"max_completion_tokens":256,"temperature":0.5,"top_p":0.9}`},
		{name: "multi_turn", body: `{"model":"claude","messages":[{"role":"user","content":"My name is Ada."},{"role":"user","content":"Remember it."},{"role":"assistant","content":"Noted, Ada."},{"role":"user","content":"What is my name?"}]}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Your name is Ada.")}, StopReason: "end_turn", Usage: usage}},
		{name: "tool_call", body: `{"model":"claude","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[` + weatherTool + `],"tool_choice":"auto"}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Let me check."), tool("tooluse_1", "get_weather", `{"city":"Paris"}`)}, StopReason: "tool_use", Usage: usage, ChunkSize: 5}},
		{name: "parallel_tool_calls", body: `{"model":"claude","messages":[{"role":"user","content":"Weather and time in Paris?"}],"tools":[` + weatherTool + `,` + timeTool + `],"tool_choice":"required"}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{tool("tooluse_a", "get_weather", `{"city":"Paris"}`), tool("tooluse_b", "get_time", `{"tz":"Europe/Paris"}`)}, StopReason: "tool_use", Usage: usage, ChunkSize: 4}},
		{name: "named_tool_choice", body: `{"model":"claude","messages":[{"role":"user","content":"Paris"}],"tools":[` + weatherTool + `,` + timeTool + `],"tool_choice":{"type":"function","function":{"name":"get_time"}}}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{tool("tooluse_t", "get_time", `{"tz":"Europe/Paris"}`)}, StopReason: "end_turn", Usage: usage}},
		{name: "tool_results_grouped", body: `{"model":"claude","messages":[{"role":"user","content":"Weather and time in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"tooluse_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"tooluse_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"Europe/Paris\",\"precision\":1.50}"}}]},{"role":"tool","tool_call_id":"tooluse_a","content":"18C and sunny"},{"role":"tool","tool_call_id":"tooluse_b","content":[{"type":"text","text":"14:05"}]},{"role":"user","content":"Summarise."}],"tools":[` + weatherTool + `]}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("It is 18C and 14:05 in Paris.")}, StopReason: "end_turn", Usage: usage}},
		{name: "image", body: `{"model":"claude","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]}]}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("A single pixel.")}, StopReason: "end_turn", Usage: usage}},
		{name: "pdf_document", body: `{"model":"claude","messages":[{"role":"user","content":[{"type":"text","text":"Compare these."},{"type":"document","document":{"id":"doc_0","name":"Q3_report.v2.pdf"}},{"type":"document","document":{"id":"doc_1","name":"Q3 report v2.pdf"}},{"type":"document","document":{"id":"doc_2","name":"notes.md"}}]}]}`,
			docs: []provider.Document{
				{ID: "doc_0", Name: "Q3_report.v2.pdf", MIMEType: "application/pdf", Data: []byte(pdfBytes), Text: "Q3"},
				{ID: "doc_1", Name: "Q3 report v2.pdf", MIMEType: "application/pdf", Data: []byte(pdfBytes), Text: "Q3"},
				{ID: "doc_2", Name: "notes.md", MIMEType: "text/markdown; charset=utf-8", Data: []byte("# Notes\nAll good."), Text: "Notes All good."},
			},
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("They are identical.")}, StopReason: "end_turn", Usage: usage}},
		{name: "stop_sequence", body: `{"model":"claude","messages":[{"role":"user","content":"Count to ten"}],"stop":"five"}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("one two three four ")}, StopReason: "stop_sequence", Usage: usage}},
		{name: "length", body: `{"model":"claude","messages":[{"role":"user","content":"Tell a story"}],"max_tokens":4}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Once upon a time")}, StopReason: "max_tokens", Usage: bedrockfake.Usage{Input: 10, Output: 4}}},
		{name: "json_mode", body: `{"model":"claude","messages":[{"role":"user","content":"Give me a city"}],"response_format":{"type":"json_schema","json_schema":{"name":"city","schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}}}}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{tool("tooluse_j", "city", `{"name":"Paris"}`)}, StopReason: "tool_use", Usage: usage, ChunkSize: 6}},
		{name: "json_mode_with_tools", body: `{"model":"claude","messages":[{"role":"user","content":"Give me a city"}],"tools":[` + weatherTool + `],"response_format":{"type":"json_object"}}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text(`{"name":"Paris"}`)}, StopReason: "end_turn", Usage: usage}},
		{name: "cache_usage", body: `{"model":"claude","messages":[{"role":"user","content":"Hello again"}]}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Hi.")}, StopReason: "end_turn", Usage: bedrockfake.Usage{Input: 5, Output: 2, CacheRead: 1000, CacheWrite: 24, Cache: true}}},
		{name: "split_frames", body: `{"model":"claude","messages":[{"role":"user","content":"Hello"}]}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Frames split across writes.")}, StopReason: "end_turn", Usage: usage, SplitFrames: true, ChunkSize: 3}},
		{name: "upstream_400", body: helloBody, fail: &bedrockfake.Validation},
		{name: "upstream_400_fake_rules", body: `{"model":"claude","messages":[{"role":"assistant","content":"I start."},{"role":"user","content":"Hi"}]}`},
		{name: "upstream_401", body: helloBody, creds: staticCreds("wrong-secret")},
		{name: "upstream_403", body: helloBody, fail: &bedrockfake.AccessDenied},
		{name: "upstream_404", body: helloBody, fail: &bedrockfake.ResourceNotFound},
		{name: "upstream_429", body: helloBody, fail: &bedrockfake.Failure{Code: "ThrottlingException", Status: 429, Message: "Too many requests, please wait before trying again.", RetryAfter: "7"}},
		{name: "upstream_500", body: helloBody, fail: &bedrockfake.InternalServer},
		{name: "upstream_503", body: helloBody, fail: &bedrockfake.ServiceUnavailable},
		{name: "upstream_model_not_ready", body: helloBody, fail: &bedrockfake.ModelNotReady},
		{name: "upstream_model_timeout", body: helloBody, fail: &bedrockfake.ModelTimeout},
		{name: "error_mid_stream", body: helloBody, streamOnly: true,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("This will not finish.")}, StopReason: "end_turn", Usage: usage, Exception: "modelStreamErrorException", ExceptionAfter: 3}},
		{name: "throttled_mid_stream", body: helloBody, streamOnly: true,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("This will not finish.")}, StopReason: "end_turn", Usage: usage, Exception: "throttlingException", ExceptionAfter: 2}},
		{name: "cut_off_stream", body: helloBody, streamOnly: true,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("This stream is cut off.")}, StopReason: "end_turn", Usage: usage, CutAfter: 3}},
		{name: "invoke_plain_text", api: apiInvoke, body: `{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"stop":["END"]}`},
		{name: "invoke_parallel_tool_calls", api: apiInvoke, body: `{"model":"claude","messages":[{"role":"user","content":"Weather and time in Paris?"}],"tools":[` + weatherTool + `,` + timeTool + `],"tool_choice":"required","max_tokens":300}`,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Checking."), tool("toolu_a", "get_weather", `{"city":"Paris"}`), tool("toolu_b", "get_time", `{"tz":"Europe/Paris"}`)}, StopReason: "tool_use", Usage: bedrockfake.Usage{Input: 30, Output: 12, CacheRead: 4, Cache: true}, ChunkSize: 5}},
		{name: "invoke_tool_results", api: apiInvoke, body: `{"model":"claude","messages":[{"role":"user","content":[{"type":"text","text":"Read this"},{"type":"document","document":{"id":"doc_0"}}]},{"role":"assistant","content":"","tool_calls":[{"id":"toolu_a","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"toolu_a","content":"sunny"}]}`,
			docs:  []provider.Document{{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: []byte(pdfBytes)}},
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("Sunny.")}, StopReason: "end_turn", Usage: usage}},
		{name: "invoke_cut_off_stream", api: apiInvoke, body: helloBody, streamOnly: true,
			reply: &bedrockfake.Reply{Blocks: []bedrockfake.Block{text("This stream is cut off.")}, StopReason: "end_turn", Usage: usage, CutAfter: 4}},
	}
}

// chunkRecorder is a provider.ChunkWriter that keeps every chunk.
type chunkRecorder struct{ chunks [][]byte }

func (c *chunkRecorder) WriteChunk(b []byte) error {
	c.chunks = append(c.chunks, bytes.Clone(b))
	return nil
}

func TestGolden(t *testing.T) {
	f := startFake(t)
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			creds := sc.creds
			if creds == nil {
				creds = staticCreds(testSecret)
			}
			b := configured(t, f, sc.api, creds)
			arm := func() {
				f.Reset()
				if sc.reply != nil {
					f.SetReply(*sc.reply)
				}
				if sc.fail != nil {
					f.FailNext(1, *sc.fail)
				}
			}
			dir := filepath.Join("testdata", sc.name)

			arm()
			req := &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(sc.body), Documents: sc.docs}
			resp, err := b.ChatCompletion(context.Background(), req)
			unary := f.LastRequest()
			golden(t, filepath.Join(dir, "upstream.json"), upstreamJSON(t, unary))
			golden(t, filepath.Join(dir, "response.json"), responseJSON(t, resp, err))

			arm()
			streamReq := *req
			streamReq.Body = withStream(t, sc.body)
			rec := &chunkRecorder{}
			serr := b.ChatCompletionStream(context.Background(), &streamReq, rec)
			streamed := f.LastRequest()
			if !bytes.Equal(streamed.Body, unary.Body) {
				t.Errorf("stream upstream body differs from the non-stream one:\n%s\n%s", streamed.Body, unary.Body)
			}
			golden(t, filepath.Join(dir, "stream.jsonl"), streamLines(t, rec, serr))

			acc := &openai.Accumulator{}
			for _, c := range rec.chunks {
				if err := acc.Add(c); err != nil {
					t.Fatalf("accumulate: %v", err)
				}
			}
			switch {
			case sc.streamOnly:
				if serr == nil {
					t.Fatal("stream succeeded, want an error")
				}
			case err != nil:
				if !sameError(err, serr) {
					t.Errorf("stream error %v, non-stream error %v", serr, err)
				}
			default:
				if serr != nil {
					t.Fatalf("stream: %v", serr)
				}
				var want openai.ChatCompletion
				if err := json.Unmarshal(resp.Body, &want); err != nil {
					t.Fatal(err)
				}
				got := acc.Completion()
				if acc.UsageChunks != 1 {
					t.Errorf("usage chunks = %d, want 1", acc.UsageChunks)
				}
				if !reflect.DeepEqual(normalize(t, got), normalize(t, &want)) {
					t.Errorf("folded stream differs from the completion:\nstream: %s\nunary:  %s", mustJSON(t, got), resp.Body)
				}
			}
		})
	}
}

// withStream adds stream and include_usage to a request body.
func withStream(t *testing.T, body string) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	m["stream"] = json.RawMessage("true")
	m["stream_options"] = json.RawMessage(`{"include_usage":true}`)
	return mustJSON(t, m)
}

func sameError(a, b error) bool {
	var x, y *openai.Error
	return errors.As(a, &x) && errors.As(b, &y) && x.Status == y.Status && x.Code == y.Code
}

// normalize decodes a completion into generic JSON for comparison.
func normalize(t *testing.T, c *openai.ChatCompletion) any {
	var v any
	if err := json.Unmarshal(mustJSON(t, c), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func upstreamJSON(t *testing.T, r bedrockfake.Request) []byte {
	var body any
	if len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("upstream body is not JSON: %v", err)
		}
	}
	return indent(t, map[string]any{"path": r.Path, "content_type": r.Header.Get("Content-Type"), "body": body})
}

func responseJSON(t *testing.T, resp *provider.Response, err error) []byte {
	if err != nil {
		return indent(t, errorJSON(t, err))
	}
	var v any
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		t.Fatal(err)
	}
	return indent(t, v)
}

func errorJSON(t *testing.T, err error) map[string]any {
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error is not an *openai.Error: %v", err)
	}
	return map[string]any{"status": oe.Status, "retry_after_seconds": oe.RetryAfter.Seconds(), "body": oe.Body()}
}

func streamLines(t *testing.T, rec *chunkRecorder, err error) []byte {
	var b bytes.Buffer
	for _, c := range rec.chunks {
		b.Write(c)
		b.WriteByte('\n')
	}
	if err != nil {
		b.Write(mustJSON(t, map[string]any{"stream_error": errorJSON(t, err)}))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indent(t *testing.T, v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the golden file (run go test -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
