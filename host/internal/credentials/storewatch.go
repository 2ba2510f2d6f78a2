package credentials

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// WatchBackend is a Backend that can watch a reference: Watch calls
// changed with each new version until ctx ends (nil) or the watch breaks
// (its error). A store that cannot watch answers with an error wrapping
// errors.ErrUnsupported.
type WatchBackend interface {
	Backend
	Watch(ctx context.Context, ref map[string]string, changed func(version string)) error
}

// Store watch backoff: a broken watch is opened again after
// watchBackoffMin, doubling to watchBackoffMax while it keeps breaking.
const (
	watchBackoffMin = 250 * time.Millisecond
	watchBackoffMax = 30 * time.Second
)

// StoreWatch is the set of watches WatchStores opened.
type StoreWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Close ends the watches and waits for them. It is safe to call on a nil
// StoreWatch.
func (w *StoreWatch) Close() {
	if w == nil {
		return
	}
	w.cancel()
	w.wg.Wait()
}

// WatchStores watches every reference that creds read from a store
// able to watch, each once, and calls fn after each change: fn should
// resolve again and compare, as for file watches. A store that cannot
// watch is left to its polls. A watch that breaks (the store restarted,
// a network error) is reported with logf and opened again after a
// backoff. It returns nil when there is nothing to watch.
func (r Resolver) WatchStores(creds []config.Credential, fn func(), logf func(msg string, args ...any)) *StoreWatch {
	if r.Backends == nil {
		return nil
	}
	type target struct {
		name string
		b    WatchBackend
		ref  map[string]string
	}
	var targets []target
	seen := map[string]bool{}
	for _, c := range creds {
		for _, s := range c.Sources {
			switch s.Kind {
			case "env", "file", "value":
				continue
			}
			wb, ok := r.Backends(s.Kind).(WatchBackend)
			if !ok {
				continue
			}
			ref := s.Reference()
			key := s.Kind + "\x00" + fmt.Sprint(ref)
			if !seen[key] {
				seen[key] = true
				targets = append(targets, target{name: (&backendSource{backend: s.Kind, ref: ref}).String(), b: wb, ref: ref})
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &StoreWatch{cancel: cancel}
	for _, t := range targets {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			watchLoop(ctx, t.name, t.b, t.ref, fn, logf)
		}()
	}
	return w
}

func watchLoop(ctx context.Context, name string, b WatchBackend, ref map[string]string, fn func(), logf func(string, ...any)) {
	backoff := time.Duration(0)
	for {
		events, opened := 0, time.Now()
		err := b.Watch(ctx, ref, func(string) {
			events++
			fn()
		})
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errors.ErrUnsupported):
			return
		}
		if events > 0 {
			backoff = 0
		}
		backoff = min(max(backoff*2, watchBackoffMin), watchBackoffMax)
		if err == nil {
			err = errors.New("the watch ended")
		}
		logf("credential store watch broke; opening it again", "source", name, "error", err.Error(), "retry_in", backoff.String())
		if events > 0 || time.Since(opened) > time.Second {
			// The watch was up: the value may change while nothing
			// watches it.
			fn()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}
