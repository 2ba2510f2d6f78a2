package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

const limitedKeyBlock = `
api_key "limited" {
  key    = "sk-limited"
  models = ["echo-*"]
}
`

func startEcho(t *testing.T) *harness.Host {
	return harness.Start(t, harness.APIKeyBlock+limitedKeyBlock+harness.EchoBlock, harness.Options{WaitFor: []string{"echo"}})
}

func TestChatCompletion(t *testing.T) {
	h := startEcho(t)
	status, hdr, body := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	if hdr.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	var cc openai.ChatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		t.Fatal(err)
	}
	if cc.Object != "chat.completion" || *cc.Choices[0].Message.Content != "You said: hi" || cc.Usage.TotalTokens == 0 {
		t.Errorf("unexpected completion: %s", body)
	}
}

func TestChatCompletionStream(t *testing.T) {
	h := startEcho(t)
	status, hdr, body := h.Do(t, "POST", "/v1/chat/completions",
		`{"model":"echo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}`)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q: %s", status, hdr.Get("Content-Type"), body)
	}
	acc := &openai.Accumulator{}
	done := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not a data line: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		if done {
			t.Fatal("data after [DONE]")
		}
		if err := acc.Add([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	cc := acc.Completion()
	if !done || *cc.Choices[0].Message.Content != "You said: one two three" || cc.Choices[0].FinishReason != "stop" || acc.UsageChunks != 1 {
		t.Errorf("stream folded to %+v (done=%v, usage chunks=%d)", cc, done, acc.UsageChunks)
	}
}

func TestErrors(t *testing.T) {
	h := startEcho(t)
	big := `{"model":"echo","messages":[{"role":"user","content":"` + strings.Repeat("x", 1<<20) + `"}]}`
	tests := []struct {
		name       string
		method     string
		path, body string
		header     []string
		status     int
		code       string
	}{
		{"malformed json", "POST", "/v1/chat/completions", `{"model":`, nil, 400, ""},
		{"not an object", "POST", "/v1/chat/completions", `[1]`, nil, 400, ""},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, nil, 400, ""},
		{"missing messages", "POST", "/v1/chat/completions", `{"model":"echo"}`, nil, 400, ""},
		{"empty messages", "POST", "/v1/chat/completions", `{"model":"echo","messages":[]}`, nil, 400, ""},
		{"bad role", "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"wizard","content":"x"}]}`, nil, 400, ""},
		{"no key", "POST", "/v1/chat/completions", `{}`, []string{"Authorization", ""}, 401, "invalid_api_key"},
		{"wrong key", "POST", "/v1/chat/completions", `{}`, []string{"Authorization", "Bearer sk-wrong"}, 401, "invalid_api_key"},
		{"x-api-key works", "POST", "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, []string{"Authorization", "", "X-API-Key", harness.Key}, 404, "model_not_found"},
		{"model not allowed", "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"x"}]}`, []string{"Authorization", "Bearer sk-limited"}, 403, "model_not_allowed"},
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, nil, 404, "model_not_found"},
		{"too large", "POST", "/v1/chat/completions", big, nil, 413, "request_too_large"},
		{"wrong method", "GET", "/v1/chat/completions", ``, nil, 405, "method_not_allowed"},
		{"unknown path", "GET", "/v2/things", ``, nil, 404, "unknown_path"},
		{"unknown instance", "GET", "/-openai/nope/v1/models", ``, nil, 404, "instance_not_found"},
		{"instance not allowed", "GET", "/-echo/echo/x", ``, []string{"Authorization", "Bearer sk-limited"}, 403, "instance_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := h.Do(t, tt.method, tt.path, tt.body, tt.header...)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
				t.Fatalf("body is not an OpenAI error: %s", body)
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e.Error[k]; !ok {
					t.Errorf("error lacks %q: %s", k, body)
				}
			}
			if tt.code != "" && e.Error["code"] != tt.code {
				t.Errorf("code %v, want %s", e.Error["code"], tt.code)
			}
			if hdr.Get("X-Request-Id") == "" {
				t.Error("error response without X-Request-Id")
			}
		})
	}
}

func TestRequestIDIsKept(t *testing.T) {
	h := startEcho(t)
	_, hdr, _ := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"x"}]}`, "X-Request-Id", "trace-abc-123")
	if got := hdr.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Errorf("X-Request-Id = %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(h.Logs(), "request_id=trace-abc-123") {
		if time.Now().After(deadline) {
			t.Fatalf("the access log does not carry the request id:\n%s", h.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestModelsFilteredByKey(t *testing.T) {
	h := startEcho(t)
	_, _, body := h.Do(t, "GET", "/v1/models", "")
	var all openai.ModelList
	json.Unmarshal(body, &all)
	_, _, body = h.Do(t, "GET", "/v1/models", "", "Authorization", "Bearer sk-limited")
	var limited openai.ModelList
	json.Unmarshal(body, &limited)
	ids := func(l openai.ModelList) string {
		var s []string
		for _, m := range l.Data {
			s = append(s, m.ID)
		}
		return strings.Join(s, ",")
	}
	if ids(all) != "echo,echo-embed" || ids(limited) != "echo-embed" {
		t.Errorf("models: all=%q limited=%q", ids(all), ids(limited))
	}
	if status, _, _ := h.Do(t, "GET", "/v1/models/echo", ""); status != 200 {
		t.Errorf("GET /v1/models/echo = %d", status)
	}
	if status, _, _ := h.Do(t, "GET", "/v1/models/echo", "", "Authorization", "Bearer sk-limited"); status != 404 {
		t.Errorf("limited key sees /v1/models/echo: %d", status)
	}
}

func TestEmbeddings(t *testing.T) {
	h := startEcho(t)
	status, _, body := h.Do(t, "POST", "/v1/embeddings", `{"model":"echo-embed","input":["a","b"]}`)
	var er openai.EmbeddingsResponse
	if status != 200 || json.Unmarshal(body, &er) != nil || len(er.Data) != 2 {
		t.Fatalf("embeddings: %d %s", status, body)
	}
}

func TestTransparentMode(t *testing.T) {
	h := startEcho(t)
	status, hdr, body := h.Do(t, "POST", "/-echo/echo/native/v1/thing%3Ax?q=1", `{"native":true}`, "X-Custom", "kept")
	if status != 200 || hdr.Get("X-Echo-Native") != "1" {
		t.Fatalf("passthrough: %d %v %s", status, hdr, body)
	}
	var got struct {
		Method, Path, Query, Body string
		Header                    map[string]string
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Method != "POST" || got.Path != "/native/v1/thing:x" || got.Query != "q=1" || got.Body != `{"native":true}` {
		t.Errorf("native request arrived as %+v", got)
	}
	if got.Header["X-Custom"] != "kept" || got.Header["Authorization"] != "" {
		t.Errorf("headers: the client's own must pass, its llmproxy key must not: %v", got.Header)
	}
}

func TestHealthAndReady(t *testing.T) {
	h := startEcho(t)
	resp, err := http.Get(h.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	st, err := h.Instances()
	if err != nil || st["echo"].State != "ready" || st["echo"].PID == 0 {
		t.Fatalf("readyz: %+v %v", st, err)
	}
}

// TestUpstreamHeadersRelayed checks that the openai plugin's upstream
// rate-limit headers reach the client, streamed or not.
func TestUpstreamHeadersRelayed(t *testing.T) {
	fake := openaifake.New(openaifake.Options{})
	fake.Start()
	t.Cleanup(fake.Close)
	h := harness.Start(t, harness.APIKeyBlock+`
provider "openai_prod" {
  type = "openai"
  credential "api_key" {
    from "value" { value = "`+openaifake.DefaultKey+`" }
  }
  config {
    base_url = "`+fake.URL()+`/v1"
  }
}
route "gpt-4o" {
  target "openai_prod" {}
}
`, harness.Options{WaitFor: []string{"openai_prod"}})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":%v}`, stream)
		status, hdr, resp := h.Do(t, "POST", "/v1/chat/completions", body)
		if status != 200 {
			t.Fatalf("stream=%v: %d %s", stream, status, resp)
		}
		if hdr.Get("X-Ratelimit-Remaining-Requests") == "" || hdr.Get("X-Upstream-Request-Id") == "" {
			t.Errorf("stream=%v: upstream headers not relayed: %v", stream, hdr)
		}
	}
}
