package router

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// Instance is what the router observes of one provider instance: requests
// in flight (least_busy), a moving average of the time to the first byte
// (latency) and its circuit breaker. It is local to this replica.
type Instance struct {
	Name     string
	inflight atomic.Int64
	ttfb     atomic.Uint64 // math.Float64bits of the EWMA in seconds; 0 = unmeasured
	breaker  breaker
}

// ewmaWeight is the weight of the newest sample in the latency average.
const ewmaWeight = 0.2

// InFlight returns the attempts running against the instance.
func (in *Instance) InFlight() int64 { return in.inflight.Load() }

// Latency returns the moving average of the time to the first byte, zero
// before the first measurement.
func (in *Instance) Latency() time.Duration {
	return time.Duration(math.Float64frombits(in.ttfb.Load()) * float64(time.Second))
}

func (in *Instance) observe(d time.Duration) {
	x := d.Seconds()
	for {
		old := in.ttfb.Load()
		v := x
		if old != 0 {
			v = ewmaWeight*x + (1-ewmaWeight)*math.Float64frombits(old)
		}
		if in.ttfb.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}

// Begin starts an attempt against the instance. It returns false, and no
// Call, when the instance's circuit is open (or half-open with its probe
// already running): the attempt must be skipped.
func (in *Instance) Begin() (*Call, bool) {
	now := time.Now()
	if !in.breaker.allow(now) {
		return nil, false
	}
	in.inflight.Add(1)
	return &Call{in: in, start: now}, true
}

// Call is one attempt against an instance.
type Call struct {
	in    *Instance
	start time.Time
	first bool
	once  sync.Once
}

// FirstByte records that the answer began.
func (c *Call) FirstByte() {
	if c == nil || c.first {
		return
	}
	c.first = true
	c.in.observe(time.Since(c.start))
}

// End records the attempt's outcome: failed is true when the instance
// (not the client's request) was at fault. Only the first End counts.
func (c *Call) End(failed bool) {
	if c == nil {
		return
	}
	c.once.Do(func() {
		c.in.inflight.Add(-1)
		c.in.breaker.record(time.Now(), failed)
	})
}

// Circuit states.
const (
	Closed   = "closed"
	Open     = "open"
	HalfOpen = "half_open"
)

// breaker ejects an instance after consecutive failures or an error rate
// over a window, for a cooldown that doubles with each ejection in a row;
// after the cooldown one probe request is let through (half-open), whose
// success closes the circuit and whose failure opens it again.
type breaker struct {
	mu          sync.Mutex
	p           config.BreakerPolicy
	state       string
	consecutive int
	until       time.Time
	cooldown    time.Duration
	ejections   int
	probing     bool
	winStart    time.Time
	cur, prev   counts
}

type counts struct{ total, failed int }

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.p.Enabled {
		return true
	}
	switch b.state {
	case Open:
		if now.Before(b.until) {
			return false
		}
		b.state = HalfOpen
		fallthrough
	case HalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
	}
	return true
}

func (b *breaker) record(now time.Time, failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.p.Enabled {
		return
	}
	switch b.state {
	case HalfOpen:
		b.probing = false
		if failed {
			b.open(now, min(2*b.cooldown, b.p.MaxCooldown))
			return
		}
		b.state, b.consecutive, b.cooldown = Closed, 0, 0
		b.winStart, b.cur, b.prev = now, counts{}, counts{}
		return
	case Open:
		// An attempt that began before the ejection.
		return
	}
	b.roll(now)
	b.cur.total++
	if failed {
		b.cur.failed++
		b.consecutive++
	} else {
		b.consecutive = 0
	}
	if failed && (b.consecutive >= b.p.ConsecutiveFailures || b.overRate(now)) {
		next := b.p.Cooldown
		if b.cooldown > 0 {
			next = min(2*b.cooldown, b.p.MaxCooldown)
		}
		b.open(now, next)
	}
}

func (b *breaker) open(now time.Time, cooldown time.Duration) {
	b.state, b.cooldown, b.until = Open, cooldown, now.Add(cooldown)
	b.ejections++
	b.consecutive = 0
}

// roll moves the window forward.
func (b *breaker) roll(now time.Time) {
	switch d := now.Sub(b.winStart); {
	case b.winStart.IsZero() || d >= 2*b.p.Window:
		b.winStart, b.cur, b.prev = now, counts{}, counts{}
	case d >= b.p.Window:
		b.winStart, b.prev, b.cur = b.winStart.Add(b.p.Window), b.cur, counts{}
	}
}

// overRate reports whether the failures over the sliding window (the
// previous window weighted by how much of it still overlaps) reach the
// error rate.
func (b *breaker) overRate(now time.Time) bool {
	if b.p.ErrorRate <= 0 {
		return false
	}
	w := 1 - float64(now.Sub(b.winStart))/float64(b.p.Window)
	total := float64(b.cur.total) + w*float64(b.prev.total)
	failed := float64(b.cur.failed) + w*float64(b.prev.failed)
	return total >= float64(b.p.MinRequests) && failed/total >= b.p.ErrorRate
}

// Circuit is an instance's routing state as /readyz and /metrics show it.
type Circuit struct {
	State string `json:"state"`
	// Until is when an open circuit lets a probe through.
	Until     *time.Time `json:"until,omitempty"`
	Ejections int        `json:"ejections"`
	InFlight  int64      `json:"in_flight"`
	// LatencyMS is the moving average of the time to the first byte.
	LatencyMS float64 `json:"ttfb_ewma_ms"`
}

// Circuit returns the instance's state.
func (in *Instance) Circuit() Circuit {
	b := &in.breaker
	b.mu.Lock()
	c := Circuit{State: b.state, Ejections: b.ejections}
	if b.state == Open {
		u := b.until
		c.Until = &u
	}
	b.mu.Unlock()
	if c.State == "" {
		c.State = Closed
	}
	c.InFlight = in.InFlight()
	c.LatencyMS = float64(in.Latency()) / float64(time.Millisecond)
	return c
}

// ReopensIn returns how long an open circuit stays open (zero otherwise).
func (in *Instance) ReopensIn(now time.Time) time.Duration {
	b := &in.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != Open {
		return 0
	}
	return max(b.until.Sub(now), 0)
}
