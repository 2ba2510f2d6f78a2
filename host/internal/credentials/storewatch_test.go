package credentials

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// watchStore is a WatchBackend whose watches send one event, then break
// (the first two) or last until cancelled.
type watchStore struct {
	storeBackend
	opened atomic.Int32
}

func (w *watchStore) Watch(ctx context.Context, ref map[string]string, changed func(string)) error {
	n := w.opened.Add(1)
	changed("v")
	if n <= 2 {
		return errors.New("watch expired: 410 Gone")
	}
	<-ctx.Done()
	return nil
}

func TestWatchStores(t *testing.T) {
	ws := &watchStore{}
	r := Resolver{Backends: func(name string) Backend {
		switch name {
		case "kube":
			return ws
		case "vault":
			return &storeBackend{}
		}
		return nil
	}}
	creds := []config.Credential{
		{Name: "a", Sources: []config.Source{{Kind: "vault", Path: "secret/x"}, {Kind: "kube", Secret: "s", Key: "a"}}},
		{Name: "b", Sources: []config.Source{{Kind: "kube", Secret: "s", Key: "a"}, {Kind: "env", Name: "X"}}},
	}
	var calls atomic.Int32
	var logged atomic.Int32
	w := r.WatchStores(creds, func() { calls.Add(1) }, func(string, ...any) { logged.Add(1) })
	if w == nil {
		t.Fatal("no watch for a store that can watch")
	}
	deadline := time.Now().Add(5 * time.Second)
	for ws.opened.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	if ws.opened.Load() != 3 {
		t.Errorf("opened %d watches; want one reference watched once, reopened after each of two breaks", ws.opened.Load())
	}
	if calls.Load() < 3 || logged.Load() != 2 {
		t.Errorf("fn called %d times, %d breaks logged; want a call per event and two logged breaks", calls.Load(), logged.Load())
	}
	if (Resolver{Backends: func(string) Backend { return &storeBackend{} }}).WatchStores(creds, func() {}, nil) != nil {
		t.Error("a watch for stores that cannot watch")
	}
}
