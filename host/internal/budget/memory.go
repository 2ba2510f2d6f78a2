package budget

import (
	"context"
	"sync"
	"time"
)

// Memory keeps the counters in this process: exact for one replica.
type Memory struct {
	mu       sync.Mutex
	counters map[string]*counter
	// now is the clock for dropping ended windows; swept is when they
	// were last dropped (at most once a minute).
	now   func() time.Time
	swept time.Time
}

type counter struct {
	n      int64
	expire time.Time
}

var _ Backend = (*Memory)(nil)

// NewMemory returns an empty in-memory backend.
func NewMemory() *Memory {
	return &Memory{counters: map[string]*counter{}, now: time.Now}
}

// Take implements Backend.
func (m *Memory) Take(_ context.Context, slots []Slot, amount int64) (int, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked()
	for i, s := range slots {
		var n int64
		if c := m.counters[s.Key]; c != nil {
			n = c.n
		}
		if n+amount > s.Limit {
			return i, n, nil
		}
	}
	m.addLocked(slots, amount)
	return -1, 0, nil
}

// Adjust implements Backend.
func (m *Memory) Adjust(_ context.Context, slots []Slot, delta int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked(slots, delta)
	return nil
}

// Spent implements Backend.
func (m *Memory) Spent(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counters[key]; c != nil {
		return c.n, nil
	}
	return 0, nil
}

func (m *Memory) addLocked(slots []Slot, delta int64) {
	for _, s := range slots {
		c := m.counters[s.Key]
		if c == nil {
			c = &counter{expire: s.Expire}
			m.counters[s.Key] = c
		}
		c.n += delta
	}
}

// sweepLocked drops the counters of windows past their expiry.
func (m *Memory) sweepLocked() {
	now := m.now()
	if now.Sub(m.swept) < time.Minute {
		return
	}
	m.swept = now
	for k, c := range m.counters {
		if !c.expire.IsZero() && now.After(c.expire) {
			delete(m.counters, k)
		}
	}
}
