package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

func TestUsageOf(t *testing.T) {
	for _, tt := range []struct {
		body  string
		want  int64
		known bool
	}{
		{`{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`, 7, true},
		{`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, 7, true},
		{`{"usage":null}`, 0, false},
		{`{"choices":[]}`, 0, false},
		{`{"usage":{"total_tokens":"many"}}`, 0, false},
		{`not json "usage"`, 0, false},
	} {
		var p fastjson.Parser
		if got, known := usageOf(&p, []byte(tt.body)); got != tt.want || known != tt.known {
			t.Errorf("usageOf(%s) = %d, %v; want %d, %v", tt.body, got, known, tt.want, tt.known)
		}
	}
}

func TestMeter(t *testing.T) {
	m := &meter{prompt: 10}
	for _, c := range []string{`{"choices":[{"delta":{"content":"a"}}]}`, `{"choices":[{"delta":{"content":"b"}}]}`} {
		if m.observe([]byte(c)) {
			t.Errorf("%s taken for a usage chunk", c)
		}
	}
	if m.used() != 12 {
		t.Errorf("without usage: used %d, want prompt 10 + 2 chunks", m.used())
	}
	if !m.observe([]byte(`{"choices":[],"usage":{"total_tokens":42}}`)) || m.used() != 42 {
		t.Errorf("usage chunk: used %d", m.used())
	}
	if !(&meter{}).observe([]byte(`{"choices":null,"usage":{"total_tokens":1}}`)) {
		t.Error("choices null (vLLM) is a usage chunk too")
	}
	if (&meter{}).observe([]byte(`{"choices":[{"delta":{}}],"usage":{"total_tokens":1}}`)) {
		t.Error("a chunk with choices and usage is forwarded")
	}
}

func TestWithUsage(t *testing.T) {
	for _, body := range []string{`{"model":"m","stream":true}`, ` { "model" : "m" }`, `{}`} {
		var v map[string]any
		out := withUsage([]byte(body))
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("withUsage(%s) = %s: %v", body, out, err)
		}
		so, _ := v["stream_options"].(map[string]any)
		if so["include_usage"] != true {
			t.Errorf("withUsage(%s) = %s", body, out)
		}
	}
}

func TestRetryWait(t *testing.T) {
	p := config.RetryPolicy{PerTarget: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 150 * time.Millisecond, MaxRetryAfter: time.Second}
	far := time.Now().Add(time.Minute)
	plain := openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "x", "down")
	for n := 1; n <= 4; n++ {
		for range 50 {
			w, ok := retryWait(p, n, plain, far)
			if !ok || w < 0 || w > p.MaxBackoff || n == 1 && w > p.Backoff {
				t.Fatalf("retry %d: wait %v, %v", n, w, ok)
			}
		}
	}
	ra := openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "x", "slow down")
	ra.RetryAfter = 700 * time.Millisecond
	if w, ok := retryWait(p, 1, ra, far); !ok || w != 700*time.Millisecond {
		t.Errorf("Retry-After 700ms: wait %v, %v", w, ok)
	}
	ra.RetryAfter = 5 * time.Second
	if _, ok := retryWait(p, 1, ra, far); ok {
		t.Error("a Retry-After over max_retry_after was waited for")
	}
	ra.RetryAfter = 700 * time.Millisecond
	if _, ok := retryWait(p, 1, ra, time.Now().Add(100*time.Millisecond)); ok {
		t.Error("a wait past the deadline was allowed")
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{plain, true},
		{upstreamAuthFailed(), false},
		{openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "insufficient_quota", "pay"), false},
		{openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "x", "bad"), false},
		{errors.New("plain"), false},
	} {
		if got := sameTargetRetryable(tt.err); got != tt.want {
			t.Errorf("sameTargetRetryable(%v) = %v", tt.err, got)
		}
	}
}
