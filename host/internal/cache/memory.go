package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Memory keeps entries in this process, least recently used evicted
// first once either bound is reached.
type Memory struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, memEntry]
	bytes    int64
	maxBytes int64
	now      func() time.Time
}

type memEntry struct {
	e       *Entry
	expires time.Time
}

var _ Backend = (*Memory)(nil)

// NewMemory returns a memory backend holding at most maxEntries entries
// and maxBytes bytes of answers.
func NewMemory(maxEntries int, maxBytes int64) (*Memory, error) {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil, errors.New("cache: max_entries and max_bytes must be positive")
	}
	m := &Memory{maxBytes: maxBytes, now: time.Now}
	l, err := simplelru.NewLRU[string, memEntry](maxEntries, func(_ string, v memEntry) { m.bytes -= v.e.Size() })
	if err != nil {
		return nil, err
	}
	m.lru = l
	return m, nil
}

// Get implements Backend.
func (m *Memory) Get(_ context.Context, key string) (*Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.lru.Get(key)
	if !ok {
		return nil, nil
	}
	if !m.now().Before(v.expires) {
		m.lru.Remove(key)
		return nil, nil
	}
	return v.e, nil
}

// Put implements Backend. An entry larger than the whole cache is not
// kept.
func (m *Memory) Put(_ context.Context, key string, e *Entry, ttl time.Duration) error {
	size := e.Size()
	if size > m.maxBytes {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
	m.lru.Add(key, memEntry{e: e, expires: m.now().Add(ttl)})
	m.bytes += size
	for m.bytes > m.maxBytes {
		if _, _, ok := m.lru.RemoveOldest(); !ok {
			break
		}
	}
	return nil
}

// Len returns the number of entries and the bytes they hold.
func (m *Memory) Len() (int, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len(), m.bytes
}

// Close implements Backend.
func (m *Memory) Close() error { return nil }
