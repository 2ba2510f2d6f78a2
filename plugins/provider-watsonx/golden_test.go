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

	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

// fixedNow makes made-up ids and times reproducible.
var fixedNow = time.Unix(1730000000, 0)

const testModel = "ibm/granite-3-3-8b-instruct"

// startFake starts a fake watsonx.ai and IAM for the test.
func startFake(t *testing.T, opts watsonxfake.Options) *watsonxfake.Server {
	t.Helper()
	f := watsonxfake.New(opts)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fakeConfig is a provider config pointing at f.
func fakeConfig(f *watsonxfake.Server, extra string) *provider.Config {
	return &provider.Config{
		Instance: "watsonx_test",
		JSON: []byte(`{"url":"` + f.URL() + `","iam_url":"` + f.URL() + `","project_id":"` + f.ProjectID() + `"` +
			`,"deployments":{"my-granite":"granite-prod"}` + extra + `}`),
		Credentials: map[string]string{"api_key": f.APIKey()},
	}
}

// newProvider returns a provider configured against f.
func newProvider(t *testing.T, f *watsonxfake.Server) *Watsonx {
	t.Helper()
	w := &Watsonx{now: func() time.Time { return fixedNow }}
	if err := w.Configure(context.Background(), fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	return w
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
	scenario watsonxfake.Scenario
	// stream, when set, replaces scenario for the streamed run.
	stream *watsonxfake.Scenario
	fail   *watsonxfake.Failure
	// path is the upstream chat path of the non-streamed call.
	path string
}

var pdfBytes = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

var pngBytes, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

const pngDataURL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false},"strict":true}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`

const plainBody = `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Hello"}]}`

func goldenCases() []goldenCase {
	calls := []watsonxfake.ToolCall{
		{ID: "chatcmpl-tool-a1", Name: "get_weather", Arguments: `{"city": "São Paulo, BR", "note": "say \"hi\": {ok}"}`},
		{ID: "chatcmpl-tool-b2", Name: "get_time", Arguments: `{"city": "São Paulo, BR"}`},
	}
	return []goldenCase{
		{
			name:     "plain",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Hello there!"}]}`,
			scenario: watsonxfake.Scenario{Text: "Hello! How can I help you today? 😊", Usage: watsonxfake.Usage{PromptTokens: 20, CompletionTokens: 11}},
		},
		{
			name:     "usage_details",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Think, then say hello."}]}`,
			scenario: watsonxfake.Scenario{Text: "Hello.", Usage: watsonxfake.Usage{PromptTokens: 600, CompletionTokens: 90, CachedTokens: 512, ReasoningTokens: 80}},
		},
		{
			name: "system",
			body: `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"system","content":"You are terse."},{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},{"role":"user","content":"Say hi"}],` +
				`"temperature":0.5,"top_p":0.9,"max_completion_tokens":100,"user":"user-42","seed":7,"presence_penalty":0.5,"frequency_penalty":0.1,"n":1,"parallel_tool_calls":true,"store":false}`,
			scenario: watsonxfake.Scenario{Text: "Salut."},
		},
		{
			name: "multi_turn",
			body: `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"My name is Ada."},{"role":"assistant","content":"Nice to meet you, Ada."},` +
				`{"role":"user","content":"What is my name?"},{"role":"user","content":[{"type":"text","text":"Answer in one word."}]}]}`,
			scenario: watsonxfake.Scenario{Text: "Ada."},
		},
		{
			name:     "tool_call",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Weather in Paris?"}],` + weatherTools + `,"tool_choice":"auto"}`,
			scenario: watsonxfake.Scenario{ToolCalls: []watsonxfake.ToolCall{{ID: "chatcmpl-tool-1", Name: "get_weather", Arguments: `{"city": "Paris"}`}}, Usage: watsonxfake.Usage{PromptTokens: 300, CompletionTokens: 40}},
		},
		{
			name:     "parallel_tool_calls",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Weather and time in São Paulo?"}],` + weatherTools + `,"tool_choice":"required"}`,
			scenario: watsonxfake.Scenario{Text: "I'll look up both.", ToolCalls: calls, Usage: watsonxfake.Usage{PromptTokens: 310, CompletionTokens: 90}},
			stream:   &watsonxfake.Scenario{Text: "I'll look up both.", ToolCalls: calls, Usage: watsonxfake.Usage{PromptTokens: 310, CompletionTokens: 90}, ChunkSize: 5, SplitWrites: true},
		},
		{
			// gpt-oss on watsonx.ai says stop on a turn with tool calls,
			// sends calls without ids and fragments without an index, and
			// its usage comes in a chunk of its own before a [DONE].
			name: "tool_calls_finish_stop",
			body: `{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"Weather and time in Paris?"}],` + weatherTools + `}`,
			scenario: watsonxfake.Scenario{FinishReason: "stop", ToolCalls: []watsonxfake.ToolCall{
				{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{"city":"Paris"}`}}},
			stream: &watsonxfake.Scenario{FinishReason: "stop", ToolCalls: []watsonxfake.ToolCall{
				{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{"city":"Paris"}`}},
				OmitIndex: true, UsageChunk: true, Done: true, ChunkSize: 6},
		},
		{
			name: "tool_results",
			body: `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Weather and time in Paris?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"chatcmpl-tool-2","type":"function","function":{"name":"get_time","arguments":""}}]},` +
				`{"role":"tool","tool_call_id":"chatcmpl-tool-1","content":"18C, sunny"},{"role":"tool","tool_call_id":"chatcmpl-tool-2","content":[{"type":"text","text":"14:05"}]},` +
				`{"role":"user","content":"Summarise."}],` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`,
			scenario: watsonxfake.Scenario{Text: "It is 18C and sunny in Paris at 14:05."},
		},
		{
			name: "image",
			body: `{"model":"meta-llama/llama-3-2-11b-vision-instruct","messages":[{"role":"user","content":[{"type":"text","text":"Compare these images."},` +
				`{"type":"image_url","image_url":{"url":"` + pngDataURL + `","detail":"high"}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},` +
				`{"type":"document","document":{"id":"doc_0","name":"pixel.png"}}]}]}`,
			docs:     []provider.Document{{ID: "doc_0", Name: "pixel.png", MIMEType: "image/png", Data: pngBytes}},
			scenario: watsonxfake.Scenario{Text: "All show a single pixel, one a cat."},
		},
		{
			name: "pdf_document",
			body: `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"system","content":[{"type":"text","text":"Use the notes."},{"type":"document","document":{"id":"doc_1","name":"notes.md"}}]},` +
				`{"role":"user","content":[{"type":"text","text":"Summarise the report."},{"type":"document","document":{"id":"doc_0","name":"report.pdf"}}]}]}`,
			docs: []provider.Document{
				{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: pdfBytes, Text: "Quarterly report: revenue up 4%."},
				{ID: "doc_1", Name: "notes.md", MIMEType: "text/markdown; charset=utf-8", Data: []byte("# Notes\nQubits are fun.\n")},
			},
			scenario: watsonxfake.Scenario{Text: "Revenue rose 4% this quarter."},
		},
		{
			name:     "stop_sequence",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Count to ten."}],"stop":["five","END"]}`,
			scenario: watsonxfake.Scenario{Text: "one, two, three, four, "},
		},
		{
			name:     "length",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Write an essay."}],"max_tokens":5}`,
			scenario: watsonxfake.Scenario{Text: "Essays are a form", FinishReason: "length", Usage: watsonxfake.Usage{PromptTokens: 11, CompletionTokens: 5}},
		},
		{
			name:     "json_mode",
			body:     `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Give me a JSON greeting."}],"response_format":{"type":"json_object"}}`,
			scenario: watsonxfake.Scenario{Text: `{"greeting": "hello, world"}`},
		},
		{
			name: "json_schema",
			body: `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":"Capital of France, as JSON."}],` +
				`"response_format":{"type":"json_schema","json_schema":{"name":"capital","schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}}}`,
			scenario: watsonxfake.Scenario{Text: `{"city":"Paris"}`},
		},
		{
			name:     "deployment",
			body:     `{"model":"my-granite","messages":[{"role":"user","content":"Hello"}],"max_tokens":20}`,
			scenario: watsonxfake.Scenario{Text: "Hello from a deployment."},
			path:     "/ml/v1/deployments/granite-prod/text/chat",
		},
		{name: "error_400", body: plainBody, fail: &watsonxfake.Failure{Status: 400, Code: "json_validation_error", Message: "Json document validation error: 'messages' is invalid"}},
		{name: "error_401", body: plainBody, fail: &watsonxfake.Failure{Status: 401}},
		{name: "error_403", body: plainBody, fail: &watsonxfake.Failure{Status: 403}},
		{name: "error_404", body: plainBody, fail: &watsonxfake.Failure{Status: 404, Message: "Model 'ibm/granite-3-3-8b-instruct' is not supported"}},
		{name: "error_429", body: plainBody, fail: &watsonxfake.Failure{Status: 429, RetryAfter: "7"}},
		{name: "error_500", body: plainBody, fail: &watsonxfake.Failure{Status: 500}},
		{name: "error_503", body: plainBody, fail: &watsonxfake.Failure{Status: 503, RetryAfter: "2"}},
		{
			name:     "error_mid_stream",
			body:     plainBody,
			scenario: watsonxfake.Scenario{Text: "This answer will not finish."},
			stream:   &watsonxfake.Scenario{Text: "This answer will not finish.", ErrorAfter: 3},
		},
		{
			name:     "cut_off_stream",
			body:     plainBody,
			scenario: watsonxfake.Scenario{Text: "This answer is cut off."},
			stream:   &watsonxfake.Scenario{Text: "This answer is cut off.", CutAfter: 3},
		},
	}
}

func TestGolden(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.name)
			ctx := context.Background()
			var model struct {
				Model string `json:"model"`
			}
			_ = json.Unmarshal([]byte(tc.body), &model)
			req := &provider.Request{Meta: provider.Meta{Model: model.Model}, Body: []byte(tc.body), Documents: tc.docs}

			// Non-streamed.
			f.Reset()
			f.SetScenario(tc.scenario)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			resp, unaryErr := w.ChatCompletion(ctx, req)
			upstream := f.LastRequest()
			golden.Compare(t, dir, "upstream.json", golden.JSON(t, upstream.Body))
			checkUpstream(t, upstream, tc.path, false)
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
			streamErr := w.ChatCompletionStream(ctx, &sreq, &got)
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
			streamed := f.LastRequest()
			checkUpstream(t, streamed, tc.path, true)
			if !bytes.Equal(upstream.Body, streamed.Body) {
				t.Errorf("the streamed upstream body differs from the non-streamed one:\n%s\n%s", upstream.Body, streamed.Body)
			}

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

// checkUpstream checks the path, query and headers of an upstream call.
func checkUpstream(t *testing.T, r watsonxfake.Request, path string, stream bool) {
	t.Helper()
	if path == "" {
		path = "/ml/v1/text/chat"
	}
	if stream {
		path += "_stream"
	}
	if r.Path != path || r.RawQuery != "version="+defaultVersion {
		t.Errorf("upstream call %s?%s, want %s?version=%s", r.Path, r.RawQuery, path, defaultVersion)
	}
	if got := r.Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer eyJ.fake-iam.") {
		t.Errorf("upstream Authorization %q is not an IAM bearer token", got)
	}
	if r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("upstream content type %q", r.Header.Get("Content-Type"))
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

func TestGoldenFilesHaveNoStrayCases(t *testing.T) {
	names := map[string]bool{"fuzz": true}
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
