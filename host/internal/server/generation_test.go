package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// drainedWithin runs drained with a deadline and reports whether it
// returned nil before it.
func drainedWithin(drained func(context.Context) error, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return drained(ctx) == nil
}

// TestPublishWaitsForEveryEarlierRouting holds requests under successive
// routings and checks that a reload's drain waits for the requests of
// every earlier routing, not only the last.
func TestPublishWaitsForEveryEarlierRouting(t *testing.T) {
	s := New(Options{})
	first := s.gen.Load()
	first.acquire() // a long stream under the first routing
	drained1 := s.Publish(Routing{})
	if drainedWithin(drained1, 20*time.Millisecond) {
		t.Fatal("drained while a request of the first routing runs")
	}
	second := s.gen.Load()
	second.acquire()
	drained2 := s.Publish(Routing{})
	second.release()
	if drainedWithin(drained2, 20*time.Millisecond) {
		t.Fatal("the second reload drained while a request of the first routing still runs")
	}
	first.release()
	if !drainedWithin(drained1, time.Second) || !drainedWithin(drained2, time.Second) {
		t.Fatal("not drained once every earlier request finished")
	}
	// A routing nobody used drains at once.
	if !drainedWithin(s.Publish(Routing{}), time.Second) {
		t.Fatal("an idle routing did not drain")
	}
	if n := len(s.retired); n > 1 {
		t.Errorf("%d retired routings kept; idle ones must be dropped", n)
	}
}

// TestAbortCancelsWithShutdownCause checks that Abort cancels the plugin
// calls' contexts with ErrShuttingDown, which the stream writer turns
// into the shutdown error event.
func TestAbortCancelsWithShutdownCause(t *testing.T) {
	s := New(Options{RequestTimeout: time.Minute})
	r := &call{s: s}
	ctx, cancel := r.context()
	defer cancel()
	s.Abort()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("Abort did not cancel a running call")
	}
	if !errors.Is(context.Cause(ctx), ErrShuttingDown) {
		t.Errorf("cause %v, want ErrShuttingDown", context.Cause(ctx))
	}
	if e := shutdownError(); e.Status != 503 || e.Code != "server_shutting_down" {
		t.Errorf("shutdown error %+v", e)
	}
}
