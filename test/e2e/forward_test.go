package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The host's user agent on calls it forwards on a plugin's plan; the
// plugin's own client sends none.
const plannedAgent = "llmproxy"

// TestForwardPlan drives an openai instance whose plugin hands the host a
// forwarding plan, so that the host calls the upstream itself, and one
// with forward = false, which the plugin serves: answers, streams and
// errors must be the same on both paths.
func TestForwardPlan(t *testing.T) {
	fake := openaifake.New(openaifake.Options{})
	fake.Start()
	t.Cleanup(fake.Close)
	secret := newMountedSecret(t, "api_key", openaifake.DefaultKey)
	h := harness.Start(t, harness.APIKeyBlock+fmt.Sprintf(`
provider "openai_planned" {
  type = "openai"
  credential "api_key" {
    from "file" { path = %[1]q }
  }
  config {
    base_url = "%[2]s/v1"
  }
}
provider "openai_served" {
  type = "openai"
  credential "api_key" {
    from "file" { path = %[1]q }
  }
  config {
    base_url = "%[2]s/v1"
    forward  = false
  }
}
route "gpt-4o" {
  target "openai_planned" {}
}
route "mini" {
  target "openai_planned" { model = "gpt-4o-mini" }
}
route "served" {
  target "openai_served" { model = "gpt-4o" }
}
route "text-embedding-3-small" {
  target "openai_planned" {}
}
`, filepath.Join(secret.dir, "api_key"), fake.URL()), harness.Options{WaitFor: []string{"openai_planned", "openai_served"}})

	chat := func(model string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"say hello"}],"stream":%v}`, model, stream)
	}
	// upstream checks who called the fake last, with which key and model.
	upstream := func(t *testing.T, wantAgent, wantKey, wantModel string) {
		t.Helper()
		req := fake.LastRequest()
		if got := req.Header.Get("User-Agent"); (got == plannedAgent) != (wantAgent == plannedAgent) {
			t.Errorf("upstream saw User-Agent %q; want the call made by %s", got, map[bool]string{true: "the host", false: "the plugin"}[wantAgent == plannedAgent])
		}
		if got := req.Header.Get("Authorization"); got != "Bearer "+wantKey {
			t.Errorf("upstream saw Authorization %q, want the key %q", got, wantKey)
		}
		var body struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(req.Body, &body)
		if body.Model != wantModel {
			t.Errorf("upstream saw model %q, want %q", body.Model, wantModel)
		}
	}

	for _, tt := range []struct {
		name, model, agent, upstreamModel string
	}{
		{"planned", "gpt-4o", plannedAgent, "gpt-4o"},
		{"planned with the route's model", "mini", plannedAgent, "gpt-4o-mini"},
		{"served by the plugin", "served", "", "gpt-4o"},
	} {
		t.Run(tt.name+"/json", func(t *testing.T) {
			fake.Reset()
			status, hdr, body := h.Do(t, "POST", "/v1/chat/completions", chat(tt.model, false))
			if status != 200 || !bytes.Contains(body, []byte(`"chat.completion"`)) {
				t.Fatalf("status %d: %s", status, body)
			}
			if hdr.Get("X-Ratelimit-Remaining-Requests") == "" {
				t.Errorf("rate-limit headers not relayed: %v", hdr)
			}
			upstream(t, tt.agent, openaifake.DefaultKey, tt.upstreamModel)
		})
		t.Run(tt.name+"/stream", func(t *testing.T) {
			fake.Reset()
			status, hdr, body := h.Do(t, "POST", "/v1/chat/completions", chat(tt.model, true))
			if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d %s: %s", status, hdr.Get("Content-Type"), body)
			}
			if n := bytes.Count(body, []byte(`"chat.completion.chunk"`)); n < 2 || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
				t.Errorf("stream of %d chunks, want several and [DONE]: %s", n, body)
			}
			if hdr.Get("X-Upstream-Request-Id") == "" {
				t.Errorf("upstream request id not relayed: %v", hdr)
			}
			upstream(t, tt.agent, openaifake.DefaultKey, tt.upstreamModel)
		})
	}

	t.Run("embeddings", func(t *testing.T) {
		fake.Reset()
		status, _, body := h.Do(t, "POST", "/v1/embeddings", `{"model":"text-embedding-3-small","input":["a","b"]}`)
		if status != 200 || bytes.Count(body, []byte(`"embedding":[`)) != 2 {
			t.Fatalf("status %d: %.300s", status, body)
		}
		upstream(t, plannedAgent, openaifake.DefaultKey, "text-embedding-3-small")
	})

	for _, model := range []string{"gpt-4o", "served"} {
		t.Run(model+"/429 with Retry-After", func(t *testing.T) {
			fake.Reset()
			fake.FailNext(1, openaifake.Failure{Status: 429, RetryAfter: "30", Code: "rate_limit_exceeded"})
			status, hdr, body := h.Do(t, "POST", "/v1/chat/completions", chat(model, false))
			if status != 429 || hdr.Get("Retry-After") != "30" || !bytes.Contains(body, []byte(`"rate_limit_exceeded"`)) {
				t.Errorf("got %d Retry-After %q: %s; want 429, 30 and the upstream's code", status, hdr.Get("Retry-After"), body)
			}
		})
		t.Run(model+"/mid-stream error", func(t *testing.T) {
			fake.Reset()
			fake.SetScenario(openaifake.Scenario{Break: openaifake.BreakError, BreakAfter: 2})
			status, _, body := h.Do(t, "POST", "/v1/chat/completions", chat(model, true))
			if status != 200 || bytes.Count(body, []byte(`"chat.completion.chunk"`)) != 2 {
				t.Fatalf("status %d: %s; want 200 and the 2 chunks before the error", status, body)
			}
			if !bytes.Contains(body, []byte(`"error"`)) || bytes.Contains(body, []byte("[DONE]")) {
				t.Errorf("stream does not end with an error event: %s", body)
			}
		})
	}

	t.Run("cancellation reaches the upstream", func(t *testing.T) {
		for _, stream := range []bool{false, true} {
			fake.Reset()
			fake.SetScenario(openaifake.Scenario{ChunkDelay: 3 * time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, "POST", h.URL+"/v1/chat/completions", strings.NewReader(chat("gpt-4o", stream)))
			req.Header.Set("Authorization", "Bearer "+harness.Key)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cancel()
			if !fake.WaitCancelled(2 * time.Second) {
				t.Errorf("stream=%v: the upstream did not see the client go away", stream)
			}
			upstream(t, plannedAgent, openaifake.DefaultKey, "gpt-4o")
		}
	})

	t.Run("401 is upstream_auth_failed", func(t *testing.T) {
		fake.Reset()
		fake.SetKey("sk-someone-else")
		defer fake.SetKey(openaifake.DefaultKey)
		for _, stream := range []bool{false, true} {
			status, _, body := h.Do(t, "POST", "/v1/chat/completions", chat("gpt-4o", stream))
			if status != 502 || !bytes.Contains(body, []byte(`"upstream_auth_failed"`)) || bytes.Contains(body, []byte("sk-")) {
				t.Errorf("stream=%v: got %d %s; want 502 upstream_auth_failed without the upstream's text", stream, status, body)
			}
		}
	})

	// Key rotation comes last: it changes the key of both instances.
	t.Run("key rotation changes the planned header", func(t *testing.T) {
		const newKey = "sk-rotated-0123456789"
		fake.Reset()
		fake.SetKey(newKey)
		secret.update("api_key", newKey)
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, _, body := h.Do(t, "POST", "/v1/chat/completions", chat("gpt-4o", false))
			if status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no success 10 s after the rotation: %d %s", status, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		upstream(t, plannedAgent, newKey, "gpt-4o")
		if strings.Contains(h.Logs(), newKey) || strings.Contains(h.Logs(), openaifake.DefaultKey) {
			t.Errorf("a key reached the host's log")
		}
	})
}
