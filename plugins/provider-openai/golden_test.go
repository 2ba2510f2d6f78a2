package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCase is one request sent through the plugin (over real gRPC) to
// the fake.
type goldenCase struct {
	name     string
	body     string
	model    string // Meta.Model; the body's model when empty
	stream   bool
	docs     []provider.Document
	scenario openaifake.Scenario
	fail     *openaifake.Failure
}

// goldenResult is what a golden file holds: the request as it reached the
// upstream and what the host got back.
type goldenResult struct {
	UpstreamPath    string            `json:"upstream_path,omitempty"`
	UpstreamRequest json.RawMessage   `json:"upstream_request,omitempty"`
	Response        json.RawMessage   `json:"response,omitempty"`
	Header          map[string]string `json:"header,omitempty"`
	Chunks          int               `json:"chunks,omitempty"`
	UsageChunks     int               `json:"usage_chunks,omitempty"`
	Error           *goldenError      `json:"error,omitempty"`
}

type goldenError struct {
	Status       int    `json:"status"`
	Type         string `json:"type"`
	Code         string `json:"code,omitempty"`
	Param        string `json:"param,omitempty"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

// pdf is a tiny stand-in PDF document.
var pdf = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

const weatherTool = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`

func goldenCases() []goldenCase {
	return []goldenCase{
		{name: "plain", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello there"}]}`},
		{name: "plain_stream", stream: true, body: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hello there"}]}`},
		{name: "usage_details", body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Think, then answer"}]}`,
			scenario: openaifake.Scenario{CachedTokens: 1024, ReasoningTokens: 192}},
		{name: "usage_details_stream", stream: true, body: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Think, then answer"}]}`,
			scenario: openaifake.Scenario{CachedTokens: 1024, ReasoningTokens: 192}},
		{name: "stream_include_usage", stream: true, body: `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count my tokens"}]}`},
		{name: "system", body: `{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Explain qubits"}]}`},
		{name: "multi_turn", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"My name is Ada."},{"role":"assistant","content":"Hello Ada."},{"role":"user","content":"What is my name?"}]}`},
		{name: "tool_call", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris?"}],` + weatherTool + `,"tool_choice":"auto"}`,
			scenario: openaifake.Scenario{ToolCalls: []openaifake.ToolCall{{ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`}}}},
		{name: "parallel_tool_calls_stream", stream: true, body: `{"model":"gpt-4o","stream":true,"parallel_tool_calls":true,"messages":[{"role":"user","content":"Weather in Paris and Oslo?"}],` + weatherTool + `}`,
			scenario: openaifake.Scenario{ToolCalls: []openaifake.ToolCall{
				{ID: "call_1", Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{ID: "call_2", Name: "get_weather", Arguments: `{"city":"Oslo, Norway"}`},
			}}},
		{name: "tool_results", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris?"},` +
			`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},` +
			`{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"}],` + weatherTool + `}`},
		{name: "image", body: `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}`},
		{name: "pdf_document", body: `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"Summarise the report."},{"type":"document","document":{"id":"doc_0","name":"report.pdf"}}]}]}`,
			docs: []provider.Document{{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: pdf, Text: "Report"}}},
		{name: "text_document", body: `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"document","document":{"id":"doc_0","name":"notes.md"}},{"type":"text","text":"What do the notes say?"}]}]}`,
			docs: []provider.Document{{ID: "doc_0", Name: "notes.md", MIMEType: "text/markdown; charset=utf-8", Data: []byte("# Notes\nQubits are fun.")}}},
		{name: "stop_sequence", body: `{"model":"gpt-4o","stop":["three"],"messages":[{"role":"user","content":"one two three four"}]}`},
		{name: "length", body: `{"model":"gpt-4o","max_completion_tokens":3,"messages":[{"role":"user","content":"one two three four"}]}`},
		{name: "json_mode", body: `{"model":"gpt-4o","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Reply in JSON"}]}`},
		{name: "model_rewrite", model: "gpt-4.1", body: `{"model":"my-alias","temperature":0.2,"unknown_field":{"kept":true},"messages":[{"role":"user","content":"Which model?"}]}`},
		{name: "upstream_400", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			fail: &openaifake.Failure{Status: 400, Param: "temperature", Code: "invalid_value", Message: "Invalid 'temperature': decimal above maximum value."}},
		{name: "upstream_401", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, fail: &openaifake.Failure{Status: 401}},
		{name: "upstream_429", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, fail: &openaifake.Failure{Status: 429, RetryAfter: "7"}},
		{name: "upstream_429_ms", stream: true, body: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			fail: &openaifake.Failure{Status: 429, RetryAfter: "2", RetryAfterMs: "1500"}},
		{name: "upstream_500", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, fail: &openaifake.Failure{Status: 500}},
		{name: "upstream_503_stream", stream: true, body: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			fail: &openaifake.Failure{Status: 503, RetryAfter: "1"}},
		{name: "unknown_model", body: `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`},
		{name: "error_mid_stream", stream: true, body: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"one two three four"}]}`,
			scenario: openaifake.Scenario{Break: openaifake.BreakError, BreakAfter: 2}},
		{name: "cut_off_stream", stream: true, body: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"one two three four"}]}`,
			scenario: openaifake.Scenario{Break: openaifake.BreakCut, BreakAfter: 3}},
		{name: "split_events_stream", stream: true, body: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"split me up"}]}`,
			scenario: openaifake.Scenario{SplitEvents: true}},
		{name: "invalid_json", body: `{"model":"gpt-4o","messages":[`},
	}
}

func TestGolden(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	c := sdktest.ConnectProvider(t, newProvider(t, f, nil))
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			f.Reset()
			f.SetScenario(tc.scenario)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			req := chatRequest(tc.body, tc.model)
			req.Documents = tc.docs
			got := run(t, c, req, tc.stream)
			if f.Requests() > 0 {
				last := f.LastRequest()
				got.UpstreamPath = last.Method + " " + last.Path
				got.UpstreamRequest = last.Body
			}
			checkGolden(t, tc.name, got)
		})
	}
}

// run sends req through c and records the outcome.
func run(t *testing.T, c *provider.Client, req *provider.Request, stream bool) *goldenResult {
	t.Helper()
	ctx := context.Background()
	out := &goldenResult{}
	if !stream {
		resp, err := c.ChatCompletion(ctx, req)
		if err != nil {
			out.Error = asGoldenError(t, err)
			return out
		}
		out.Response = resp.Body
		out.Header = resp.Header
		return out
	}
	st, err := c.ChatCompletionStream(ctx, req)
	if err != nil {
		out.Error = asGoldenError(t, err)
		return out
	}
	acc := &openai.Accumulator{}
	for {
		b, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			out.Error = asGoldenError(t, err)
			break
		}
		out.Chunks++
		if err := acc.Add(b); err != nil {
			t.Fatalf("chunk %d breaks the stream rules: %v\n%s", out.Chunks, err, b)
		}
	}
	cc := acc.Completion()
	for _, ch := range cc.Choices {
		for _, tc := range ch.Message.ToolCalls {
			if !json.Valid([]byte(tc.Function.Arguments)) {
				t.Errorf("tool call %s arguments are not complete JSON: %q", tc.ID, tc.Function.Arguments)
			}
		}
	}
	if out.Chunks > 0 {
		out.Response, _ = json.Marshal(cc)
	}
	out.UsageChunks = acc.UsageChunks
	return out
}

func asGoldenError(t *testing.T, err error) *goldenError {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("want an *openai.Error, got %v", err)
	}
	return &goldenError{Status: oe.Status, Type: oe.Type, Code: oe.Code, Param: oe.Param, Message: oe.Message,
		RetryAfterMs: oe.RetryAfter.Milliseconds()}
}

// checkGolden compares got with testdata/<name>.json, or rewrites the
// file under -update.
func checkGolden(t *testing.T, name string, got *goldenResult) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs from the golden file; run go test -update and review the diff\n got: %s\nwant: %s", path, pretty.Bytes(), want)
	}
}
