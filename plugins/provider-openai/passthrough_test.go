package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestPassthrough(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	c := sdktest.ConnectProvider(t, newProvider(t, f, nil))

	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"native hello"}]}`
	stream := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"native stream"}]}`
	tests := []struct {
		name       string
		method     string
		path       string
		query      string
		body       string
		fail       *openaifake.Failure
		scenario   openaifake.Scenario
		wantStatus int
		wantHeader map[string]string
	}{
		{name: "chat", method: http.MethodPost, path: "/v1/chat/completions", body: chat, wantStatus: 200,
			wantHeader: map[string]string{"Content-Type": "application/json"}},
		{name: "chat stream", method: http.MethodPost, path: "/v1/chat/completions", body: stream, wantStatus: 200,
			scenario:   openaifake.Scenario{ChunkDelay: 20 * time.Millisecond},
			wantHeader: map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}},
		{name: "models with query", method: http.MethodGet, path: "/v1/models", query: "limit=5", wantStatus: 200},
		{name: "embeddings", method: http.MethodPost, path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"x"}`, wantStatus: 200},
		{name: "rate limited", method: http.MethodPost, path: "/v1/chat/completions", body: chat, wantStatus: 429,
			fail:       &openaifake.Failure{Status: 429, RetryAfter: "3"},
			wantHeader: map[string]string{"Retry-After": "3", "Content-Type": "application/json"}},
		{name: "unknown path", method: http.MethodGet, path: "/v1/nothing", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Reset()
			f.SetScenario(tt.scenario)
			if tt.fail != nil {
				f.FailNext(2, *tt.fail) // once through the plugin, once direct
			}
			h := http.Header{}
			h.Set("Authorization", "Bearer client-llmproxy-key")
			h.Set("OpenAI-Organization", "org-client")
			h.Set("Content-Type", "application/json")
			st, err := c.Passthrough(context.Background(), &provider.PassthroughRequest{
				Meta:   provider.Meta{RequestID: "req-pt", Instance: "openai_test"},
				Method: tt.method, Path: tt.path, RawQuery: tt.query, Header: h, Body: []byte(tt.body),
			})
			if err != nil {
				t.Fatalf("Passthrough: %v", err)
			}
			var got bytes.Buffer
			pieces := 0
			for {
				b, err := st.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				if pieces == 0 && tt.scenario.ChunkDelay > 0 && bytes.Contains(b, []byte("[DONE]")) {
					t.Errorf("the stream arrived in one piece; it was not flushed as it streamed")
				}
				pieces++
				got.Write(b)
			}

			last := f.LastRequest()
			if last.Path != tt.path || last.Method != tt.method {
				t.Errorf("upstream got %s %s, want %s %s", last.Method, last.Path, tt.method, tt.path)
			}
			if a := last.Header.Get("Authorization"); a != "Bearer "+testKey {
				t.Errorf("upstream Authorization = %q, want the upstream key", a)
			}
			if o := last.Header.Get("OpenAI-Organization"); o != "org-test" {
				t.Errorf("upstream OpenAI-Organization = %q", o)
			}
			if p := last.Header.Get("OpenAI-Project"); p != "proj_test" {
				t.Errorf("upstream OpenAI-Project = %q", p)
			}
			if string(last.Body) != tt.body {
				t.Errorf("upstream body = %q, want %q", last.Body, tt.body)
			}

			// The same request sent straight to the fake must answer the same.
			direct := directCall(t, f, tt.method, tt.path+"?"+tt.query, tt.body)
			if st.Status != tt.wantStatus || direct.status != tt.wantStatus {
				t.Errorf("status = %d (direct %d), want %d", st.Status, direct.status, tt.wantStatus)
			}
			if !bytes.Equal(got.Bytes(), direct.body) {
				t.Errorf("body differs from the upstream's\n got: %s\nwant: %s", got.Bytes(), direct.body)
			}
			for k, v := range tt.wantHeader {
				if g := st.Header.Get(k); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			if st.Header.Get("X-Ratelimit-Limit-Requests") == "" {
				t.Errorf("upstream headers were not copied: %v", st.Header)
			}
		})
	}
}

func TestPassthroughUnreachable(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	p := newProvider(t, f, nil)
	f.Close()
	c := sdktest.ConnectProvider(t, p)
	st, err := c.Passthrough(context.Background(), &provider.PassthroughRequest{Method: http.MethodGet, Path: "/v1/models", Header: http.Header{}})
	if err != nil {
		t.Fatalf("Passthrough: %v", err)
	}
	body, _ := st.Recv()
	if st.Status != http.StatusBadGateway || !strings.Contains(string(body), "upstream_unreachable") {
		t.Errorf("unreachable upstream: status %d body %s", st.Status, body)
	}
}

type directResponse struct {
	status int
	body   []byte
}

func directCall(t *testing.T, f *openaifake.Server, method, target, body string) directResponse {
	t.Helper()
	req, err := http.NewRequest(method, f.URL()+strings.TrimSuffix(target, "?"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return directResponse{status: resp.StatusCode, body: b}
}
