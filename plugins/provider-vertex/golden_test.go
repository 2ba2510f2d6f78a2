package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

// fixedNow makes "created" reproducible.
var fixedNow = time.Unix(1730000000, 0)

const testModel = "gemini-2.5-flash"

// startFake starts a fake Vertex AI for the test.
func startFake(t *testing.T, opts vertexfake.Options) *vertexfake.Server {
	t.Helper()
	f := vertexfake.New(opts)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fakeConfig is a provider config pointing at f with its service account.
func fakeConfig(f *vertexfake.Server, extra string) *provider.Config {
	return &provider.Config{
		Instance: "vertex_test",
		JSON: []byte(`{"endpoint":"` + f.URL() + `","project":"` + f.Project() + `","location":"` + f.Location() + `"` +
			extra + `}`),
		Credentials: map[string]string{"service_account_json": string(f.ServiceAccountJSON())},
	}
}

// counterIDs issues call_0001, call_0002 … and restarts with reset.
type counterIDs struct{ n atomic.Int64 }

func (c *counterIDs) next() string { return fmt.Sprintf("call_%04d", c.n.Add(1)) }
func (c *counterIDs) reset()       { c.n.Store(0) }

// newProvider returns a provider configured against f with reproducible
// ids.
func newProvider(t *testing.T, f *vertexfake.Server) (*Vertex, *counterIDs) {
	t.Helper()
	ids := &counterIDs{}
	v := &Vertex{now: func() time.Time { return fixedNow }, newID: ids.next}
	if err := v.Configure(context.Background(), fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	return v, ids
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
	scenario vertexfake.Scenario
	// stream, when set, replaces scenario for the streamed run.
	stream *vertexfake.Scenario
	fail   *vertexfake.Failure
}

var pdfBytes = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

const pngDataURL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

// weatherTools have the JSON Schema keywords Gemini refuses ($schema,
// additionalProperties, strict) and a nullable type list.
const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"city":{"type":"string"},"unit":{"type":["string","null"],"enum":["C","F"]}},"required":["city"],"additionalProperties":false},"strict":true}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`

func goldenCases() []goldenCase {
	text := func(s string) []vertexfake.Part { return []vertexfake.Part{vertexfake.Text(s)} }
	return []goldenCase{
		{
			name: "plain_text",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Hello there!"}]}`,
			scenario: vertexfake.Scenario{Parts: text("Hello! How can I help you today? 😊"),
				Usage: vertexfake.Usage{Prompt: 20, Candidates: 11, Cached: 8}},
		},
		{
			name: "system_prompt",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"system","content":"You are terse."},{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},{"role":"user","content":"Say hi"}],` +
				`"temperature":1.5,"top_p":0.9,"max_tokens":50,"max_completion_tokens":100,"user":"user-42","seed":7,"presence_penalty":0.5,"frequency_penalty":0.25}`,
			scenario: vertexfake.Scenario{Parts: text("Salut.")},
		},
		{
			name: "multi_turn",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"My name is Ada."},{"role":"assistant","content":"Nice to meet you, Ada."},` +
				`{"role":"user","content":"What is my name?"},{"role":"user","content":[{"type":"text","text":"Answer in one word."}]}]}`,
			scenario: vertexfake.Scenario{Parts: text("Ada.")},
		},
		{
			name: "thinking_usage",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Why is the sky blue?"}]}`,
			scenario: vertexfake.Scenario{Thought: "Rayleigh scattering favours short wavelengths.", Parts: text("Rayleigh scattering."),
				Usage: vertexfake.Usage{Prompt: 7, Candidates: 4, Thoughts: 120, Cached: 3}},
		},
		{
			name: "tool_call",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Weather in Paris?"}],` + weatherTools + `,"tool_choice":"auto"}`,
			scenario: vertexfake.Scenario{Parts: []vertexfake.Part{
				vertexfake.Text("Let me check."),
				vertexfake.FunctionCall("get_weather", map[string]any{"city": "Paris"}),
			}, Usage: vertexfake.Usage{Prompt: 300, Candidates: 40}, NoSignatures: true},
		},
		{
			name: "parallel_tool_calls",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Weather and time in São Paulo?"}],` + weatherTools + `,"tool_choice":"required"}`,
			scenario: vertexfake.Scenario{Parts: []vertexfake.Part{
				vertexfake.FunctionCall("get_weather", map[string]any{"city": "São Paulo, BR", "note": `say "hi": {ok}`}),
				vertexfake.FunctionCall("get_time", map[string]any{"city": "São Paulo, BR"}),
				vertexfake.FunctionCall("get_time", nil),
			}, Usage: vertexfake.Usage{Prompt: 310, Candidates: 90}, NoSignatures: true},
			stream: &vertexfake.Scenario{Parts: []vertexfake.Part{
				vertexfake.FunctionCall("get_weather", map[string]any{"city": "São Paulo, BR", "note": `say "hi": {ok}`}),
				vertexfake.FunctionCall("get_time", map[string]any{"city": "São Paulo, BR"}),
				vertexfake.FunctionCall("get_time", nil),
			}, Usage: vertexfake.Usage{Prompt: 310, Candidates: 90}, NoSignatures: true, SplitWrites: true},
		},
		{
			name: "tool_results",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Weather and time in Paris?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},` +
				`{"role":"tool","tool_call_id":"call_a","content":"18C, sunny"},{"role":"tool","tool_call_id":"call_b","content":[{"type":"text","text":"{\"time\": \"14:05\"}"}]},` +
				`{"role":"user","content":"Summarise."}],` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`,
			scenario: vertexfake.Scenario{Parts: text("It is 18C and sunny in Paris at 14:05.")},
		},
		{
			name: "image",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":[{"type":"text","text":"Compare these images."},` +
				`{"type":"image_url","image_url":{"url":"` + pngDataURL + `","detail":"high"}},{"type":"image_url","image_url":{"url":"gs://bucket/cat.jpg"}},{"type":"image_url","image_url":{"url":"https://example.com/dog.webp?size=large"}}]}]}`,
			scenario: vertexfake.Scenario{Parts: text("One pixel, a cat and a dog.")},
		},
		{
			name: "pdf_document",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":[{"type":"text","text":"Summarise the documents."},` +
				`{"type":"document","document":{"id":"doc_0","name":"report.pdf"}},{"type":"document","document":{"id":"doc_1","name":"notes.md"}},` +
				`{"type":"file","file":{"filename":"inline.pdf","file_data":"data:application/pdf;base64,` + base64.StdEncoding.EncodeToString(pdfBytes) + `"}}]}]}`,
			docs: []provider.Document{
				{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: pdfBytes, Text: "Quarterly report"},
				{ID: "doc_1", Name: "notes.md", MIMEType: "text/markdown; charset=utf-8", Data: []byte("# Notes\nQubits are fun.\n"), Text: "Notes\nQubits are fun."},
			},
			scenario: vertexfake.Scenario{Parts: text("The report is quarterly; the notes are about qubits.")},
		},
		{
			name:     "stop_sequence",
			body:     `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Count to ten."}],"stop":["five","END"]}`,
			scenario: vertexfake.Scenario{Parts: text("one, two, three, four, ")},
		},
		{
			name:     "length",
			body:     `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Write an essay."}],"max_tokens":5}`,
			scenario: vertexfake.Scenario{Parts: text("Essays are a form"), FinishReason: "MAX_TOKENS", Usage: vertexfake.Usage{Prompt: 11, Candidates: 5}},
		},
		{
			name: "json_schema",
			body: `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Capital of France, as JSON."}],` +
				`"response_format":{"type":"json_schema","json_schema":{"name":"capital","schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"city":{"$ref":"#/$defs/city"},"confidence":{"type":"number"}},"required":["city"],"additionalProperties":false,"$defs":{"city":{"type":"string","description":"A city name."}}},"strict":true}}}`,
			scenario: vertexfake.Scenario{Parts: text(`{"city": "Paris", "confidence": 0.98}`)},
		},
		{
			name:     "json_object",
			body:     `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Give me a JSON greeting."}],"response_format":{"type":"json_object"}}`,
			scenario: vertexfake.Scenario{Parts: text(`{"greeting": "hello, world"}`)},
		},
		{
			name:     "n_candidates",
			body:     `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Name a colour."}],"n":2}`,
			scenario: vertexfake.Scenario{Parts: text("Blue."), Usage: vertexfake.Usage{Prompt: 5, Candidates: 4}},
		},
		{
			name:     "safety_blocked",
			body:     `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Something the filter blocks."}]}`,
			scenario: vertexfake.Scenario{BlockReason: "PROHIBITED_CONTENT", Usage: vertexfake.Usage{Prompt: 6}},
		},
		{
			name:     "finish_safety",
			body:     `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Tell me a story."}]}`,
			scenario: vertexfake.Scenario{Parts: text("Once upon a"), FinishReason: "SAFETY"},
		},
		{name: "error_400", body: plainBody, fail: &vertexfake.Failure{Status: 400, Message: "Request contains an invalid argument."}},
		{name: "error_401", body: plainBody, fail: &vertexfake.Failure{Status: 401}},
		{name: "error_403", body: plainBody, fail: &vertexfake.Failure{Status: 403}},
		{name: "error_404", body: plainBody, fail: &vertexfake.Failure{Status: 404, Message: "Publisher Model `gemini-9` was not found."}},
		{name: "error_429", body: plainBody, fail: &vertexfake.Failure{Status: 429, RetryDelay: "7s"}},
		{name: "error_429_header", body: plainBody, fail: &vertexfake.Failure{Status: 429, RetryAfter: "3"}},
		{name: "error_500", body: plainBody, fail: &vertexfake.Failure{Status: 500}},
		{name: "error_503", body: plainBody, fail: &vertexfake.Failure{Status: 503, RetryDelay: "1.5s"}},
		{
			name:     "error_mid_stream",
			body:     plainBody,
			scenario: vertexfake.Scenario{Parts: text("This answer will not finish.")},
			stream:   &vertexfake.Scenario{Parts: text("This answer will not finish."), ErrorAfter: 2},
		},
		{
			name:     "error_mid_stream_bare",
			body:     plainBody,
			scenario: vertexfake.Scenario{Parts: text("This answer will not finish.")},
			stream:   &vertexfake.Scenario{Parts: text("This answer will not finish."), ErrorAfter: 2, BareError: true, ErrorStatus: 429, ErrorMessage: "Quota exceeded."},
		},
		{
			name:     "cut_off_stream",
			body:     plainBody,
			scenario: vertexfake.Scenario{Parts: text("This answer is cut off.")},
			stream:   &vertexfake.Scenario{Parts: text("This answer is cut off."), CutAfter: 2},
		},
	}
}

const plainBody = `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Hello"}]}`

func TestGolden(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v, ids := newProvider(t, f)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.name)
			ctx := context.Background()
			req := &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(tc.body), Documents: tc.docs}

			// Non-streamed.
			f.Reset()
			ids.reset()
			f.SetScenario(tc.scenario)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			resp, unaryErr := v.ChatCompletion(ctx, req)
			upstream := f.LastRequest()
			golden.Compare(t, dir, "upstream.json", golden.JSON(t, upstream.Body))
			checkUpstream(t, upstream, ":generateContent", "")
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
			ids.reset()
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
			streamErr := v.ChatCompletionStream(ctx, &sreq, &got)
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
			supstream := f.LastRequest()
			checkUpstream(t, supstream, ":streamGenerateContent", "alt=sse")
			if !bytes.Equal(upstream.Body, supstream.Body) {
				t.Errorf("streamed upstream body differs from the non-streamed one:\n%s\n%s", upstream.Body, supstream.Body)
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

// checkUpstream checks the method, query and credentials of an upstream
// request.
func checkUpstream(t *testing.T, r vertexfake.Request, method, query string) {
	t.Helper()
	wantPath := "/v1/projects/" + vertexfake.DefaultProject + "/locations/" + vertexfake.DefaultLocation +
		"/publishers/google/models/" + testModel + method
	if r.Path != wantPath || r.RawQuery != query {
		t.Errorf("upstream %s?%s, want %s?%s", r.Path, r.RawQuery, wantPath, query)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ya29.fake-") || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("upstream headers: authorization %q, content-type %q", r.Header.Get("Authorization"), r.Header.Get("Content-Type"))
	}
	if r.Header.Get("x-goog-api-key") != "" {
		t.Errorf("upstream request carries an API key")
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
		if e.IsDir() && !names[e.Name()] && !strings.HasPrefix(e.Name(), ".") && e.Name() != "fuzz" {
			t.Errorf("testdata/%s belongs to no golden case", e.Name())
		}
	}
}
