package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

const testKey = "sk-test-upstream-key"

func newFake(t testing.TB, opts openaifake.Options) *openaifake.Server {
	t.Helper()
	if opts.Key == "" {
		opts.Key = testKey
	}
	f := openaifake.New(opts)
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func configFor(baseURL, key string, extra map[string]any) *provider.Config {
	c := map[string]any{"base_url": baseURL, "organization": "org-test", "project": "proj_test"}
	for k, v := range extra {
		c[k] = v
	}
	b, _ := json.Marshal(c)
	return &provider.Config{Instance: "openai_test", JSON: b, Credentials: map[string]string{CredentialAPIKey: key}}
}

func newProvider(t testing.TB, f *openaifake.Server, extra map[string]any) *OpenAI {
	t.Helper()
	p := &OpenAI{}
	if err := p.Configure(context.Background(), configFor(f.URL()+"/v1", testKey, extra)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func TestConformance(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:       &OpenAI{},
		Config:         configFor(f.URL()+"/v1", testKey, nil),
		Model:          "gpt-4o-mini",
		Deterministic:  true,
		EmbeddingModel: "text-embedding-3-small",
	})
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		key      string
		wantPath []string // nil: no error expected
		wantErr  bool
	}{
		{name: "defaults", config: `{}`, key: "sk-1"},
		{name: "null attributes", config: `{"base_url":null,"timeout":null,"headers":null}`, key: "sk-1"},
		{name: "all attributes", config: `{"base_url":"https://example.test/v1/","organization":"org-1","project":"proj_1","timeout":"90s","headers":{"X-Team":"search"}}`, key: "sk-1"},
		{name: "base_url not a URL", config: `{"base_url":"http://[::1"}`, key: "sk-1", wantPath: []string{"base_url"}, wantErr: true},
		{name: "base_url scheme", config: `{"base_url":"ftp://example.test/v1"}`, key: "sk-1", wantPath: []string{"base_url"}, wantErr: true},
		{name: "base_url without host", config: `{"base_url":"https:///v1"}`, key: "sk-1", wantPath: []string{"base_url"}, wantErr: true},
		{name: "base_url with query", config: `{"base_url":"https://example.test/v1?x=1"}`, key: "sk-1", wantPath: []string{"base_url"}, wantErr: true},
		{name: "timeout not a duration", config: `{"timeout":"ten minutes"}`, key: "sk-1", wantPath: []string{"timeout"}, wantErr: true},
		{name: "timeout negative", config: `{"timeout":"-1s"}`, key: "sk-1", wantPath: []string{"timeout"}, wantErr: true},
		{name: "reserved header", config: `{"headers":{"authorization":"Bearer x"}}`, key: "sk-1", wantPath: []string{"headers", "authorization"}, wantErr: true},
		{name: "bad header name", config: `{"headers":{"bad header":"x"}}`, key: "sk-1", wantPath: []string{"headers", "bad header"}, wantErr: true},
		{name: "header value with newline", config: `{"headers":{"X-A":"a\r\nX-B: b"}}`, key: "sk-1", wantPath: []string{"headers", "X-A"}, wantErr: true},
		{name: "missing key", config: `{}`, key: "", wantErr: true},
		{name: "broken JSON", config: `{"base_url":`, key: "sk-1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &OpenAI{}
			err := p.Configure(context.Background(), &provider.Config{JSON: []byte(tt.config),
				Credentials: map[string]string{CredentialAPIKey: tt.key}})
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Configure: %v", err)
				}
				if p.Health(context.Background()) != nil {
					t.Errorf("Health after a good Configure failed")
				}
				return
			}
			var diags schema.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("want error diagnostics, got %v", err)
			}
			if tt.wantPath != nil && strings.Join(diags[0].Path, ".") != strings.Join(tt.wantPath, ".") {
				t.Errorf("path = %v, want %v (%v)", diags[0].Path, tt.wantPath, diags)
			}
			if strings.Contains(err.Error(), "sk-1") {
				t.Errorf("diagnostics leak the key: %v", err)
			}
			if p.Health(context.Background()) == nil {
				t.Errorf("Health passes although Configure failed")
			}
		})
	}
}

func TestNotConfigured(t *testing.T) {
	p := &OpenAI{}
	_, err := p.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)})
	wantError(t, err, http.StatusServiceUnavailable, "provider_not_configured")
}

func TestCredentialRotation(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	p := &OpenAI{}
	c := sdktest.ConnectProvider(t, p)
	ctx := context.Background()
	configure := func(key string) {
		t.Helper()
		diags, err := c.Configure(ctx, configFor(f.URL()+"/v1", key, nil))
		if err != nil || diags.HasErrors() {
			t.Fatalf("Configure: %v %v", err, diags)
		}
	}
	chat := func() error {
		_, err := c.ChatCompletion(ctx, chatRequest(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, ""))
		return err
	}
	configure(testKey)
	if err := chat(); err != nil {
		t.Fatalf("chat with the first key: %v", err)
	}
	f.SetKey("sk-rotated")
	err := chat()
	wantError(t, err, http.StatusUnauthorized, "invalid_api_key")
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("error leaks the key: %v", err)
	}

	// Requests in flight during the rotation keep working.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			for range 4 {
				if err := chat(); err != nil {
					var oe *openai.Error
					if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized {
						errs <- err
					}
				}
			}
		})
	}
	configure("sk-rotated")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request during rotation: %v", err)
	}
	if err := chat(); err != nil {
		t.Fatalf("chat with the rotated key: %v", err)
	}
	if got := f.LastRequest().Header.Get("Authorization"); got != "Bearer sk-rotated" {
		t.Errorf("upstream Authorization = %q", got)
	}
}

func TestUpstreamHeaders(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	p := newProvider(t, f, map[string]any{"headers": map[string]string{"X-Team": "search"}})
	req := chatRequest(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "")
	req.Meta.Trace = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	resp, err := p.ChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	h := f.LastRequest().Header
	want := map[string]string{
		"Authorization":       "Bearer " + testKey,
		"Openai-Organization": "org-test",
		"Openai-Project":      "proj_test",
		"X-Team":              "search",
		"Content-Type":        "application/json",
		"Traceparent":         req.Meta.Trace["traceparent"],
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("upstream header %s = %q, want %q", k, got, v)
		}
	}
	if resp.Header["x-upstream-request-id"] != "req_fake_1" || resp.Header["x-ratelimit-remaining-requests"] == "" {
		t.Errorf("relayed headers = %v", resp.Header)
	}
}

func TestCancellationReachesUpstream(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	f.SetScenario(openaifake.Scenario{ChunkDelay: 100 * time.Millisecond, Reply: "one two three four five six seven eight nine ten"})
	c := sdktest.ConnectProvider(t, newProvider(t, f, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.ChatCompletionStream(ctx, chatRequest(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	cancel()
	if !f.WaitCancelled(5 * time.Second) {
		t.Fatal("the fake did not see the client go away")
	}
}

func TestTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/v1"
	ln.Close()

	slow := newFake(t, openaifake.Options{})
	slow.SetScenario(openaifake.Scenario{ChunkDelay: 2 * time.Second})

	tests := []struct {
		name       string
		baseURL    string
		timeout    string
		stream     bool
		wantStatus int
		wantCode   string
	}{
		{"connection refused", closed, "", false, http.StatusBadGateway, "upstream_unreachable"},
		{"connection refused stream", closed, "", true, http.StatusBadGateway, "upstream_unreachable"},
		{"timeout", slow.URL() + "/v1", "100ms", false, http.StatusGatewayTimeout, "upstream_timeout"},
		{"timeout stream", slow.URL() + "/v1", "100ms", true, http.StatusGatewayTimeout, "upstream_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string]any{}
			if tt.timeout != "" {
				extra["timeout"] = tt.timeout
			}
			p := &OpenAI{}
			if err := p.Configure(context.Background(), configFor(tt.baseURL, testKey, extra)); err != nil {
				t.Fatal(err)
			}
			body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
			if tt.stream {
				err = p.ChatCompletionStream(context.Background(), chatRequest(body, ""), &chunks{})
			} else {
				_, err = p.ChatCompletion(context.Background(), chatRequest(body, ""))
			}
			wantError(t, err, tt.wantStatus, tt.wantCode)
		})
	}
}

func TestDocumentErrors(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	p := newProvider(t, f, nil)
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"read"},{"type":"document","document":{"id":"doc_0","name":"a.bin"}}]}]}`
	tests := []struct {
		name     string
		docs     []provider.Document
		wantCode string
	}{
		{"unresolved", []provider.Document{{ID: "doc_9", MIMEType: "text/plain", Data: []byte("x")}}, ""},
		{"binary without text", []provider.Document{{ID: "doc_0", Name: "a.bin", MIMEType: "application/octet-stream", Data: []byte{0, 1, 2}}}, "unsupported_document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := chatRequest(body, "")
			req.Documents = tt.docs
			_, err := p.ChatCompletion(context.Background(), req)
			wantError(t, err, http.StatusBadRequest, tt.wantCode)
			if f.Requests() != 0 {
				t.Errorf("a bad document reached the upstream")
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"fractional seconds", map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond},
		{"http date", map[string]string{"Retry-After": now.Add(30 * time.Second).Format(http.TimeFormat)}, 30 * time.Second},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"milliseconds win", map[string]string{"Retry-After": "7", "retry-after-ms": "250"}, 250 * time.Millisecond},
		{"bad milliseconds fall back", map[string]string{"Retry-After": "3", "retry-after-ms": "soon"}, 3 * time.Second},
		{"garbage", map[string]string{"Retry-After": "later"}, 0},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRelayStream(t *testing.T) {
	long := `{"object":"chat.completion.chunk","pad":"` + strings.Repeat("x", 200<<10) + `"}`
	tests := []struct {
		name       string
		in         string
		want       []string
		wantStatus int
		wantCode   string
	}{
		{"plain", "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", []string{`{"a":1}`, `{"a":2}`}, 0, ""},
		{"crlf", "data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n", []string{`{"a":1}`}, 0, ""},
		{"no space after colon", "data:{\"a\":1}\n\ndata:[DONE]\n\n", []string{`{"a":1}`}, 0, ""},
		{"comments and fields", ": ping\nevent: message\nid: 1\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: [DONE]\n\n", []string{`{"a":1}`}, 0, ""},
		{"multi-line data", "data: {\"a\":\ndata: 1}\n\ndata: [DONE]\n\n", []string{"{\"a\":\n1}"}, 0, ""},
		{"done without blank line", "data: {\"a\":1}\n\ndata: [DONE]\n", []string{`{"a":1}`}, 0, ""},
		{"done without newline", "data: {\"a\":1}\n\ndata: [DONE]", []string{`{"a":1}`}, 0, ""},
		{"line longer than the buffer", "data: " + long + "\n\ndata: [DONE]\n\n", []string{long}, 0, ""},
		{"no done", "data: {\"a\":1}\n\n", []string{`{"a":1}`}, http.StatusBadGateway, "upstream_stream_truncated"},
		{"cut mid event", "data: {\"a\":1}\n\ndata: {\"a\"", []string{`{"a":1}`}, http.StatusBadGateway, "upstream_stream_truncated"},
		{"empty body", "", nil, http.StatusBadGateway, "upstream_stream_truncated"},
		{"error event", "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}\n\n", []string{`{"a":1}`}, http.StatusBadGateway, "overloaded"},
		{"error event without code", "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n", nil, http.StatusBadGateway, "upstream_stream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got chunks
			err := relayStream(context.Background(), strings.NewReader(tt.in), &got)
			if tt.wantStatus == 0 && err != nil {
				t.Fatalf("relayStream: %v", err)
			}
			if tt.wantStatus != 0 {
				wantError(t, err, tt.wantStatus, tt.wantCode)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d chunks, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("chunk %d = %.60q, want %.60q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestRelayStreamWriterGone checks that a host that went away stops the
// relay.
func TestRelayStreamWriterGone(t *testing.T) {
	err := relayStream(context.Background(), strings.NewReader("data: {}\n\ndata: [DONE]\n\n"), failingWriter{})
	if err == nil || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("relayStream = %v, want the writer's error", err)
	}
}

type failingWriter struct{}

func (failingWriter) WriteChunk([]byte) error { return io.ErrClosedPipe }

// chunks is a provider.ChunkWriter that keeps copies of the chunks.
type chunks [][]byte

func (c *chunks) WriteChunk(b []byte) error {
	*c = append(*c, append([]byte(nil), b...))
	return nil
}

func chatRequest(body, model string) *provider.Request {
	if model == "" {
		model = gjsonModel(body)
	}
	return &provider.Request{Meta: provider.Meta{RequestID: "req-test", Instance: "openai_test", Model: model, RequestedModel: gjsonModel(body)},
		Body: []byte(body)}
}

func gjsonModel(body string) string {
	var v struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal([]byte(body), &v)
	return v.Model
}

func wantError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("want *openai.Error %d %s, got %v", status, code, err)
	}
	if oe.Status != status || (code != "" && oe.Code != code) {
		t.Errorf("error = %d %q (%v), want %d %q", oe.Status, oe.Code, oe, status, code)
	}
}
