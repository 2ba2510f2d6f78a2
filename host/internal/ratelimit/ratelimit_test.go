package ratelimit

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// clock makes a Memory backend's time step only when the test says so.
type clock struct{ t time.Duration }

func memoryAt(c *clock) *Memory {
	m := NewMemory()
	m.now = func() time.Duration { return c.t }
	return m
}

func newLimiter(t *testing.T, b Backend, rules ...Rule) *Limiter {
	t.Helper()
	l, err := New(Config{Rules: rules, Timeout: time.Second}, b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRequestsExactInMemory(t *testing.T) {
	c := &clock{t: time.Hour}
	l := newLimiter(t, memoryAt(c), Rule{Name: "k", Key: "*", RPM: 600})
	s := Subject{Key: "team-a", Model: "gpt-4o", Route: "gpt-4o"}
	for i := range 600 {
		if _, d := l.Admit(context.Background(), s, Usage{}); d == nil || !d.Allowed {
			t.Fatalf("request %d refused: %+v", i, d)
		}
	}
	_, d := l.Admit(context.Background(), s, Usage{})
	if d.Allowed {
		t.Fatal("request 601 within the same instant was allowed")
	}
	if d.RetryAfter != 100*time.Millisecond {
		t.Errorf("retry after = %v, want 100ms (one emission interval)", d.RetryAfter)
	}
	e := d.Error()
	if e.Status != http.StatusTooManyRequests || e.Code != "rate_limit_exceeded" || e.RetryAfter != 100*time.Millisecond {
		t.Errorf("error = %+v", e)
	}
	// Another key has a bucket of its own.
	if _, d := l.Admit(context.Background(), Subject{Key: "team-b"}, Usage{}); !d.Allowed {
		t.Error("another key was limited by team-a's bucket")
	}
	// After 3 s, exactly 30 more fit.
	c.t += 3 * time.Second
	n := 0
	for {
		if _, d := l.Admit(context.Background(), s, Usage{}); !d.Allowed {
			break
		}
		n++
	}
	if n != 30 {
		t.Errorf("after 3 s at 600 RPM: %d more admitted, want 30", n)
	}
}

func TestHeaders(t *testing.T) {
	c := &clock{t: time.Hour}
	l := newLimiter(t, memoryAt(c), Rule{Name: "k", RPM: 60, TPM: 1000})
	_, d := l.Admit(context.Background(), Subject{Key: "a"}, Usage{Prompt: 10, MaxTokens: 90})
	got := map[string]string{}
	d.Headers(func(k, v string) { got[k] = v })
	want := map[string]string{
		"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
		"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6s",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("headers = %v", got)
	}
}

func TestTokensReserveAndSettle(t *testing.T) {
	c := &clock{t: time.Hour}
	l := newLimiter(t, memoryAt(c), Rule{Name: "tpm", Key: "*", TPM: 1000})
	s := Subject{Key: "a"}
	tk, d := l.Admit(context.Background(), s, Usage{Prompt: 100, MaxTokens: 400})
	if !d.Allowed || d.Tokens.Remaining != 500 {
		t.Fatalf("first reservation: %+v", d)
	}
	// The answer used 150 tokens: 350 come back.
	tk.Done(150, true)
	tk.Done(0, true) // a second Done is ignored
	_, d = l.Admit(context.Background(), s, Usage{Prompt: 50, MaxTokens: 800})
	if !d.Allowed || d.Tokens.Remaining != 0 {
		t.Fatalf("second reservation after the refund: %+v", d)
	}
	_, d = l.Admit(context.Background(), s, Usage{Prompt: 1, MaxTokens: 1})
	if d.Allowed {
		t.Fatal("over the limit, still allowed")
	}
	// A request larger than the whole limit can never pass.
	_, d = l.Admit(context.Background(), Subject{Key: "b"}, Usage{Prompt: 10, MaxTokens: 2000})
	if d.Allowed || d.RetryAfter >= 0 || !strings.Contains(d.Error().Message, "too large") {
		t.Fatalf("oversized request: %+v %v", d, d.Error())
	}
	// Embeddings reserve their prompt only.
	if _, d := l.Admit(context.Background(), Subject{Key: "e"}, Usage{Prompt: 40, NoCompletion: true}); d.Tokens.Remaining != 960 {
		t.Errorf("embeddings reservation: %+v", d.Tokens)
	}
	// Usage above the estimate is charged too.
	tk, d = l.Admit(context.Background(), Subject{Key: "c"}, Usage{Prompt: 10, MaxTokens: 10})
	tk.Done(700, true)
	if _, d = l.Admit(context.Background(), Subject{Key: "c"}, Usage{Prompt: 200, MaxTokens: 200}); d.Allowed {
		t.Fatalf("after an answer of 700 tokens, 400 more of 1000 were allowed: %+v", d)
	}
}

func TestConcurrentAndAllOrNothing(t *testing.T) {
	c := &clock{t: time.Hour}
	l := newLimiter(t, memoryAt(c),
		Rule{Name: "conc", Key: "*", Concurrent: 2},
		Rule{Name: "rpm", Key: "*", RPM: 3})
	s := Subject{Key: "a"}
	t1, d1 := l.Admit(context.Background(), s, Usage{})
	_, d2 := l.Admit(context.Background(), s, Usage{})
	_, d3 := l.Admit(context.Background(), s, Usage{})
	if !d1.Allowed || !d2.Allowed || d3.Allowed || d3.Refused != "conc" {
		t.Fatalf("decisions: %v %v %+v", d1.Allowed, d2.Allowed, d3)
	}
	// The refusal by "conc" charged nothing to "rpm": one request is left.
	if d3.Requests.Remaining != 1 || d3.Requests.Limit != 3 {
		t.Errorf("requests window after the refusal: %+v", d3.Requests)
	}
	t1.Done(0, false)
	if _, d := l.Admit(context.Background(), s, Usage{}); !d.Allowed {
		t.Fatalf("after a release: %+v", d)
	}
	if _, d := l.Admit(context.Background(), s, Usage{}); d.Allowed || d.Refused != "conc" && d.Refused != "rpm" {
		t.Fatalf("fourth request: %+v", d)
	}
}

func TestSelectors(t *testing.T) {
	l := newLimiter(t, nil,
		Rule{Name: "model", Model: "gpt-*", RPS: 1},
		Rule{Name: "upstream", Instance: "east", RPS: 1})
	ctx := context.Background()
	if _, d := l.Admit(ctx, Subject{Key: "a", Model: "claude", Route: "claude"}, Usage{}); d != nil {
		t.Fatalf("claude matched a gpt-* limit: %+v", d)
	}
	if _, d := l.Admit(ctx, Subject{Key: "a", Model: "gpt-4o", Route: "gpt-4o"}, Usage{}); !d.Allowed {
		t.Fatal(d)
	}
	// The model limit without a key selector is shared by all keys.
	if _, d := l.Admit(ctx, Subject{Key: "b", Model: "gpt-4o", Route: "gpt-4o"}, Usage{}); d.Allowed {
		t.Fatal("a model-wide limit was per key")
	}
	// Instance limits are separate decisions.
	if _, d := l.AdmitInstance(ctx, Subject{Instance: "west"}, Usage{}); d != nil {
		t.Fatal("west matched east's limit")
	}
	if _, d := l.AdmitInstance(ctx, Subject{Instance: "east"}, Usage{}); !d.Allowed {
		t.Fatal(d)
	}
	if _, d := l.AdmitInstance(ctx, Subject{Instance: "east"}, Usage{}); d.Allowed {
		t.Fatal("east's quota was not enforced")
	}
	got := map[string]string{}
	(&Decision{instance: true, Requests: Window{Limit: 1}}).Headers(func(k, v string) { got[k] = v })
	if len(got) != 0 {
		t.Errorf("an upstream's quota leaked into client headers: %v", got)
	}
}

func TestRuleValidation(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want string
	}{
		{Rule{Name: "x"}, "sets none"},
		{Rule{Name: "x", RPM: -1}, "negative"},
		{Rule{Name: "x", RPM: 1, Fail: "maybe"}, "fail must be"},
		{Rule{RPM: 1}, "needs a name"},
	} {
		if err := tc.rule.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.rule, err, tc.want)
		}
	}
	if _, err := New(Config{Rules: []Rule{{Name: "a", RPM: 1}, {Name: "a", RPM: 2}}}, nil); err == nil {
		t.Error("duplicate names accepted")
	}
}

func TestResetString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 12 * time.Millisecond: "12ms", time.Second: "1s", 6 * time.Minute: "6m0s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := resetString(d); got != want {
			t.Errorf("resetString(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"redis://127.0.0.1:6379/0", true},
		{"rediss://u:p@example.com:6380", true},
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001", true},
		{"redis+sentinel://127.0.0.1:26379?master_name=main", true},
		{"redis+sentinel://127.0.0.1:26379", false},
		{"memcached://127.0.0.1", false},
		{"redis://user:s3cret@[bad", false},
	} {
		c, err := ParseRedisURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error quotes the password: %v", err)
		}
		if c != nil {
			c.Close()
		}
	}
}

func BenchmarkMemoryDecision(b *testing.B) {
	l, _ := New(Config{Rules: []Rule{{Name: "k", Key: "*", RPM: 1e9, TPM: 1e12}}}, nil)
	s := Subject{Key: "team-a", Model: "gpt-4o", Route: "gpt-4o"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tk, d := l.Admit(ctx, s, Usage{Prompt: 100, MaxTokens: 100})
		if !d.Allowed {
			b.Fatal(d)
		}
		tk.Done(150, true)
	}
}

func TestKeyLimits(t *testing.T) {
	c := &clock{t: time.Hour}
	l := newLimiter(t, memoryAt(c), Rule{Name: "all", Key: "*", RPM: 100})
	own := &KeyLimits{RPM: 3, TPM: 1000, Concurrent: 1}
	s := Subject{Key: "a", KeyID: "key_a", Limits: own}
	var tickets []*Ticket
	for i := range 3 {
		tk, d := l.Admit(context.Background(), s, Usage{Prompt: 10, MaxTokens: 10})
		if d == nil || !d.Allowed {
			t.Fatalf("request %d refused: %+v", i, d)
		}
		if d.Requests.Limit != 3 {
			t.Errorf("x-ratelimit-limit-requests = %d, want the key's 3", d.Requests.Limit)
		}
		tickets = append(tickets, tk)
		if i == 0 {
			// The lease is held: a concurrent request is refused.
			if _, d := l.Admit(context.Background(), s, Usage{Prompt: 10, MaxTokens: 10}); d.Allowed || d.RefusedKind != "concurrent requests" || d.Refused != "key:key_a" {
				t.Fatalf("second concurrent request: %+v", d)
			}
		}
		tk.Done(20, true)
	}
	_, d := l.Admit(context.Background(), s, Usage{Prompt: 1, MaxTokens: 1})
	if d.Allowed || d.Refused != "key:key_a" || d.RefusedKind != "requests" || d.RetryAfter != 20*time.Second {
		t.Fatalf("fourth request: %+v", d)
	}
	// Each of the three reserved 20 tokens and settled at 20 used.
	if d.Tokens.Remaining != 940 {
		t.Errorf("tokens remaining = %d, want 940", d.Tokens.Remaining)
	}
	if e := d.Error(); e.Code != "rate_limit_exceeded" || e.RetryAfter != 20*time.Second {
		t.Errorf("error = %+v", e)
	}
	// Another key, without limits of its own, is unaffected.
	if _, d := l.Admit(context.Background(), Subject{Key: "b", KeyID: "key_b"}, Usage{}); !d.Allowed {
		t.Errorf("another key was refused: %+v", d)
	}
	// Raised limits take effect at once: the bucket is sized afresh.
	s.Limits = &KeyLimits{RPM: 100}
	if _, d := l.Admit(context.Background(), s, Usage{}); !d.Allowed {
		t.Errorf("after raising rpm: %+v", d)
	}
	// Instance decisions never apply a key's own limits.
	s.Limits = &KeyLimits{RPM: 1}
	if tk, d := l.AdmitInstance(context.Background(), s, Usage{}); tk != nil || d != nil {
		t.Errorf("instance decision applied key limits: %+v", d)
	}
	s.Limits = own
	c.t += time.Minute // refill requests; tokens refill too
	tk, d := l.Admit(context.Background(), s, Usage{Prompt: 500, MaxTokens: 500})
	if !d.Allowed || d.Tokens.Limit != 1000 || d.Tokens.Remaining != 0 {
		t.Fatalf("token decision: %+v", d)
	}
	tk.Done(1000, true)
	if _, d := l.Admit(context.Background(), s, Usage{Prompt: 1, MaxTokens: 1}); d.Allowed || d.RefusedKind != "tokens" {
		t.Errorf("over the key's tpm: %+v", d)
	}
}

func TestKeyLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		k  KeyLimits
		ok bool
	}{
		{KeyLimits{}, true},
		{KeyLimits{RPM: 1, RPS: 2, TPM: 3, Concurrent: 4}, true},
		{KeyLimits{RPM: -1}, false},
		{KeyLimits{TPM: MaxKeyLimit + 1}, false},
	} {
		if err := tc.k.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v", tc.k, err)
		}
	}
}
