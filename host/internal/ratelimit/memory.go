package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory keeps buckets in this process: exact for one replica.
type Memory struct {
	mu     sync.Mutex
	epoch  time.Time
	tat    map[string]time.Duration
	leases map[string]map[string]time.Duration
	sweep  time.Duration
	// now returns the time since epoch; tests replace it.
	now func() time.Duration
}

var _ Backend = (*Memory)(nil)

// NewMemory returns an empty in-memory backend.
func NewMemory() *Memory {
	m := &Memory{epoch: time.Now(), tat: map[string]time.Duration{}, leases: map[string]map[string]time.Duration{}}
	m.now = func() time.Duration { return time.Since(m.epoch) }
	return m
}

// Take implements Backend.
func (m *Memory) Take(_ context.Context, bs []Bucket) ([]State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.gc(now)
	out := make([]State, len(bs))
	ok := true
	for i, b := range bs {
		if b.Concurrent {
			held := m.leases[b.Key]
			n := int64(0)
			for _, exp := range held {
				if exp > now {
					n++
				}
			}
			out[i] = State{Allowed: n < b.Burst, Remaining: b.Burst - n - 1}
			if !out[i].Allowed {
				out[i].Remaining = 0
				out[i].RetryAfter = time.Second
				ok = false
			}
			continue
		}
		out[i] = gcra(m.tat[b.Key], now, b)
		ok = ok && out[i].Allowed
	}
	if !ok {
		for i := range out {
			if out[i].Allowed {
				// Nothing is charged: report the bucket as it stands.
				out[i] = uncharged(out[i], bs[i])
			}
		}
		return out, false, nil
	}
	for _, b := range bs {
		if b.Concurrent {
			if m.leases[b.Key] == nil {
				m.leases[b.Key] = map[string]time.Duration{}
			}
			m.leases[b.Key][b.Lease] = now + b.TTL
			continue
		}
		m.tat[b.Key] = max(m.tat[b.Key], now) + b.Interval*time.Duration(b.Cost)
	}
	return out, true, nil
}

// uncharged turns the state of a bucket that would have allowed its cost
// into its state when the decision as a whole was refused.
func uncharged(s State, b Bucket) State {
	s.Allowed = false
	s.Remaining += b.Cost
	if !b.Concurrent {
		s.ResetAfter = max(s.ResetAfter-b.Interval*time.Duration(b.Cost), 0)
	}
	return s
}

// gcra decides one bucket whose theoretical arrival time is tat.
func gcra(tat, now time.Duration, b Bucket) State {
	tat = max(tat, now)
	tolerance := b.Interval * time.Duration(b.Burst)
	newTAT := tat + b.Interval*time.Duration(b.Cost)
	allowAt := newTAT - tolerance
	if b.Cost > b.Burst {
		return State{RetryAfter: -1, Remaining: int64((now + tolerance - tat) / b.Interval), ResetAfter: tat - now}
	}
	if allowAt > now {
		return State{RetryAfter: allowAt - now, Remaining: int64((now + tolerance - tat) / b.Interval), ResetAfter: tat - now}
	}
	return State{Allowed: true, Remaining: int64((now + tolerance - newTAT) / b.Interval), ResetAfter: newTAT - now}
}

// gc drops buckets that are full again and expired leases, at most once a
// second.
func (m *Memory) gc(now time.Duration) {
	if now-m.sweep < time.Second {
		return
	}
	m.sweep = now
	for k, t := range m.tat {
		if t <= now {
			delete(m.tat, k)
		}
	}
	for k, held := range m.leases {
		for id, exp := range held {
			if exp <= now {
				delete(held, id)
			}
		}
		if len(held) == 0 {
			delete(m.leases, k)
		}
	}
}

// Adjust implements Backend.
func (m *Memory) Adjust(_ context.Context, b Bucket, delta int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	t := m.tat[b.Key]
	if delta > 0 {
		t = max(t, now)
	}
	t += b.Interval * time.Duration(delta)
	if t <= now {
		delete(m.tat, b.Key)
		return nil
	}
	m.tat[b.Key] = t
	return nil
}

// Release implements Backend.
func (m *Memory) Release(_ context.Context, b Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.leases[b.Key], b.Lease)
	return nil
}

// Close implements Backend.
func (m *Memory) Close() error { return nil }
