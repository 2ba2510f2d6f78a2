package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCase is one chat scenario: a client body (without stream fields),
// the documents beside it, and how the fake behaves.
type goldenCase struct {
	name     string
	body     string
	docs     []provider.Document
	scenario azurefake.Scenario
	// failStatus, when set, makes the fake fail both the JSON and the
	// stream request with it.
	failStatus int
	retryAfter time.Duration
}

// pdfBytes is a minimal PDF header; the fake does not parse documents.
var pdfBytes = []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")

// pngBytes is the 8-byte PNG signature plus an IHDR start.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

const weatherTool = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`

var goldenCases = []goldenCase{
	{name: "plain", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}]}`},
	{name: "usage_details", body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Think, then say hello."}]}`,
		scenario: azurefake.Scenario{CachedTokens: 1280, ReasoningTokens: 64}},
	{name: "system", body: `{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}],"temperature":0.2,"user":"u-1"}`,
		scenario: azurefake.Scenario{Text: "Hello."}},
	{name: "multi_turn", body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"Tell me a fact."}]}`,
		scenario: azurefake.Scenario{Text: "Octopuses have three hearts."}},
	{name: "tool_call", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris?"}],` + weatherTool + `,"tool_choice":"auto"}`,
		scenario: azurefake.Scenario{ToolCalls: []azurefake.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}}}},
	{name: "parallel_tool_calls", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris and Rome?"}],` + weatherTool + `,"parallel_tool_calls":true}`,
		scenario: azurefake.Scenario{ToolCalls: []azurefake.ToolCall{
			{Name: "get_weather", Arguments: `{"city":"Paris"}`},
			{Name: "get_weather", Arguments: `{"city":"Rome"}`},
		}}},
	{name: "tool_results", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather in Paris?"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"{\"temp_c\":21}"}],` + weatherTool + `}`,
		scenario: azurefake.Scenario{Text: "It is 21 °C in Paris."}},
	{name: "image", body: `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}`,
		scenario: azurefake.Scenario{Text: "A tiny image."}},
	{name: "pdf_document", body: `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"Summarise the report."},{"type":"document","document":{"id":"doc_0","name":"report.pdf"}}]}]}`,
		docs:     []provider.Document{{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: pdfBytes, Text: "Quarterly report"}},
		scenario: azurefake.Scenario{Text: "The report is short."}},
	{name: "text_and_image_documents", body: `{"model":"gpt-4o","messages":[{"role":"system","content":[{"type":"text","text":"Use the notes."},{"type":"document","document":{"id":"doc_0"}}]},{"role":"user","content":[{"type":"text","text":"Describe."},{"type":"document","document":{"id":"doc_1"}}]}]}`,
		docs: []provider.Document{
			{ID: "doc_0", Name: "notes.md", MIMEType: "text/markdown", Data: []byte("# Notes\nBe kind."), Text: "Notes Be kind."},
			{ID: "doc_1", Name: "logo.png", MIMEType: "image/png", Data: pngBytes},
		},
		scenario: azurefake.Scenario{Text: "A logo."}},
	{name: "stop_sequence", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Count."}],"stop":["three"]}`,
		scenario: azurefake.Scenario{Text: "one two three four"}},
	{name: "length", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Count."}],"max_completion_tokens":2}`,
		scenario: azurefake.Scenario{Text: "one two three four"}},
	{name: "json_mode", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Answer in JSON."}],"response_format":{"type":"json_object"}}`,
		scenario: azurefake.Scenario{Text: "yes"}},
	{name: "content_filter_finish", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Tell a story."}]}`,
		scenario: azurefake.Scenario{Text: "Once upon", FinishReason: "content_filter"}},
	{name: "annotations_split_writes", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}]}`,
		scenario: azurefake.Scenario{Annotations: true, SplitWrites: true}},
	{name: "upstream_400_content_filter", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Something bad."}]}`, failStatus: http.StatusBadRequest},
	{name: "upstream_401", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`, failStatus: http.StatusUnauthorized},
	{name: "upstream_404_deployment", body: `{"model":"gpt-5-unknown","messages":[{"role":"user","content":"Hi"}]}`},
	{name: "upstream_429", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`, failStatus: http.StatusTooManyRequests, retryAfter: 6 * time.Second},
	{name: "upstream_500", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`, failStatus: http.StatusInternalServerError},
	{name: "upstream_503", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`, failStatus: http.StatusServiceUnavailable, retryAfter: 1500 * time.Millisecond},
	{name: "error_mid_stream", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}]}`,
		scenario: azurefake.Scenario{StreamError: true}},
	{name: "cut_off", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}]}`,
		scenario: azurefake.Scenario{CutOff: true}},
}

// golden is what a scenario produces, as stored in testdata/<name>.json.
type golden struct {
	Upstream       *upstreamRecord   `json:"upstream"`
	Response       json.RawMessage   `json:"response,omitempty"`
	Error          *errorRecord      `json:"error,omitempty"`
	StreamUpstream *upstreamRecord   `json:"stream_upstream"`
	Stream         []json.RawMessage `json:"stream"`
	StreamError    *errorRecord      `json:"stream_error,omitempty"`
}

type upstreamRecord struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Query  string          `json:"query"`
	Auth   string          `json:"auth"`
	Body   json.RawMessage `json:"body"`
}

type errorRecord struct {
	Status       int    `json:"status"`
	Type         string `json:"type"`
	Code         string `json:"code,omitempty"`
	Param        string `json:"param,omitempty"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func recordError(t *testing.T, err error) *errorRecord {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("want an *openai.Error, got %T %v", err, err)
	}
	return &errorRecord{Status: oe.Status, Type: oe.Type, Code: oe.Code, Param: oe.Param, Message: oe.Message, RetryAfterMS: oe.RetryAfter.Milliseconds()}
}

func recordUpstream(t *testing.T, f *azurefake.Server) *upstreamRecord {
	t.Helper()
	r := f.LastRequest()
	if r == nil {
		t.Fatal("the fake received no request")
	}
	auth := "none"
	switch {
	case r.Header.Get("api-key") != "" && r.Header.Get("Authorization") != "":
		auth = "both"
	case r.Header.Get("api-key") == testKey:
		auth = "api-key"
	case strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
		auth = "bearer"
	}
	return &upstreamRecord{Method: r.Method, Path: r.Path, Query: r.Query.Encode(), Auth: auth, Body: r.Body}
}

func TestGolden(t *testing.T) {
	f := startFake(t, fakeOptions())
	c := sdktest.ConnectProvider(t, &Azure{})
	ctx := context.Background()
	if diags, err := c.Configure(ctx, apiKeyConfig(f, "")); err != nil || diags.HasErrors() {
		t.Fatalf("Configure: %v %v", err, diags)
	}
	for _, tt := range goldenCases {
		t.Run(tt.name, func(t *testing.T) {
			f.Reset()
			f.SetScenario(tt.scenario)
			if tt.failStatus != 0 {
				f.FailNext(2, tt.failStatus, tt.retryAfter)
			}
			var g golden
			var model struct {
				Model string `json:"model"`
			}
			if err := json.Unmarshal([]byte(tt.body), &model); err != nil {
				t.Fatalf("case body: %v", err)
			}
			req := chatRequest(model.Model, tt.body)
			req.Documents = tt.docs
			resp, err := c.ChatCompletion(ctx, req)
			if err != nil {
				g.Error = recordError(t, err)
			} else {
				g.Response = resp.Body
			}
			g.Upstream = recordUpstream(t, f)

			streamBody := strings.TrimSuffix(tt.body, "}") + `,"stream":true,"stream_options":{"include_usage":true}}`
			sreq := chatRequest(model.Model, streamBody)
			sreq.Documents = tt.docs
			chunks, err := collectStream(ctx, c, sreq)
			g.Stream = chunks
			if err != nil {
				g.StreamError = recordError(t, err)
			}
			g.StreamUpstream = recordUpstream(t, f)

			checkGolden(t, filepath.Join("testdata", tt.name+".json"), &g)
			if g.Error == nil && g.StreamError == nil {
				checkFold(t, g.Response, g.Stream)
			}
		})
	}
}

// checkFold folds the stream with openai.Accumulator and compares it with
// the non-streamed completion.
func checkFold(t *testing.T, unary json.RawMessage, stream []json.RawMessage) {
	t.Helper()
	var want openai.ChatCompletion
	if err := json.Unmarshal(unary, &want); err != nil {
		t.Fatalf("response: %v", err)
	}
	acc := &openai.Accumulator{}
	for _, ch := range stream {
		if err := acc.Add(ch); err != nil {
			t.Fatalf("stream breaks the chunk rules: %v\n%s", err, ch)
		}
	}
	if acc.UsageChunks != 1 {
		t.Errorf("usage chunks = %d, want 1", acc.UsageChunks)
	}
	got := acc.Completion()
	for i := range want.Choices {
		want.Choices[i].Logprobs = nil
	}
	if !reflect.DeepEqual(got, &want) {
		gb, _ := json.Marshal(got)
		t.Errorf("folded stream differs from the JSON response:\nstream: %s\njson:   %s", gb, unary)
	}
}

func checkGolden(t *testing.T, path string, g *golden) {
	t.Helper()
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	var v any
	json.Unmarshal(got, &v)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	got = buf.Bytes()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update after checking the change):\n%s", path, got)
	}
}
