package responses

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotFound is returned by Memory for a response that does not exist,
// has expired or belongs to another key.
var ErrNotFound = errors.New("response not found")

// Memory keeps stored responses in process, each until it expires. It is
// bounded: when full, storing a response first drops the expired ones,
// then the one that expires soonest. Responses are lost on restart and
// are not shared between replicas; a database store serves those needs.
type Memory struct {
	mu      sync.Mutex
	max     int
	entries map[string]memoryEntry
	now     func() time.Time
}

type memoryEntry struct {
	owner   string
	body    []byte
	expires time.Time
}

// DefaultMemoryEntries bounds a Memory created with max <= 0.
const DefaultMemoryEntries = 10000

// NewMemory returns an empty Memory holding at most max responses.
func NewMemory(max int) *Memory {
	if max <= 0 {
		max = DefaultMemoryEntries
	}
	return &Memory{max: max, entries: map[string]memoryEntry{}, now: time.Now}
}

// PutResponse stores body under id for owner until expires.
func (m *Memory) PutResponse(_ context.Context, id, owner string, body []byte, expires time.Time) error {
	if id == "" || owner == "" {
		return fmt.Errorf("responses: store %q for %q: id and owner are required", id, owner)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[id]; !ok && len(m.entries) >= m.max {
		m.evict()
	}
	m.entries[id] = memoryEntry{owner: owner, body: append([]byte(nil), body...), expires: expires}
	return nil
}

// evict drops the expired entries, or when none has expired the one that
// expires soonest.
func (m *Memory) evict() {
	now := m.now()
	var soonest string
	var at time.Time
	for id, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, id)
			continue
		}
		if soonest == "" || e.expires.Before(at) {
			soonest, at = id, e.expires
		}
	}
	if len(m.entries) >= m.max && soonest != "" {
		delete(m.entries, soonest)
	}
}

// GetResponse returns the body stored under id for owner.
func (m *Memory) GetResponse(_ context.Context, id, owner string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	switch {
	case !ok || e.owner != owner:
		return nil, fmt.Errorf("responses: %q: %w", id, ErrNotFound)
	case !m.now().Before(e.expires):
		delete(m.entries, id)
		return nil, fmt.Errorf("responses: %q: %w", id, ErrNotFound)
	}
	return append([]byte(nil), e.body...), nil
}

// DeleteResponse removes the response stored under id for owner.
func (m *Memory) DeleteResponse(_ context.Context, id, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok || e.owner != owner || !m.now().Before(e.expires) {
		return fmt.Errorf("responses: %q: %w", id, ErrNotFound)
	}
	delete(m.entries, id)
	return nil
}

// IsNotFound reports whether err says the response is not there.
func (m *Memory) IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// Len returns how many responses are held, expired ones included until
// they are dropped.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
