package responses

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultRetention is how long a response is kept when the configuration
// does not say.
const DefaultRetention = 30 * 24 * time.Hour

// ErrNotFound is returned by Memory for a response that does not exist,
// has expired or belongs to another key.
var ErrNotFound = errors.New("response not found")

// Memory keeps stored responses in process, each until it expires. It is
// bounded in entries and in bytes: when full, storing a response first
// drops the expired ones, then those that expire soonest. Responses are
// lost on restart and are not shared between replicas; a database store
// serves those needs.
type Memory struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	size     int64
	entries  map[string]memoryEntry
	now      func() time.Time
}

type memoryEntry struct {
	owner   string
	body    []byte
	expires time.Time
}

// Defaults of NewMemory's bounds.
const (
	DefaultMemoryEntries = 10000
	DefaultMemoryBytes   = 256 << 20
)

// NewMemory returns an empty Memory holding at most max responses of at
// most maxBytes in all; zero or less means the default.
func NewMemory(max int, maxBytes int64) *Memory {
	if max <= 0 {
		max = DefaultMemoryEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMemoryBytes
	}
	return &Memory{max: max, maxBytes: maxBytes, entries: map[string]memoryEntry{}, now: time.Now}
}

// PutResponse stores body under id for owner until expires.
func (m *Memory) PutResponse(_ context.Context, id, owner string, body []byte, expires time.Time) error {
	if id == "" || owner == "" {
		return fmt.Errorf("responses: store %q for %q: id and owner are required", id, owner)
	}
	n := int64(len(body))
	if n > m.maxBytes {
		return fmt.Errorf("responses: store %q: %d bytes exceed the memory store's %d", id, n, m.maxBytes)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remove(id)
	m.evict(n)
	m.entries[id] = memoryEntry{owner: owner, body: append([]byte(nil), body...), expires: expires}
	m.size += n
	return nil
}

// remove deletes entry id if present.
func (m *Memory) remove(id string) {
	if e, ok := m.entries[id]; ok {
		m.size -= int64(len(e.body))
		delete(m.entries, id)
	}
}

// evict makes room for one more entry of n bytes: it drops the expired
// entries, then the ones that expire soonest.
func (m *Memory) evict(n int64) {
	if len(m.entries) < m.max && m.size+n <= m.maxBytes {
		return
	}
	now := m.now()
	for id, e := range m.entries {
		if !now.Before(e.expires) {
			m.remove(id)
		}
	}
	for len(m.entries) > 0 && (len(m.entries) >= m.max || m.size+n > m.maxBytes) {
		var soonest string
		var at time.Time
		for id, e := range m.entries {
			if soonest == "" || e.expires.Before(at) {
				soonest, at = id, e.expires
			}
		}
		m.remove(soonest)
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
		m.remove(id)
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
	m.remove(id)
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
