package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// cacheUpstream is the OpenAI fake behind a counter of the chat requests
// that reached it.
type cacheUpstream struct {
	fake  *openaifake.Server
	srv   *httptest.Server
	chats atomic.Int64
}

func startCacheUpstream(t *testing.T) *cacheUpstream {
	u := &cacheUpstream{fake: openaifake.New(openaifake.Options{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions") {
			u.chats.Add(1)
		}
		u.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

const (
	cacheNarrowKey = "sk-cache-narrow-0123456789"
	cacheOptInKey  = "sk-cache-optin-0123456789"
)

// cacheConfig has a route that caches (gpt-4o), one that does not
// (gpt-4o-mini), a key that opts in everywhere and a key that may use
// gpt-4o-mini only.
func cacheConfig(upstream, cacheBlock string) string {
	return harness.APIKeyBlock + fmt.Sprintf(`
api_key "narrow" {
  key    = %q
  models = ["gpt-4o-mini"]
  cache  = true
}
api_key "optin" {
  key    = %q
  models = ["*"]
  cache  = true
}
provider "openai_prod" {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = "%s/v1"
  }
}
route "gpt-4o" {
  target "openai_prod" {}
  cache { ttl = "10m" }
}
route "gpt-4o-mini" {
  target "openai_prod" {}
}
%s
`, cacheNarrowKey, cacheOptInKey, openaifake.DefaultKey, upstream, cacheBlock)
}

// cacheChatAs sends a chat request with key and extra headers.
func cacheChatAs(t *testing.T, h *harness.Host, key, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	return h.Do(t, "POST", "/v1/chat/completions", body, append([]string{"Authorization", "Bearer " + key}, header...)...)
}

func TestResponseCache(t *testing.T) {
	up := startCacheUpstream(t)
	h := harness.Start(t, cacheConfig(up.srv.URL, `cache {
  backend     = "memory"
  max_entries = 100
}`), harness.Options{WaitFor: []string{"openai_prod"}})

	expect := func(t *testing.T, what string, status int, hdr http.Header, body []byte, result string, upstream int64) {
		t.Helper()
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, status, body)
		}
		if got := hdr.Get("X-LLMProxy-Cache"); got != result {
			t.Errorf("%s: X-LLMProxy-Cache = %q, want %q", what, got, result)
		}
		if got := up.chats.Load(); got != upstream {
			t.Errorf("%s: the upstream saw %d chat requests, want %d", what, got, upstream)
		}
	}

	t.Run("json", func(t *testing.T) {
		base := up.chats.Load()
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"what is a cache?"}],"temperature":0}`
		status, hdr, first := h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "first", status, hdr, first, "miss", base+1)
		// The same request written differently, by another end user.
		same := `{"temperature":0, "user":"someone-else", "messages":[{"content":"what is a cache?","role":"user"}],"model":"gpt-4o"}`
		status, hdr, second := h.Do(t, "POST", "/v1/chat/completions", same)
		expect(t, "second", status, hdr, second, "hit", base+1)
		if !bytes.Equal(first, second) {
			t.Errorf("the hit differs from the answer it cached:\n%s\n%s", first, second)
		}
		// A different request is a different key.
		status, hdr, other := h.Do(t, "POST", "/v1/chat/completions", strings.Replace(body, `"temperature":0`, `"temperature":1`, 1))
		expect(t, "other temperature", status, hdr, other, "miss", base+2)
	})

	t.Run("cache-control", func(t *testing.T) {
		base := up.chats.Load()
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"honour cache-control"}]}`
		status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", body, "Cache-Control", "no-store")
		expect(t, "no-store", status, hdr, b, "bypass", base+1)
		status, hdr, b = h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "after no-store (nothing was stored)", status, hdr, b, "miss", base+2)
		status, hdr, b = h.Do(t, "POST", "/v1/chat/completions", body, "Cache-Control", "no-cache")
		expect(t, "no-cache (lookup skipped)", status, hdr, b, "miss", base+3)
		status, hdr, fresh := h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "after no-cache", status, hdr, fresh, "hit", base+3)
		if !bytes.Equal(b, fresh) {
			t.Error("the hit is not the answer no-cache stored")
		}
	})

	t.Run("stream", func(t *testing.T) {
		base := up.chats.Load()
		body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me a story"}]}`
		status, hdr, first := h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "first stream", status, hdr, first, "miss", base+1)
		status, hdr, second := h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "second stream", status, hdr, second, "hit", base+1)
		if !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
			t.Errorf("replayed stream content type %q", hdr.Get("Content-Type"))
		}
		if !bytes.Equal(first, second) || !bytes.HasSuffix(second, []byte("data: [DONE]\n\n")) || !bytes.Contains(second, []byte(`"usage"`)) {
			t.Errorf("replayed stream differs from the first:\n%s\n---\n%s", first, second)
		}
		// The JSON answer to the same request is not the stream's.
		status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", strings.Replace(body, `"stream":true,`, ``, 1))
		expect(t, "same request without stream", status, hdr, b, "miss", base+2)

		tools := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"weather?"}],` +
			`"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}]}`
		for i := range 2 {
			status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", tools)
			expect(t, fmt.Sprintf("stream with tools #%d", i), status, hdr, b, "bypass", base+3+int64(i))
		}
	})

	t.Run("errors are not cached", func(t *testing.T) {
		base := up.chats.Load()
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"this fails once"}]}`
		up.fake.FailNext(1, openaifake.Failure{Status: 400, Message: "bad things"})
		status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", body)
		if status != 400 || hdr.Get("X-LLMProxy-Cache") != "miss" {
			t.Fatalf("failing request: %d %q %s", status, hdr.Get("X-LLMProxy-Cache"), b)
		}
		status, hdr, b = h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "after the error", status, hdr, b, "miss", base+2)
	})

	t.Run("rights", func(t *testing.T) {
		base := up.chats.Load()
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"rights first"}]}`
		status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", body)
		expect(t, "cached for the full key", status, hdr, b, "miss", base+1)
		// A key without the right to gpt-4o is refused before the cache.
		status, hdr, b = cacheChatAs(t, h, cacheNarrowKey, body)
		if status != http.StatusForbidden || !bytes.Contains(b, []byte("model_not_allowed")) || hdr.Get("X-LLMProxy-Cache") != "" {
			t.Fatalf("narrow key on a cached answer of a model it may not use: %d %q %s", status, hdr.Get("X-LLMProxy-Cache"), b)
		}
		// The same messages on the model it may use are another key.
		status, hdr, b = cacheChatAs(t, h, cacheNarrowKey, strings.Replace(body, `"gpt-4o"`, `"gpt-4o-mini"`, 1))
		expect(t, "narrow key on its own model", status, hdr, b, "miss", base+2)
		if !bytes.Contains(b, []byte(`"model":"gpt-4o-mini`)) {
			t.Errorf("narrow key got another model's answer: %s", b)
		}
	})

	t.Run("opt-in per key", func(t *testing.T) {
		base := up.chats.Load()
		body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"only some keys cache here"}]}`
		for i := range 2 {
			status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", body)
			expect(t, fmt.Sprintf("key that did not opt in #%d", i), status, hdr, b, "", base+1+int64(i))
		}
		status, hdr, b := cacheChatAs(t, h, cacheOptInKey, body)
		expect(t, "key that opted in", status, hdr, b, "miss", base+3)
		status, hdr, b = cacheChatAs(t, h, cacheOptInKey, body)
		expect(t, "key that opted in, again", status, hdr, b, "hit", base+3)
	})

	t.Run("metrics", func(t *testing.T) {
		_, _, m := h.Do(t, "GET", "/metrics", "")
		for _, result := range []string{"hit", "miss", "bypass"} {
			re := regexp.MustCompile(`llmproxy_cache_requests_total\{result="` + result + `"\} ([1-9][0-9]*)`)
			if !re.Match(m) {
				t.Errorf("no positive llmproxy_cache_requests_total for %s in /metrics", result)
			}
		}
	})
}

// TestResponseCacheRedis shares the cache between two replicas through a
// real redis-server: an answer one replica cached is served by the other.
func TestResponseCacheRedis(t *testing.T) {
	up := startCacheUpstream(t)
	r := startTrafficRedis(t)
	cfg := cacheConfig(up.srv.URL, fmt.Sprintf(`cache {
  backend = "redis"
  redis   = %q
  timeout = "500ms"
}`, r.url()))
	a := harness.Start(t, cfg, harness.Options{WaitFor: []string{"openai_prod"}})
	b := harness.Start(t, cfg, harness.Options{WaitFor: []string{"openai_prod"}})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"gpt-4o","stream":%v,"messages":[{"role":"user","content":"shared between replicas"}]}`, stream)
		base := up.chats.Load()
		status, hdr, first := a.Do(t, "POST", "/v1/chat/completions", body)
		if status != 200 || hdr.Get("X-LLMProxy-Cache") != "miss" {
			t.Fatalf("stream=%v replica a: %d %q %s", stream, status, hdr.Get("X-LLMProxy-Cache"), first)
		}
		status, hdr, second := b.Do(t, "POST", "/v1/chat/completions", body)
		if status != 200 || hdr.Get("X-LLMProxy-Cache") != "hit" {
			t.Fatalf("stream=%v replica b: %d %q %s", stream, status, hdr.Get("X-LLMProxy-Cache"), second)
		}
		if !bytes.Equal(first, second) {
			t.Errorf("stream=%v: replica b served another answer:\n%s\n%s", stream, first, second)
		}
		if got := up.chats.Load() - base; got != 1 {
			t.Errorf("stream=%v: the upstream saw %d requests, want 1", stream, got)
		}
	}
	// With Redis gone the cache is a miss, never an error.
	r.kill()
	status, hdr, body := a.Do(t, "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"redis is down"}]}`)
	if status != 200 || hdr.Get("X-LLMProxy-Cache") != "miss" {
		t.Fatalf("with redis down: %d %q %s", status, hdr.Get("X-LLMProxy-Cache"), body)
	}
}

// TestResponseCacheUsage checks that a hit is recorded as usage like any
// request, without tokens or cost, under the instance "(cache)".
func TestResponseCacheUsage(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+fmt.Sprintf(`
store {
  driver = "sqlite"
  path   = %q
}
route "echo-cached" {
  target "echo" { model = "echo" }
  cache { ttl = "5m" }
}
`, filepath.Join(t.TempDir(), "llmproxy.db")), harness.Options{WaitFor: []string{"echo"}})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"echo-cached","stream":%v,"messages":[{"role":"user","content":"count me twice"}]}`, stream)
		for _, want := range []string{"miss", "hit"} {
			status, hdr, b := h.Do(t, "POST", "/v1/chat/completions", body)
			if status != 200 || hdr.Get("X-LLMProxy-Cache") != want {
				t.Fatalf("stream=%v: %d %q, want 200 %q: %s", stream, status, hdr.Get("X-LLMProxy-Cache"), want, b)
			}
		}
	}
	type group struct {
		Group      string
		Requests   int
		Prompt     int64   `json:"prompt_tokens"`
		Completion int64   `json:"completion_tokens"`
		Cost       float64 `json:"cost_usd"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _, b := h.Do(t, "GET", "/admin/v1/usage?group_by=instance", "")
		if status != 200 {
			t.Fatalf("usage: %d %s", status, b)
		}
		var out struct{ Data []group }
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		by := map[string]group{}
		for _, g := range out.Data {
			by[g.Group] = g
		}
		hit, served := by["(cache)"], by["echo"]
		if hit.Requests == 2 && served.Requests == 2 {
			if hit.Prompt != 0 || hit.Completion != 0 || hit.Cost != 0 {
				t.Errorf("hits recorded with tokens or cost: %+v", hit)
			}
			if served.Prompt == 0 || served.Completion == 0 {
				t.Errorf("misses recorded without tokens: %+v", served)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage by instance: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestResponseCacheResponsesAPI checks that /v1/responses, which runs on
// the chat path, is served from the cache in its own shape: JSON and the
// typed stream events.
func TestResponseCacheResponsesAPI(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+`
route "echo-cached" {
  target "echo" { model = "echo" }
  cache { ttl = "5m" }
}
`, harness.Options{WaitFor: []string{"echo"}})
	type response struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Status string `json:"status"`
		Output []struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	var answers []response
	for _, want := range []string{"miss", "hit"} {
		status, hdr, b := h.Do(t, "POST", "/v1/responses", `{"model":"echo-cached","input":"cache this response"}`)
		if status != 200 || hdr.Get("X-LLMProxy-Cache") != want {
			t.Fatalf("%s: %d %q %s", want, status, hdr.Get("X-LLMProxy-Cache"), b)
		}
		var r response
		if err := json.Unmarshal(b, &r); err != nil || r.Object != "response" || r.Status != "completed" ||
			len(r.Output) == 0 || len(r.Output[0].Content) == 0 {
			t.Fatalf("%s: not a completed Responses answer: %v %s", want, err, b)
		}
		answers = append(answers, r)
	}
	if answers[0].Output[0].Content[0].Text != answers[1].Output[0].Content[0].Text {
		t.Errorf("the hit's text differs: %q, %q", answers[0].Output[0].Content[0].Text, answers[1].Output[0].Content[0].Text)
	}
	if answers[0].ID == answers[1].ID {
		t.Error("the hit reused the first response's id")
	}
	var streams [][]byte
	for _, want := range []string{"miss", "hit"} {
		status, hdr, b := h.Do(t, "POST", "/v1/responses", `{"model":"echo-cached","input":"cache this stream","stream":true}`)
		if status != 200 || hdr.Get("X-LLMProxy-Cache") != want {
			t.Fatalf("stream %s: %d %q %s", want, status, hdr.Get("X-LLMProxy-Cache"), b)
		}
		for _, ev := range []string{"event: response.created", "event: response.output_text.delta", "event: response.completed"} {
			if !bytes.Contains(b, []byte(ev)) {
				t.Errorf("stream %s lacks %q:\n%s", want, ev, b)
			}
		}
		streams = append(streams, b)
	}
	deltas := func(b []byte) string {
		var out strings.Builder
		for _, m := range regexp.MustCompile(`"delta":"((?:[^"\\]|\\.)*)"`).FindAllSubmatch(b, -1) {
			out.Write(m[1])
		}
		return out.String()
	}
	if d0, d1 := deltas(streams[0]), deltas(streams[1]); d0 == "" || d0 != d1 {
		t.Errorf("replayed stream text %q, first %q", d1, d0)
	}
}
