package document

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFlightSurvivesTheFirstCallerLeaving checks that the shared work
// does not run on the first caller's context: the first caller going
// away fails only itself, the second gets the result.
func TestFlightSurvivesTheFirstCallerLeaving(t *testing.T) {
	var g flight
	release := make(chan struct{})
	var runs atomic.Int64
	fn := func(ctx context.Context) (*Entry, error) {
		runs.Add(1)
		select {
		case <-release:
			return &Entry{Name: "shared"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	first, cancelFirst := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.do(first, "k", time.Minute, fn)
		errc <- err
	}()
	waitFor(t, func() bool { return runs.Load() == 1 })
	got := make(chan *Entry, 1)
	go func() {
		e, _ := g.do(context.Background(), "k", time.Minute, fn)
		got <- e
	}()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.calls["k"] != nil && g.calls["k"].waiters == 2 })
	cancelFirst()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: err = %v, want context.Canceled", err)
	}
	close(release)
	select {
	case e := <-got:
		if e == nil || e.Name != "shared" {
			t.Fatalf("second caller got %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second caller never got the result")
	}
	if runs.Load() != 1 {
		t.Errorf("work ran %d times, want once", runs.Load())
	}
}

// TestFlightCancelledWhenAllCallersLeave checks that the work stops when
// nobody waits for it any more, and that a later caller starts afresh.
func TestFlightCancelledWhenAllCallersLeave(t *testing.T) {
	var g flight
	stopped := make(chan error, 1)
	started := make(chan struct{}, 1)
	fn := func(ctx context.Context) (*Entry, error) {
		started <- struct{}{}
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.do(ctx, "k", time.Minute, fn)
		}()
	}
	<-started
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.calls["k"] != nil && g.calls["k"].waiters == 3 })
	cancel()
	wg.Wait()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("work ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("work still running after every caller left")
	}
	e, err := g.do(context.Background(), "k", time.Minute, func(context.Context) (*Entry, error) { return &Entry{Name: "fresh"}, nil })
	if err != nil || e.Name != "fresh" {
		t.Fatalf("later caller: %+v, %v; want a fresh run", e, err)
	}
}

// TestFlightHasItsOwnDeadline checks that the shared work is bounded by
// its own timeout even when every caller waits forever.
func TestFlightHasItsOwnDeadline(t *testing.T) {
	var g flight
	_, err := g.do(context.Background(), "k", 50*time.Millisecond, func(ctx context.Context) (*Entry, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

// TestResolveURLWaitersIndependent resolves one slow URL from two
// requests; the first request is cancelled and the second still gets the
// document, fetched once.
func TestResolveURLWaitersIndependent(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("slow text"))
	}))
	r := newTestResolver(t, Config{}, Options{})
	body := chatBody(`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/slow.txt"}}`)
	first, cancelFirst := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := r.Resolve(first, body, ResolveOptions{})
		errc <- err
	}()
	waitFor(t, func() bool { return srv.requests.Load() == 1 })
	type result struct {
		text string
		err  error
	}
	second := make(chan result, 1)
	go func() {
		_, docs, err := r.Resolve(context.Background(), body, ResolveOptions{})
		if err != nil {
			second <- result{err: err}
			return
		}
		second <- result{text: docs[0].Text}
	}()
	waitFor(t, func() bool {
		r.flight.mu.Lock()
		defer r.flight.mu.Unlock()
		for _, c := range r.flight.calls {
			return c.waiters == 2
		}
		return false
	})
	cancelFirst()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("first request: err = %v, want context.Canceled", err)
	}
	close(release)
	res := <-second
	if res.err != nil || res.text != "slow text" {
		t.Fatalf("second request: %+v", res)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("fetched %d times, want once", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFlightPanicIsAnError checks that a panic in the shared work fails
// its callers instead of the process.
func TestFlightPanicIsAnError(t *testing.T) {
	var g flight
	_, err := g.do(context.Background(), "k", time.Minute, func(context.Context) (*Entry, error) { panic("broken fetch") })
	if err == nil || !strings.Contains(err.Error(), "broken fetch") {
		t.Fatalf("err = %v, want the panic as an error", err)
	}
}
