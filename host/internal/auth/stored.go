package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/store"
)

// Rights returns the key's rights lists: model patterns, passthrough
// instance patterns, storage instance patterns and storage operations.
// The caller must not modify them.
func (k *Key) Rights() (models, passthrough, instances, storageOps []string) {
	ops := make([]string, 0, len(k.storageOps))
	for op := range k.storageOps {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return k.models, k.passthrough, k.instances, ops
}

// List returns the keys of the config file, by name.
func (ks *Keys) List() []*Key {
	if ks == nil {
		return nil
	}
	out := make([]*Key, 0, len(ks.byDigest))
	for _, k := range ks.byDigest {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ByName returns the config file's key called name, or nil.
func (ks *Keys) ByName(name string) *Key {
	if ks == nil {
		return nil
	}
	for _, k := range ks.byDigest {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// FromStore returns the Key a stored key authenticates as.
func FromStore(sk *store.Key) (*Key, error) {
	k := &Key{Name: sk.Name, Admin: sk.Admin, Group: sk.Group, Budget: sk.Budget, ID: sk.ID, digest: sk.Digest,
		models: sk.Models, passthrough: sk.Passthrough, instances: sk.Instances, storageOps: map[string]bool{}}
	if !sk.Limits.Empty() {
		k.Limits = sk.Limits
	}
	for _, op := range sk.StorageOps {
		if op != "*" && !slices.Contains(config.StorageOps, op) {
			return nil, fmt.Errorf("stored key %q: unknown storage operation %q", sk.ID, op)
		}
		k.storageOps[op] = true
	}
	return k, nil
}

// cacheSize bounds the stored keys (and unknown secrets) remembered.
const cacheSize = 4096

// Stored authenticates the keys of a store. Keys are cached by digest
// together with the store's key change counter (store.KeysVersion) at
// the time they were read. Each lookup reads the counter (one primary key
// read, shared by the lookups that arrive while it runs) and uses the
// cached key only while the counter is unchanged, so a key created,
// changed or revoked on any replica is seen by the next request on every
// replica. Keys of the config file never reach Stored.
type Stored struct {
	st store.Store
	// base is the parent of counter reads, which outlive no request's
	// cancellation but their own timeout.
	base  context.Context
	now   func() time.Time
	cache *lru.Cache[[32]byte, cached]

	mu sync.Mutex
	// running is the counter read in flight; pending collects the
	// lookups that arrived after it started and so need a fresh one.
	running, pending *versionRead
}

// cached is a stored key as read at version, or a secret unknown at
// version (key and stored nil).
type cached struct {
	version int64
	stored  *store.Key
	key     *Key
}

type versionRead struct {
	done    chan struct{}
	version int64
	err     error
}

// NewStored returns a Stored over st.
func NewStored(st store.Store) *Stored {
	c, _ := lru.New[[32]byte, cached](cacheSize)
	return &Stored{st: st, base: context.Background(), now: time.Now, cache: c}
}

// ErrStore is wrapped by the errors of Lookup when the store cannot be
// read.
var ErrStore = errors.New("the key store is unavailable")

// Lookup returns the active stored key whose secret is presented, or nil
// if there is none (unknown, revoked or expired).
func (s *Stored) Lookup(ctx context.Context, secret []byte) (*Key, error) {
	if len(secret) == 0 {
		return nil, nil
	}
	d := sha256.Sum256(secret)
	v, err := s.version(ctx)
	if err != nil {
		return nil, err
	}
	c, ok := s.cache.Get(d)
	if !ok || c.version != v {
		sk, err := s.st.KeyByDigest(ctx, d)
		switch {
		case errors.Is(err, store.ErrNotFound):
			c = cached{version: v}
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrStore, err)
		default:
			k, err := FromStore(sk)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrStore, err)
			}
			c = cached{version: v, stored: sk, key: k}
		}
		s.cache.Add(d, c)
	}
	if c.key == nil || !c.stored.Active(s.now()) || subtle.ConstantTimeCompare(c.key.digest[:], d[:]) != 1 {
		return nil, nil
	}
	return c.key, nil
}

// version returns the key change counter as read by a query that started
// after the call: lookups arriving while a read runs wait for the next
// one, which they share.
func (s *Stored) version(ctx context.Context) (int64, error) {
	s.mu.Lock()
	var r *versionRead
	if s.running == nil {
		r = &versionRead{done: make(chan struct{})}
		s.running = r
		s.mu.Unlock()
		go s.read(r)
	} else {
		if s.pending == nil {
			s.pending = &versionRead{done: make(chan struct{})}
		}
		r = s.pending
		s.mu.Unlock()
	}
	select {
	case <-r.done:
		if r.err != nil {
			return 0, fmt.Errorf("%w: %w", ErrStore, r.err)
		}
		return r.version, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// read runs r and then the reads that queued behind it.
func (s *Stored) read(r *versionRead) {
	for r != nil {
		ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
		r.version, r.err = s.st.KeysVersion(ctx)
		cancel()
		s.mu.Lock()
		s.running, s.pending = s.pending, nil
		next := s.running
		s.mu.Unlock()
		close(r.done)
		r = next
	}
}
