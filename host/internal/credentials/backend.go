package credentials

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Backend is a secrets store declared by a `secrets` block and served by a
// secrets plugin. Resolve returns an error wrapping ErrNotFound when the
// store does not hold the reference ("unavailable": the next source is
// tried) and any other error when the store failed ("failed": the chain
// stops and the error is reported).
type Backend interface {
	Resolve(ctx context.Context, ref map[string]string) (Secret, error)
}

// Secret is what a Backend resolved.
type Secret struct {
	// Values are the secret's fields.
	Values map[string]string
	// Version identifies the value; it changes when the value does.
	Version string
	// Expires is when the values stop working; zero when they do not
	// expire by themselves.
	Expires time.Time
	// RefreshAfter is when the store asks to be polled again although
	// the values do not expire; zero for no poll.
	RefreshAfter time.Time
	// LeaseID names the store's lease on the values, if any: it can be
	// renewed (when Renewable) and revoked through a LeaseBackend.
	LeaseID   string
	Renewable bool
}

// Rotations of values from a secrets backend: RotationLeased values
// expire and are resolved again before they do; RotationPolled values do
// not expire but the store asked to be read again from time to time.
const (
	RotationLeased Rotation = "leased"
	RotationPolled Rotation = "polled"
)

// backendSource is a `from "<secrets block>" { ... }` source.
type backendSource struct {
	backend string
	b       Backend
	ref     map[string]string
	field   string
}

func (s *backendSource) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.ref)) {
		parts = append(parts, k+"="+s.ref[k])
	}
	if s.field != "" {
		parts = append(parts, "field="+s.field)
	}
	return fmt.Sprintf("%s (%s)", s.backend, strings.Join(parts, ", "))
}

// Resolve implements Source.
func (s *backendSource) Resolve(ctx context.Context) (string, error) {
	v, _, err := s.resolve(ctx)
	return v, err
}

// resolve reads the reference (once per resolution, see withReadCache)
// and picks the field, or the only value when no field is named.
func (s *backendSource) resolve(ctx context.Context) (string, Secret, error) {
	sec, err := cachedRead(ctx, s)
	if err != nil {
		return "", Secret{}, err
	}
	if s.field != "" {
		v, ok := sec.Values[s.field]
		if !ok || v == "" {
			return "", sec, fmt.Errorf("the secret has no field %q (it has %s): %w", s.field, strings.Join(slices.Sorted(maps.Keys(sec.Values)), ", "), ErrNotFound)
		}
		return v, sec, nil
	}
	switch len(sec.Values) {
	case 0:
		return "", sec, fmt.Errorf("the secret is empty: %w", ErrNotFound)
	case 1:
		for _, v := range sec.Values {
			return v, sec, nil
		}
	}
	return "", sec, fmt.Errorf("the secret has several fields (%s); name one with field = ...", strings.Join(slices.Sorted(maps.Keys(sec.Values)), ", "))
}

type cacheKey struct{}

type readCache struct {
	mu   sync.Mutex
	done map[string]readResult
}

type readResult struct {
	sec Secret
	err error
}

// withReadCache makes the backend reads under ctx happen once per
// backend and reference.
func withReadCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, cacheKey{}, &readCache{done: map[string]readResult{}})
}

func cachedRead(ctx context.Context, s *backendSource) (Secret, error) {
	c, _ := ctx.Value(cacheKey{}).(*readCache)
	if c == nil {
		return s.b.Resolve(ctx, s.ref)
	}
	key := s.backend + "\x00" + fmt.Sprint(s.ref)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.done[key]; ok {
		return r.sec, r.err
	}
	sec, err := s.b.Resolve(ctx, s.ref)
	c.done[key] = readResult{sec, err}
	return sec, err
}
