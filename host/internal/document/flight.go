package document

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// flight shares one piece of work (a URL fetch and its extraction) among
// the concurrent requests that need it. Unlike a plain single-flight
// group, the work does not run on the first caller's context: it gets a
// context of its own, detached from every caller's cancellation but
// carrying the first caller's values, with its own deadline. A caller
// that goes away stops waiting without failing the others; the work is
// cancelled only when every caller has gone, and a caller arriving after
// that starts it afresh.
type flight struct {
	mu    sync.Mutex
	calls map[string]*call
}

// call is one piece of shared work in progress.
type call struct {
	done    chan struct{}
	entry   *Entry
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn once per key among concurrent callers and returns its
// result to each of them, or ctx's error to a caller whose ctx ends
// first.
func (g *flight) do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (*Entry, error)) (*Entry, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*call{}
	}
	c, ok := g.calls[key]
	if !ok {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		c = &call{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go func() {
			defer cancel()
			e, err := guarded(wctx, fn)
			g.mu.Lock()
			c.entry, c.err = e, err
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.entry, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

// guarded runs fn, turning a panic into an error: the work runs on a
// goroutine of its own, where a panic would end the host.
func guarded(ctx context.Context, fn func(context.Context) (*Entry, error)) (e *Entry, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("documents: shared fetch panicked: %v", r)
		}
	}()
	return fn(ctx)
}
