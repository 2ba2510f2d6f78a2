package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmproxy/llmproxy/host/internal/redistest"
)

// replicas returns n limiters sharing one Redis, as n llmproxy processes
// would. Their decision timeout is generous: on a loaded machine a 50 ms
// budget times out healthy calls.
func replicas(t testing.TB, url string, n int, rules ...Rule) []*Limiter {
	var out []*Limiter
	for range n {
		b, err := NewRedis(url)
		if err != nil {
			t.Fatal(err)
		}
		l, err := New(Config{Rules: rules, Timeout: 250 * time.Millisecond}, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		out = append(out, l)
	}
	return out
}

func TestRedisSharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ls := replicas(t, srv.URL(), 2, Rule{Name: "k", Key: "*", RPM: 600})
	s := Subject{Key: "team-a"}
	var allowed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, l := range ls {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < time.Second {
					if _, d := l.Admit(context.Background(), s, Usage{}); d.Err != nil {
						t.Error(d.Err)
						return
					} else if d.Allowed {
						allowed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	// GCRA: the burst of 600, then one per 100 ms.
	lo, hi := 600+int64(time.Second/(100*time.Millisecond)), 600+int64(elapsed/(100*time.Millisecond))+1
	if n := allowed.Load(); n < lo-1 || n > hi+1 {
		t.Errorf("allowed %d over %v across 2 replicas, want %d..%d", n, elapsed, lo, hi)
	}
}

func TestRedisTokensAndConcurrency(t *testing.T) {
	srv := redistest.Start(t)
	ls := replicas(t, srv.URL(), 2, Rule{Name: "tpm", Key: "*", TPM: 1000}, Rule{Name: "conc", Key: "*", Concurrent: 1})
	s := Subject{Key: "a"}
	ctx := context.Background()
	tk, d := ls[0].Admit(ctx, s, Usage{Prompt: 100, MaxTokens: 400})
	if !d.Allowed || d.Tokens.Remaining != 500 {
		t.Fatalf("reservation: %+v", d)
	}
	if _, d := ls[1].Admit(ctx, s, Usage{Prompt: 1, MaxTokens: 1}); d.Allowed || d.Refused != "conc" {
		t.Fatalf("second replica ignored the lease: %+v", d)
	}
	tk.Done(100, true)
	tk, d = ls[1].Admit(ctx, s, Usage{Prompt: 100, MaxTokens: 800})
	if !d.Allowed || d.Tokens.Remaining > 0 {
		t.Fatalf("after the refund of 400: %+v", d)
	}
	tk.Done(0, false)
	_, d = ls[0].Admit(ctx, s, Usage{Prompt: 100, MaxTokens: 100})
	if d.Allowed || d.Refused != "tpm" || d.RetryAfter <= 0 {
		t.Fatalf("over the token limit: %+v", d)
	}
}

func TestRedisDownFailModes(t *testing.T) {
	srv := redistest.Start(t)
	open := replicas(t, srv.URL(), 1, Rule{Name: "open", Key: "*", RPS: 5})[0]
	closed := replicas(t, srv.URL(), 1, Rule{Name: "closed", Key: "*", RPS: 5, Fail: FailClosed})[0]
	ctx := context.Background()
	count := func(l *Limiter, key string, n int) (allowed, unavailable int) {
		for range n {
			_, d := l.Admit(ctx, Subject{Key: key}, Usage{})
			if d.Allowed {
				allowed++
			}
			if d.Unavailable {
				unavailable++
				if e := d.Error(); e.Code != "rate_limit_backend_unavailable" || e.Status != 429 {
					t.Errorf("unavailable error: %+v", e)
				}
			}
		}
		return
	}
	if a, _ := count(open, "x", 10); a != 5 {
		t.Fatalf("with redis up: %d of 10 allowed at 5 RPS", a)
	}
	srv.Stop()
	begin := time.Now()
	if a, u := count(open, "y", 20); a != 20 || u != 0 {
		t.Errorf("redis down, fail open: %d allowed, %d unavailable, want 20, 0", a, u)
	}
	if a, u := count(closed, "y", 20); a != 0 || u != 20 {
		t.Errorf("redis down, fail closed: %d allowed, %d unavailable, want 0, 20", a, u)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("40 decisions without redis took %v", took)
	}
	if st := open.Stats(); st.FailedOpen != 20 {
		t.Errorf("stats: %+v", st)
	}
	srv.Restart()
	// Exact again without a restart of the limiters.
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, d := open.Admit(ctx, Subject{Key: "probe"}, Usage{})
		if d.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis back, still failing: %v", d.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a, _ := count(open, "z", 10); a != 5 {
		t.Errorf("redis back, fail open: %d of 10 allowed, want 5", a)
	}
	if a, u := count(closed, "z", 10); a != 5 || u != 0 {
		t.Errorf("redis back, fail closed: %d allowed, %d unavailable, want 5, 0", a, u)
	}
}

func BenchmarkRedisDecision(b *testing.B) {
	srv := redistest.Start(b)
	l := replicas(b, srv.URL(), 1, Rule{Name: "k", Key: "*", RPM: 1e9, TPM: 1e12})[0]
	s := Subject{Key: "team-a", Model: "gpt-4o", Route: "gpt-4o"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, d := l.Admit(ctx, s, Usage{Prompt: 100, MaxTokens: 100})
		if !d.Allowed {
			b.Fatal(d)
		}
	}
}

// BenchmarkRedisPing is the round trip a Redis decision is compared with.
func BenchmarkRedisPing(b *testing.B) {
	srv := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRedisKeyLimitsShared checks that a key's own limits are one bucket
// across replicas sharing a Redis, including replicas without rules.
func TestRedisKeyLimitsShared(t *testing.T) {
	srv := redistest.Start(t)
	ls := replicas(t, srv.URL(), 2)
	s := Subject{Key: "team-a", KeyID: "key_a", Limits: &KeyLimits{RPM: 3, Concurrent: 1}}
	for i := range 3 {
		tk, d := ls[i%2].Admit(context.Background(), s, Usage{})
		if d == nil || d.Err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v", i+1, d)
		}
		if i == 0 {
			// The lease taken on one replica refuses on the other.
			if _, d := ls[1].Admit(context.Background(), s, Usage{}); d.Allowed || d.RefusedKind != "concurrent requests" {
				t.Fatalf("concurrent on the other replica: %+v", d)
			}
		}
		tk.Done(0, false)
	}
	for _, l := range ls {
		if _, d := l.Admit(context.Background(), s, Usage{}); d.Allowed || d.Refused != "key:key_a" || d.RefusedKind != "requests" {
			t.Fatalf("fourth request: %+v", d)
		}
	}
}
