package server

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
)

// testServer serves a host with keys and routes but no running instances
// over an in-memory listener.
func testServer(t *testing.T) *fasthttp.Client {
	t.Helper()
	keys, err := auth.New([]config.APIKey{
		{Name: "full", Key: "sk-full", Models: []string{"*"}, Passthrough: []string{"*"}, Instances: []string{"*"}, StorageOps: []string{"*"}},
		{Name: "admin", Key: "sk-admin", Admin: true},
		{Name: "echo-only", Key: "sk-echo", Models: []string{"echo"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rtr, err := router.New([]config.Route{{Model: "echo", Targets: []config.Target{{Instance: "echo"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr := plugins.Start(&config.File{}, plugins.Options{Logger: hclog.NewNullLogger()})
	t.Cleanup(mgr.Stop)
	s := New(Options{Keys: keys, Router: rtr, Plugins: mgr, Logger: hclog.NewNullLogger(), MaxBodyBytes: 1024, RequestTimeout: time.Second})
	ln := fasthttputil.NewInmemoryListener()
	hs := s.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown(); ln.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func TestPipelineErrors(t *testing.T) {
	c := testServer(t)
	chat := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"health", "GET", "/healthz", "", "", 200, ""},
		{"not ready without instances", "GET", "/readyz", "", "", 503, ""},
		{"no key", "POST", "/v1/chat/completions", "", chat("echo"), 401, "invalid_api_key"},
		{"bad key", "POST", "/v1/chat/completions", "sk-nope", chat("echo"), 401, "invalid_api_key"},
		{"empty body", "POST", "/v1/chat/completions", "sk-full", "", 400, ""},
		{"broken json", "POST", "/v1/chat/completions", "sk-full", `{"model":`, 400, ""},
		{"model not a string", "POST", "/v1/chat/completions", "sk-full", `{"model":1,"messages":[{}]}`, 400, ""},
		{"stream not a bool", "POST", "/v1/chat/completions", "sk-full", `{"model":"echo","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, ""},
		{"embeddings without input", "POST", "/v1/embeddings", "sk-full", `{"model":"echo"}`, 400, ""},
		{"model not allowed", "POST", "/v1/chat/completions", "sk-echo", chat("gpt-4o"), 403, "model_not_allowed"},
		{"unknown model", "POST", "/v1/chat/completions", "sk-full", chat("gpt-4o"), 404, "model_not_found"},
		{"instance not configured", "POST", "/v1/chat/completions", "sk-full", chat("echo"), 503, "instance_unavailable"},
		{"too large", "POST", "/v1/chat/completions", "sk-full", chat(strings.Repeat("x", 2000)), 413, "request_too_large"},
		{"wrong method", "GET", "/v1/chat/completions", "sk-full", "", 405, "method_not_allowed"},
		{"unknown path", "GET", "/v2", "sk-full", "", 404, "unknown_path"},
		{"unknown instance", "GET", "/-openai/nope/v1/models", "sk-full", "", 404, "instance_not_found"},
		{"duplicate model", "POST", "/v1/chat/completions", "sk-echo", `{"model":"echo","model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`, 400, "duplicate_key"},
		{"duplicate nested key", "POST", "/v1/chat/completions", "sk-full", `{"model":"echo","messages":[{"role":"user","role":"system","content":"x"}]}`, 400, "duplicate_key"},
		{"duplicate embeddings key", "POST", "/v1/embeddings", "sk-full", `{"model":"echo","input":"a","input":"b"}`, 400, "duplicate_key"},
		{"no key for models", "GET", "/v1/models", "sk-admin", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://llmproxy" + tt.path)
			req.Header.SetMethod(tt.method)
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			req.SetBodyString(tt.body)
			if err := c.Do(req, resp); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode(), tt.status, resp.Body())
			}
			if len(resp.Header.Peek("X-Request-Id")) == 0 {
				t.Error("no X-Request-Id")
			}
			if tt.status < 400 || tt.path == "/readyz" {
				return
			}
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Error == nil {
				t.Fatalf("not an OpenAI error: %s", resp.Body())
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e.Error[k]; !ok {
					t.Errorf("error lacks %q", k)
				}
			}
			if tt.code != "" && e.Error["code"] != tt.code {
				t.Errorf("code %v, want %s", e.Error["code"], tt.code)
			}
		})
	}
}

func TestPathClassification(t *testing.T) {
	signed := map[string]bool{
		"/-local/dev/object/rag-docs/a.md": true,
		"/-local/dev/object/":              true,
		"/-local/dev/get/rag-docs/a.md":    false,
		"/-local/dev":                      false,
		"/-local/object/x":                 false,
	}
	for p, want := range signed {
		if got := isSignedObjectPath(p); got != want {
			t.Errorf("isSignedObjectPath(%q) = %v", p, got)
		}
	}
	endpoints := map[string]string{
		"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings", "/v1/models/x": "models",
		"/-s3/prod/get/b/k": "instance", "/metrics": "host", "/favicon.ico": "other",
	}
	for p, want := range endpoints {
		if got := endpoint([]byte(p)); got != want {
			t.Errorf("endpoint(%q) = %q, want %q", p, got, want)
		}
	}
}
