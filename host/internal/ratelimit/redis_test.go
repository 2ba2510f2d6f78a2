package ratelimit

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a private redis-server on a fixed free port, which a test
// can stop and start again.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &redisServer{t: t, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatal("redis-server not found: install it with `apt-get install -y redis-server`")
	}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// replicas returns n limiters sharing one Redis, as n llmproxy processes
// would.
func replicas(t testing.TB, url string, n int, rules ...Rule) []*Limiter {
	var out []*Limiter
	for range n {
		b, err := NewRedis(url)
		if err != nil {
			t.Fatal(err)
		}
		l, err := New(Config{Rules: rules, Timeout: 50 * time.Millisecond}, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		out = append(out, l)
	}
	return out
}

func TestRedisSharedAcrossReplicas(t *testing.T) {
	srv := startRedis(t)
	ls := replicas(t, srv.url(), 2, Rule{Name: "k", Key: "*", RPM: 600})
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
	srv := startRedis(t)
	ls := replicas(t, srv.url(), 2, Rule{Name: "tpm", Key: "*", TPM: 1000}, Rule{Name: "conc", Key: "*", Concurrent: 1})
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
	srv := startRedis(t)
	open := replicas(t, srv.url(), 1, Rule{Name: "open", Key: "*", RPS: 5})[0]
	closed := replicas(t, srv.url(), 1, Rule{Name: "closed", Key: "*", RPS: 5, Fail: FailClosed})[0]
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
	srv.stop()
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
	srv.start()
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
	srv := startRedis(b)
	l := replicas(b, srv.url(), 1, Rule{Name: "k", Key: "*", RPM: 1e9, TPM: 1e12})[0]
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
	srv := startRedis(b)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.port)})
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
	srv := startRedis(t)
	ls := replicas(t, srv.url(), 2)
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
