package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

func TestConformance(t *testing.T) {
	f := startFake(t)
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:      &Anthropic{},
		Config:        fakeConfig(f, ""),
		Model:         testModel,
		Deterministic: true,
	})
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name     string
		json     string
		key      string
		wantPath string
	}{
		{"defaults", `{}`, "k", ""},
		{"nulls", `{"base_url":null,"anthropic_version":null,"default_max_tokens":null,"timeout":null,"beta":null}`, "k", ""},
		{"all set", `{"base_url":"https://proxy.example.com/anthropic/","anthropic_version":"2023-06-01","default_max_tokens":1024,"timeout":"90s","beta":["prompt-caching-2024-07-31","pdfs-2024-09-25"]}`, "k", ""},
		{"missing key", `{}`, "", "credentials.api_key"},
		{"relative url", `{"base_url":"api.anthropic.com"}`, "k", "base_url"},
		{"ftp url", `{"base_url":"ftp://example.com"}`, "k", "base_url"},
		{"empty version", `{"anthropic_version":" "}`, "k", "anthropic_version"},
		{"fractional max tokens", `{"default_max_tokens":10.5}`, "k", "default_max_tokens"},
		{"zero max tokens", `{"default_max_tokens":0}`, "k", "default_max_tokens"},
		{"bad timeout", `{"timeout":"soon"}`, "k", "timeout"},
		{"negative timeout", `{"timeout":"-1s"}`, "k", "timeout"},
		{"beta with comma", `{"beta":["a,b"]}`, "k", "beta"},
		{"wrong type", `{"beta":"a"}`, "k", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Anthropic{}).Configure(context.Background(), &provider.Config{JSON: []byte(tt.json), Credentials: map[string]string{"api_key": tt.key}})
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Configure: %v", err)
				}
				return
			}
			var diags schema.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("want diagnostics, got %v", err)
			}
			if tt.wantPath != "-" && strings.Join(diags[0].Path, ".") != tt.wantPath {
				t.Errorf("diagnostic path = %v, want %s (%v)", diags[0].Path, tt.wantPath, diags)
			}
		})
	}
}

func TestConfigureSettings(t *testing.T) {
	f := startFake(t)
	a := &Anthropic{}
	if err := a.Configure(context.Background(), fakeConfig(f, `,"anthropic_version":"2024-01-01","default_max_tokens":77,"beta":["b1","b2"]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ChatCompletion(context.Background(), &provider.Request{Body: []byte(plainBody)}); err != nil {
		t.Fatal(err)
	}
	got := f.LastRequest()
	if v := got.Header.Get("anthropic-version"); v != "2024-01-01" {
		t.Errorf("anthropic-version = %q", v)
	}
	if v := got.Header.Get("anthropic-beta"); v != "b1,b2" {
		t.Errorf("anthropic-beta = %q", v)
	}
	if !bytes.Contains(got.Body, []byte(`"max_tokens":77`)) {
		t.Errorf("default_max_tokens not used: %s", got.Body)
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := (&Anthropic{}).ChatCompletion(context.Background(), &provider.Request{Body: []byte(plainBody)})
	if golden.Status(err) != http.StatusServiceUnavailable {
		t.Fatalf("want 503 before Configure, got %v", err)
	}
}

func TestRotation(t *testing.T) {
	f := startFake(t)
	a := newProvider(t, f)
	ctx := context.Background()
	req := &provider.Request{Body: []byte(plainBody)}

	stale := fakeConfig(f, "")
	stale.Credentials = map[string]string{"api_key": "sk-old"}
	if err := a.Configure(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ChatCompletion(ctx, req); golden.Status(err) != http.StatusUnauthorized {
		t.Fatalf("with a wrong key: want 401, got %v", err)
	}
	if err := a.Configure(ctx, fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ChatCompletion(ctx, req); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	// A rejected config leaves the working one in place.
	bad := fakeConfig(f, `,"timeout":"never"`)
	if err := a.Configure(ctx, bad); err == nil {
		t.Fatal("bad config accepted")
	}
	if _, err := a.ChatCompletion(ctx, req); err != nil {
		t.Fatalf("after a rejected config: %v", err)
	}
}

func TestTranslateErrors(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantParam string
	}{
		{"invalid tool arguments", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"array tool arguments", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"tool call without id", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[1].tool_calls[0]"},
		{"n above one", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"logprobs", `{"model":"m","logprobs":true,"messages":[{"role":"user","content":"x"}]}`, "logprobs"},
		{"zero max tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"negative temperature", `{"model":"m","temperature":-1,"messages":[{"role":"user","content":"x"}]}`, "temperature"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"bmp image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AAAA"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"ftp image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"broken data url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,AAAA"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"file id", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{"missing document", `{"model":"m","messages":[{"role":"user","content":[{"type":"document","document":{"id":"doc_9"}}]}]}`, "messages[0].content[0].document"},
		{"image in system", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"x"}]}`, "messages[0].content[0].type"},
		{"function role", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"function","name":"f","content":"y"}]}`, "messages[1].role"},
		{"only system", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages"},
		{"reserved tool name", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"json_response"}}],"response_format":{"type":"json_object"}}`, "tools"},
		{"json mode with forced tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","response_format":{"type":"json_object"}}`, "response_format"},
		{"json schema without schema", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, "response_format.json_schema.schema"},
		{"unknown response format", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`, "response_format.type"},
		{"non-function tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"retrieval","function":{"name":"f"}}]}`, "tools[0].type"},
	}
	f := startFake(t)
	a := newProvider(t, f)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.Requests()
			_, err := a.ChatCompletion(context.Background(), &provider.Request{Body: []byte(tt.body)})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
				t.Fatalf("want a 400, got %v", err)
			}
			if oe.Param != tt.wantParam {
				t.Errorf("param = %q, want %q (%v)", oe.Param, tt.wantParam, oe)
			}
			if f.Requests() != before {
				t.Errorf("a request the plugin rejects must not reach the upstream")
			}
		})
	}
}

func TestToolChoice(t *testing.T) {
	tools := `"tools":[{"type":"function","function":{"name":"f"}}]`
	tests := []struct {
		name, extra, want string
	}{
		{"auto", `,"tool_choice":"auto"`, `{"type":"auto"}`},
		{"none", `,"tool_choice":"none"`, `{"type":"none"}`},
		{"required", `,"tool_choice":"required"`, `{"type":"any"}`},
		{"named", `,"tool_choice":{"type":"function","function":{"name":"f"}}`, `{"type":"tool","name":"f"}`},
		{"absent", ``, `null`},
		{"no parallel", `,"parallel_tool_calls":false`, `{"type":"auto","disable_parallel_tool_use":true}`},
		{"required no parallel", `,"tool_choice":"required","parallel_tool_calls":false`, `{"type":"any","disable_parallel_tool_use":true}`},
		{"none no parallel", `,"tool_choice":"none","parallel_tool_calls":false`, `{"type":"none"}`},
		{"json mode with tools", `,"response_format":{"type":"json_object"}`, `{"type":"any"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &provider.Request{Body: []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],` + tools + tt.extra + `}`)}
			chat, err := req.Chat()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := translateRequest(chat, req, 10)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(tr.body.ToolChoice)
			if string(got) != tt.want {
				t.Errorf("tool_choice = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFinishReason(t *testing.T) {
	tests := []struct {
		stop  string
		tools int
		want  string
	}{
		{"end_turn", 0, "stop"},
		{"stop_sequence", 0, "stop"},
		{"pause_turn", 0, "stop"},
		{"max_tokens", 0, "length"},
		{"model_context_window_exceeded", 0, "length"},
		{"tool_use", 2, "tool_calls"},
		{"tool_use", 0, "stop"},
		{"end_turn", 1, "tool_calls"},
		{"refusal", 0, "content_filter"},
		{"something_new", 0, "stop"},
	}
	for _, tt := range tests {
		if got := finishReason(tt.stop, tt.tools); got != tt.want {
			t.Errorf("finishReason(%q, %d) = %q, want %q", tt.stop, tt.tools, got, tt.want)
		}
	}
}

func TestEventReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // "name|data"
		wantErr error
	}{
		{"named events", "event: a\ndata: {\"x\":1}\n\nevent: b\ndata: 2\n\n", []string{"a|{\"x\":1}", "b|2"}, io.EOF},
		{"crlf", "event: a\r\ndata: 1\r\n\r\n", []string{"a|1"}, io.EOF},
		{"comments and blank lines", ": keepalive\n\n\nevent: a\n: note\ndata: 1\n\n", []string{"a|1"}, io.EOF},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"|a\nb"}, io.EOF},
		{"no space after colon", "event:a\ndata:1\n\n", []string{"a|1"}, io.EOF},
		{"cut inside an event", "event: a\ndata: 1\n\nevent: b\ndata: {\"x", []string{"a|1"}, io.ErrUnexpectedEOF},
		{"cut before the blank line", "event: a\ndata: 1\n", nil, io.ErrUnexpectedEOF},
		{"empty", "", nil, io.EOF},
	}
	for _, tt := range tests {
		for _, reader := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"byte by byte", iotest.OneByteReader}, {"half", iotest.HalfReader}} {
			t.Run(tt.name+"/"+reader.name, func(t *testing.T) {
				er := newEventReader(reader.wrap(strings.NewReader(tt.in)))
				var got []string
				for {
					ev, err := er.next()
					if err != nil {
						if !errors.Is(err, tt.wantErr) {
							t.Errorf("end error = %v, want %v", err, tt.wantErr)
						}
						break
					}
					got = append(got, ev.name+"|"+string(ev.data))
				}
				if strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
					t.Errorf("events = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestCompactor(t *testing.T) {
	inputs := []string{
		`{"city": "Paris"}`,
		"{\n  \"a\" : [1, 2, {\"b\": null}],\n  \"c\": \"x y\"\n}",
		`{"s": "quote \" inside, colon: here", "t": "back\\slash \\\" "}`,
		`{"u": "\u00e9 São"}`,
		`{}`,
	}
	for _, in := range inputs {
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(in)); err != nil {
			t.Fatal(err)
		}
		for cut := 0; cut <= len(in); cut++ {
			var c openai.JSONCompactor
			got := c.Compact(in[:cut]) + c.Compact(in[cut:])
			if got != want.String() {
				t.Errorf("compact %q cut at %d = %q, want %q", in, cut, got, want.String())
			}
		}
	}
}

// TestStreamProtocolErrors feeds broken streams to the streamer.
func TestStreamProtocolErrors(t *testing.T) {
	start := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"
	tests := []struct {
		name       string
		in         string
		wantStatus int
	}{
		{"delta before start", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", 502},
		{"not json", start + "event: content_block_start\ndata: {oops\n\n", 502},
		{"unknown block", start + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", 502},
		{"eof after start", start, 502},
		{"rate limit event", start + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n", 429},
		{"api error event", start + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n", 502},
		{"invalid request event", start + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got chunks
			st := &streamer{w: &got}
			err := st.run(newEventReader(strings.NewReader(tt.in)))
			if golden.Status(err) != tt.wantStatus {
				t.Errorf("error = %v, want status %d", err, tt.wantStatus)
			}
		})
	}
}

func TestStreamIgnoresThinkingAndUnknownEvents(t *testing.T) {
	in := strings.Join([]string{
		`event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":3,"cache_read_input_tokens":2,"output_tokens":1}}}`,
		`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`,
		`event: content_block_stop` + "\n" + `data: {"type":"content_block_stop","index":0}`,
		`event: brand_new_event` + "\n" + `data: {"type":"brand_new_event"}`,
		`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\": 1}"}}`,
		`event: content_block_stop` + "\n" + `data: {"type":"content_block_stop","index":1}`,
		`event: message_delta` + "\n" + `data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}`,
		`event: message_stop` + "\n" + `data: {"type":"message_stop"}`,
	}, "\n\n") + "\n\n"
	var got chunks
	st := &streamer{w: &got, includeUsage: true}
	if err := st.run(newEventReader(strings.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	var acc openai.Accumulator
	for _, c := range got {
		if err := acc.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	cc := acc.Completion()
	tc := cc.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].Function.Arguments != `{"a":1}` || cc.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("completion = %+v", cc.Choices[0])
	}
	if cc.Usage == nil || cc.Usage.PromptTokens != 5 || cc.Usage.CompletionTokens != 7 || cc.Usage.PromptTokensDetails.CachedTokens != 2 {
		t.Errorf("usage = %+v", cc.Usage)
	}
}

func TestListModels(t *testing.T) {
	f := startFake(t)
	a := newProvider(t, f)
	models, err := a.ListModels(context.Background(), provider.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != len(anthropicfake.DefaultModels) || models[0].ID != anthropicfake.DefaultModels[0].ID ||
		models[0].Created != anthropicfake.DefaultModels[0].CreatedAt.Unix() || models[0].OwnedBy != "anthropic" {
		t.Errorf("models = %+v", models)
	}
	if got := f.LastRequest(); got.Path != "/v1/models" || got.Header.Get("x-api-key") != f.APIKey() {
		t.Errorf("upstream request %s with key set %v", got.Path, got.Header.Get("x-api-key") != "")
	}
	f.FailNext(1, anthropicfake.Failure{Status: 401})
	if _, err := a.ListModels(context.Background(), provider.Meta{}); golden.Status(err) != http.StatusUnauthorized {
		t.Errorf("want 401, got %v", err)
	}
}

func TestHealth(t *testing.T) {
	f := startFake(t)
	a := newProvider(t, f)
	if err := a.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.FailNext(1, anthropicfake.Failure{Status: 529})
	if err := a.Health(context.Background()); err == nil {
		t.Error("Health passed while the upstream was overloaded")
	}
}

func TestEmbeddingsUnsupported(t *testing.T) {
	var p provider.Provider = &Anthropic{}
	if _, ok := p.(provider.Embedder); ok {
		t.Error("the anthropic provider must not implement Embedder")
	}
}

func TestTimeout(t *testing.T) {
	f := startFake(t)
	a := &Anthropic{}
	if err := a.Configure(context.Background(), fakeConfig(f, `,"timeout":"100ms"`)); err != nil {
		t.Fatal(err)
	}
	body := []byte(plainBody)
	ctx := context.Background()

	f.SetScenario(anthropicfake.Scenario{ResponseDelay: time.Second})
	if _, err := a.ChatCompletion(ctx, &provider.Request{Body: body}); golden.Status(err) != http.StatusGatewayTimeout {
		t.Errorf("slow non-streamed answer: want 504, got %v", err)
	}
	var got chunks
	if err := a.ChatCompletionStream(ctx, &provider.Request{Body: body}, &got); golden.Status(err) != http.StatusGatewayTimeout {
		t.Errorf("slow stream headers: want 504, got %v", err)
	}

	// Once the headers are in, a stream may take longer than the timeout.
	f.SetScenario(anthropicfake.Scenario{EventDelay: 30 * time.Millisecond})
	got = nil
	if err := a.ChatCompletionStream(ctx, &provider.Request{Body: body}, &got); err != nil {
		t.Errorf("slow but steady stream: %v", err)
	}
}

func TestStreamCancel(t *testing.T) {
	f := startFake(t)
	a := newProvider(t, f)
	f.SetScenario(anthropicfake.Scenario{EventDelay: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var got chunks
	start := time.Now()
	err := a.ChatCompletionStream(ctx, &provider.Request{Body: []byte(plainBody)}, &got)
	if err == nil || time.Since(start) > 900*time.Millisecond {
		t.Errorf("stream did not stop with its context: %v after %v", err, time.Since(start))
	}
}
