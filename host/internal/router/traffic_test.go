package router

import (
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

func twoTargets(strategy string) []config.Route {
	return []config.Route{{Model: "m", Strategy: strategy, StickyHeader: "X-Session-Id", Targets: []config.Target{
		{Instance: "a", Price: 3}, {Instance: "b", Price: 1},
	}}}
}

func first(t *testing.T, r *Router, session string) string {
	t.Helper()
	return r.Lookup("m").PlanFor("m", session)[0].Instance
}

func TestLeastBusy(t *testing.T) {
	r, _ := New(twoTargets("least_busy"), nil)
	c, _ := r.Instance("a").Begin()
	for range 20 {
		if got := first(t, r, ""); got != "b" {
			t.Fatalf("with one attempt in flight on a, least_busy picked %s", got)
		}
	}
	c.End(false)
	seen := map[string]bool{}
	for range 50 {
		seen[first(t, r, "")] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("idle targets are not shared: %v", seen)
	}
}

func TestLatency(t *testing.T) {
	r, _ := New(twoTargets("latency"), nil)
	r.Instance("a").observe(80 * time.Millisecond)
	r.Instance("b").observe(10 * time.Millisecond)
	n := 0
	for range 1000 {
		if first(t, r, "") == "b" {
			n++
		}
	}
	// The fastest first, except for the exploration share (half of
	// which lands on b anyway).
	if n < 930 || n == 1000 {
		t.Errorf("latency picked the fast target %d times of 1000, want about %d", n, 1000-int(exploreShare*1000/2))
	}
	r.Instance("b").observe(200 * time.Millisecond)
	if got := r.Instance("b").Latency(); got != 48*time.Millisecond {
		t.Errorf("EWMA after 10ms then 200ms = %v, want 48ms", got)
	}
}

func TestCost(t *testing.T) {
	routes := twoTargets("cost")
	routes[0].Targets = append(routes[0].Targets, config.Target{Instance: "c"})
	r, _ := New(routes, nil)
	plan := r.Lookup("m").Plan("m")
	if plan[0].Instance != "b" || plan[1].Instance != "a" || plan[2].Instance != "c" {
		t.Errorf("cost order = %v, want b (1), a (3), c (unpriced)", plan)
	}
}

func TestSticky(t *testing.T) {
	r, _ := New(twoTargets("round_robin"), nil)
	seen := map[string]bool{}
	for i := range 40 {
		session := string(rune('A' + i))
		want := first(t, r, session)
		seen[want] = true
		for range 5 {
			if got := first(t, r, session); got != want {
				t.Fatalf("session %s moved from %s to %s", session, want, got)
			}
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("sessions all hash to one target: %v", seen)
	}
}

func TestBreaker(t *testing.T) {
	p := config.BreakerPolicy{Enabled: true, ConsecutiveFailures: 3, MinRequests: 4, ErrorRate: 0.5,
		Window: time.Minute, Cooldown: time.Second, MaxCooldown: 3 * time.Second}
	var b breaker
	b.p = p
	now := time.Unix(1000, 0)
	fail := func(failed bool) {
		if !b.allow(now) {
			t.Fatalf("not allowed at %v (state %s)", now, b.state)
		}
		b.record(now, failed)
	}
	fail(true)
	fail(true)
	fail(false)
	if b.state == Open {
		t.Fatalf("state %s after 3 requests, below min_requests", b.state)
	}
	fail(true)
	// 3 of 4 failed: over the error rate of 0.5 with 4 requests, though
	// never 3 in a row.
	if b.state != Open || b.ejections != 1 {
		t.Fatalf("state %s, ejections %d; want open after 3 failures in 4", b.state, b.ejections)
	}
	if b.allow(now.Add(999 * time.Millisecond)) {
		t.Fatal("allowed during the cooldown")
	}
	now = now.Add(time.Second)
	fail(true) // the half-open probe fails
	if b.state != Open || b.cooldown != 2*time.Second {
		t.Fatalf("after a failed probe: state %s, cooldown %v", b.state, b.cooldown)
	}
	now = now.Add(2 * time.Second)
	if !b.allow(now) {
		t.Fatal("no probe after the doubled cooldown")
	}
	if b.allow(now) {
		t.Fatal("a second probe while the first runs")
	}
	b.record(now, true)
	if b.cooldown != 3*time.Second {
		t.Fatalf("cooldown %v, want the 3s cap", b.cooldown)
	}
	now = now.Add(3 * time.Second)
	fail(false)
	if b.state != Closed || b.cooldown != 0 {
		t.Fatalf("after a good probe: state %s cooldown %v", b.state, b.cooldown)
	}
	// Consecutive failures alone also eject.
	b.p.ErrorRate = 0
	for range 3 {
		fail(true)
	}
	if b.state != Open || b.cooldown != time.Second {
		t.Fatalf("after 3 consecutive failures: state %s cooldown %v", b.state, b.cooldown)
	}
}

func TestBreakerDisabled(t *testing.T) {
	r, _ := New(twoTargets("failover"), nil)
	in := r.Instance("a")
	for range 100 {
		c, ok := in.Begin()
		if !ok {
			t.Fatal("ejected without a circuit_breaker block")
		}
		c.End(true)
	}
	if st := in.Circuit(); st.State != Closed || st.InFlight != 0 {
		t.Errorf("circuit %+v", st)
	}
}

func TestRetryBudget(t *testing.T) {
	routes := twoTargets("failover")
	routes[0].Retry = &config.Retry{Budget: 0.5}
	r, _ := New(routes, nil)
	rt := r.Lookup("m")
	n := 0
	for rt.SpendRetry() {
		n++
	}
	if n != maxRetryTokens {
		t.Fatalf("initial allowance %d, want %d", n, maxRetryTokens)
	}
	for range 10 {
		rt.Admitted()
	}
	n = 0
	for rt.SpendRetry() {
		n++
	}
	if n != 5 {
		t.Errorf("after 10 requests at budget 0.5: %d retries, want 5", n)
	}
}
