package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

// fixedNow makes "created" reproducible.
var fixedNow = time.Unix(1730000000, 0)

const testModel = "claude-sonnet-4-5"

// startFake starts a fake Messages API for the test.
func startFake(t *testing.T) *anthropicfake.Server {
	t.Helper()
	f := anthropicfake.New(anthropicfake.Options{})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fakeConfig is a provider config pointing at f.
func fakeConfig(f *anthropicfake.Server, extra string) *provider.Config {
	return &provider.Config{
		Instance:    "anthropic_test",
		JSON:        []byte(`{"base_url":"` + f.URL() + `"` + extra + `}`),
		Credentials: map[string]string{"api_key": f.APIKey()},
	}
}

// newProvider returns a provider configured against f.
func newProvider(t *testing.T, f *anthropicfake.Server) *Anthropic {
	t.Helper()
	a := &Anthropic{now: func() time.Time { return fixedNow }}
	if err := a.Configure(context.Background(), fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	return a
}

// chunks is a ChunkWriter that keeps what it is given.
type chunks [][]byte

func (c *chunks) WriteChunk(b []byte) error {
	*c = append(*c, append([]byte(nil), b...))
	return nil
}

type goldenCase struct {
	name     string
	body     string
	docs     []provider.Document
	scenario anthropicfake.Scenario
	// stream, when set, replaces scenario for the streamed run.
	stream *anthropicfake.Scenario
	fail   *anthropicfake.Failure
}

var pdfBytes = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

const pngDataURL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`

func goldenCases() []goldenCase {
	text := func(s string) []anthropicfake.Block { return []anthropicfake.Block{anthropicfake.Text(s)} }
	return []goldenCase{
		{
			name: "plain_text",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello there!"}]}`,
			scenario: anthropicfake.Scenario{Content: text("Hello! How can I help you today? 😊"),
				Usage: anthropicfake.Usage{InputTokens: 20, OutputTokens: 11, CacheCreationInputTokens: 100, CacheReadInputTokens: 300}},
		},
		{
			name: "system_prompt",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"You are terse."},{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},{"role":"user","content":"Say hi"}],` +
				`"temperature":1.5,"top_p":0.9,"max_tokens":50,"max_completion_tokens":100,"user":"user-42","seed":7,"presence_penalty":0.5}`,
			scenario: anthropicfake.Scenario{Content: text("Salut.")},
		},
		{
			name: "multi_turn",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"My name is Ada."},{"role":"assistant","content":"Nice to meet you, Ada."},` +
				`{"role":"user","content":"What is my name?"},{"role":"user","content":[{"type":"text","text":"Answer in one word."}]}]}`,
			scenario: anthropicfake.Scenario{Content: text("Ada.")},
		},
		{
			name: "tool_call",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Weather in Paris?"}],` + weatherTools + `,"tool_choice":"auto"}`,
			scenario: anthropicfake.Scenario{Content: []anthropicfake.Block{
				anthropicfake.Text("Let me check."),
				anthropicfake.ToolUse("toolu_01A", "get_weather", map[string]any{"city": "Paris"}),
			}, Usage: anthropicfake.Usage{InputTokens: 300, OutputTokens: 40}},
		},
		{
			name: "parallel_tool_calls",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Weather and time in São Paulo?"}],` + weatherTools + `,"tool_choice":"required"}`,
			scenario: anthropicfake.Scenario{Content: []anthropicfake.Block{
				anthropicfake.Text("I'll look up both."),
				anthropicfake.ToolUse("toolu_01A", "get_weather", map[string]any{"city": "São Paulo, BR", "note": `say "hi": {ok}`}),
				anthropicfake.ToolUse("toolu_01B", "get_time", map[string]any{"city": "São Paulo, BR"}),
				anthropicfake.ToolUse("toolu_01C", "get_time", nil),
			}, Usage: anthropicfake.Usage{InputTokens: 310, OutputTokens: 90}},
			stream: &anthropicfake.Scenario{Content: []anthropicfake.Block{
				anthropicfake.Text("I'll look up both."),
				anthropicfake.ToolUse("toolu_01A", "get_weather", map[string]any{"city": "São Paulo, BR", "note": `say "hi": {ok}`}),
				anthropicfake.ToolUse("toolu_01B", "get_time", map[string]any{"city": "São Paulo, BR"}),
				anthropicfake.ToolUse("toolu_01C", "get_time", nil),
			}, Usage: anthropicfake.Usage{InputTokens: 310, OutputTokens: 90}, ChunkSize: 5, SplitEvents: true, Pings: true},
		},
		{
			name: "tool_results",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Weather and time in Paris?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"toolu_01B","type":"function","function":{"name":"get_time","arguments":""}}]},` +
				`{"role":"tool","tool_call_id":"toolu_01A","content":"18C, sunny"},{"role":"tool","tool_call_id":"toolu_01B","content":[{"type":"text","text":"14:05"}]},` +
				`{"role":"user","content":"Summarise."}],` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false}`,
			scenario: anthropicfake.Scenario{Content: text("It is 18C and sunny in Paris at 14:05.")},
		},
		{
			name: "image",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"Compare these images."},` +
				`{"type":"image_url","image_url":{"url":"` + pngDataURL + `","detail":"high"}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}`,
			scenario: anthropicfake.Scenario{Content: text("Both show a single pixel and a cat.")},
		},
		{
			name: "pdf_document",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"Summarise the documents."},` +
				`{"type":"document","document":{"id":"doc_0","name":"report.pdf"}},{"type":"document","document":{"id":"doc_1","name":"notes.md"}},` +
				`{"type":"file","file":{"filename":"inline.pdf","file_data":"data:application/pdf;base64,` + base64.StdEncoding.EncodeToString(pdfBytes) + `"}}]}]}`,
			docs: []provider.Document{
				{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: pdfBytes, Text: "Quarterly report"},
				{ID: "doc_1", Name: "notes.md", MIMEType: "text/markdown; charset=utf-8", Data: []byte("# Notes\nQubits are fun.\n"), Text: "Notes\nQubits are fun."},
			},
			scenario: anthropicfake.Scenario{Content: text("The report is quarterly; the notes are about qubits.")},
		},
		{
			name:     "stop_sequence",
			body:     `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Count to ten."}],"stop":"five"}`,
			scenario: anthropicfake.Scenario{Content: text("one, two, three, four, "), StopReason: "stop_sequence", StopSequence: "five"},
		},
		{
			name:     "length",
			body:     `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Write an essay."}],"max_tokens":5}`,
			scenario: anthropicfake.Scenario{Content: text("Essays are a form"), StopReason: "max_tokens", Usage: anthropicfake.Usage{InputTokens: 11, OutputTokens: 5}},
		},
		{
			name: "json_schema",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Capital of France, as JSON."}],` +
				`"response_format":{"type":"json_schema","json_schema":{"name":"capital","description":"A capital city.","schema":{"type":"object","properties":{"city":{"type":"string"},"confidence":{"type":"number"}},"required":["city"]},"strict":true}}}`,
			scenario: anthropicfake.Scenario{Content: []anthropicfake.Block{
				anthropicfake.ToolUse("toolu_json", jsonToolName, map[string]any{"city": "Paris", "confidence": 0.98}),
			}},
		},
		{
			name: "json_object",
			body: `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Give me a JSON greeting."}],"response_format":{"type":"json_object"}}`,
			scenario: anthropicfake.Scenario{Content: []anthropicfake.Block{
				anthropicfake.ToolUse("toolu_json", jsonToolName, map[string]any{"greeting": "hello, world"}),
			}},
		},
		{name: "error_400", body: plainBody, fail: &anthropicfake.Failure{Status: 400, Message: "messages: text content blocks must be non-empty"}},
		{name: "error_401", body: plainBody, fail: &anthropicfake.Failure{Status: 401}},
		{name: "error_429", body: plainBody, fail: &anthropicfake.Failure{Status: 429, RetryAfter: "7"}},
		{name: "error_500", body: plainBody, fail: &anthropicfake.Failure{Status: 500}},
		{name: "error_529", body: plainBody, fail: &anthropicfake.Failure{Status: 529, RetryAfter: "2"}},
		{
			name:     "error_mid_stream",
			body:     plainBody,
			scenario: anthropicfake.Scenario{Content: text("This answer will not finish.")},
			stream:   &anthropicfake.Scenario{Content: text("This answer will not finish."), ErrorAfter: 4},
		},
		{
			name:     "cut_off_stream",
			body:     plainBody,
			scenario: anthropicfake.Scenario{Content: text("This answer is cut off.")},
			stream:   &anthropicfake.Scenario{Content: text("This answer is cut off."), CutAfter: 3},
		},
	}
}

const plainBody = `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}]}`

func TestGolden(t *testing.T) {
	f := startFake(t)
	a := newProvider(t, f)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.name)
			ctx := context.Background()
			req := &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(tc.body), Documents: tc.docs}

			// Non-streamed.
			f.Reset()
			f.SetScenario(tc.scenario)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			resp, unaryErr := a.ChatCompletion(ctx, req)
			upstream := f.LastRequest()
			golden.Compare(t, dir, "upstream.json", golden.JSON(t, upstream.Body))
			checkUpstreamHeaders(t, upstream.Header, f.APIKey())
			var unary openai.ChatCompletion
			if unaryErr != nil {
				golden.Compare(t, dir, "error.json", golden.Error(t, unaryErr))
			} else {
				golden.Compare(t, dir, "response.json", golden.JSON(t, resp.Body))
				if err := json.Unmarshal(resp.Body, &unary); err != nil {
					t.Fatal(err)
				}
			}

			// Streamed, with usage.
			f.Reset()
			sc := tc.scenario
			if tc.stream != nil {
				sc = *tc.stream
			}
			f.SetScenario(sc)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			sreq := *req
			sreq.Body = golden.Streamed(t, req.Body)
			var got chunks
			streamErr := a.ChatCompletionStream(ctx, &sreq, &got)
			var lines bytes.Buffer
			for _, c := range got {
				lines.Write(c)
				lines.WriteByte('\n')
			}
			if streamErr != nil {
				lines.WriteString("error: ")
				lines.Write(bytes.TrimSpace(golden.Error(t, streamErr)))
				lines.WriteByte('\n')
			}
			golden.Compare(t, dir, "stream.jsonl", lines.Bytes())
			sameUpstream(t, upstream.Body, f.LastRequest().Body)

			switch {
			case unaryErr != nil:
				// The stream fails before any chunk, the same way.
				if streamErr == nil || len(got) != 0 || golden.Status(streamErr) != golden.Status(unaryErr) {
					t.Errorf("stream: %d chunks, error %v; want no chunks and %v", len(got), streamErr, unaryErr)
				}
			case tc.stream != nil && (tc.stream.ErrorAfter > 0 || tc.stream.CutAfter > 0):
				if streamErr == nil {
					t.Errorf("stream: want an error, got none")
				}
			default:
				if streamErr != nil {
					t.Fatalf("stream: %v", streamErr)
				}
				checkFold(t, got, &unary)
			}
		})
	}
}

// checkFold folds the chunks and compares them with the non-streamed
// completion.
func checkFold(t *testing.T, got chunks, unary *openai.ChatCompletion) {
	t.Helper()
	var acc openai.Accumulator
	for _, c := range got {
		if err := acc.Add(c); err != nil {
			t.Fatalf("stream breaks the chunk rules: %v", err)
		}
	}
	if acc.UsageChunks != 1 {
		t.Errorf("usage chunks = %d, want 1", acc.UsageChunks)
	}
	var last openai.ChatChunk
	if err := json.Unmarshal(got[len(got)-1], &last); err != nil || len(last.Choices) != 0 || last.Usage == nil {
		t.Errorf("last chunk is not the usage chunk: %s", got[len(got)-1])
	}
	var fin openai.ChatChunk
	if err := json.Unmarshal(got[len(got)-2], &fin); err != nil || len(fin.Choices) != 1 || fin.Choices[0].FinishReason == nil ||
		fin.Choices[0].Delta.Content != nil || fin.Choices[0].Delta.ToolCalls != nil || fin.Choices[0].Delta.Role != "" {
		t.Errorf("second to last chunk is not a finishing chunk with an empty delta: %s", got[len(got)-2])
	}
	folded, _ := json.Marshal(acc.Completion())
	want, _ := json.Marshal(unary)
	if !bytes.Equal(folded, want) {
		t.Errorf("folded stream differs from the non-streamed completion:\nstream: %s\nunary:  %s", folded, want)
	}
}

// sameUpstream checks that the streamed upstream request is the
// non-streamed one plus "stream": true.
func sameUpstream(t *testing.T, unary, stream []byte) {
	t.Helper()
	var u, s map[string]any
	if err := json.Unmarshal(unary, &u); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stream, &s); err != nil {
		t.Fatal(err)
	}
	if s["stream"] != true {
		t.Errorf("streamed upstream request lacks stream:true")
	}
	delete(s, "stream")
	ub, _ := json.Marshal(u)
	sb, _ := json.Marshal(s)
	if !bytes.Equal(ub, sb) {
		t.Errorf("streamed upstream request differs:\n%s\n%s", ub, sb)
	}
}

func checkUpstreamHeaders(t *testing.T, h map[string][]string, key string) {
	t.Helper()
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if get("X-Api-Key") != key || get("Anthropic-Version") != defaultVersion || get("Content-Type") != "application/json" {
		t.Errorf("upstream headers: x-api-key set %v, anthropic-version %q, content-type %q",
			get("X-Api-Key") == key, get("Anthropic-Version"), get("Content-Type"))
	}
	if get("Authorization") != "" {
		t.Errorf("upstream request carries an Authorization header")
	}
}

func TestGoldenFilesHaveNoStrayCases(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range goldenCases() {
		names[tc.name] = true
	}
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !names[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("testdata/%s belongs to no golden case", e.Name())
		}
	}
}
