// Package ratelimit enforces the request, token and concurrency limits of
// the limits block: per API key, per model (route) and per provider
// instance, in any combination.
//
// Request and token limits are GCRA buckets (generic cell rate: one
// "theoretical arrival time" per bucket, the burst equal to the per-minute
// or per-second limit), so that a limit of 600 RPM admits 600 requests at
// once and then one every 100 ms. Token limits reserve an estimate at
// admission (prompt size plus max_tokens) and are settled with the real
// usage afterwards, moving the bucket forward or back; a burst of long
// answers therefore overshoots by at most one reservation. Concurrency
// limits are leases released when the answer ends.
//
// The buckets live in a Backend: Memory (one replica, the default) or
// Redis (shared by every replica, one atomic Lua script per decision, the
// clock of the Redis server). A decision waits at most Config.Timeout for
// the backend; when the backend fails, each limit's fail mode decides:
// "open" serves the request (and counts it), "closed" refuses it with 429
// rate_limit_backend_unavailable.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/glob"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Fail modes of a limit whose backend cannot be reached.
const (
	FailOpen   = "open"
	FailClosed = "closed"
)

// DefaultTimeout bounds one decision's wait for the backend.
const DefaultTimeout = 5 * time.Millisecond

// DefaultCompletionTokens is the completion size a token limit reserves
// for a request that names no max_tokens.
const DefaultCompletionTokens = 1024

// Rule is one configured limit. Key, Model and Instance select the
// requests it applies to (glob patterns; empty matches every request);
// each selector that is set also partitions the limit by its value, so
// key = "*" gives every API key a bucket of its own, while a limit
// without a key selector is shared by all keys.
type Rule struct {
	Name     string
	Key      string
	Model    string
	Instance string
	// RPM, RPS, TPM and Concurrent are the limits; zero means none.
	RPM, RPS, TPM, Concurrent int64
	// Fail is FailOpen (default) or FailClosed.
	Fail string
	// CompletionTokens is reserved for requests without max_tokens
	// (DefaultCompletionTokens when zero).
	CompletionTokens int64
}

// Validate reports the first problem of r.
func (r *Rule) Validate() error {
	if r.Name == "" {
		return errors.New("a limit needs a name")
	}
	if r.RPM < 0 || r.RPS < 0 || r.TPM < 0 || r.Concurrent < 0 || r.CompletionTokens < 0 {
		return fmt.Errorf("limit %q: limits must not be negative", r.Name)
	}
	if r.RPM == 0 && r.RPS == 0 && r.TPM == 0 && r.Concurrent == 0 {
		return fmt.Errorf("limit %q sets none of rpm, rps, tpm, concurrent", r.Name)
	}
	switch r.Fail {
	case "", FailOpen, FailClosed:
	default:
		return fmt.Errorf("limit %q: fail must be %q or %q, not %q", r.Name, FailOpen, FailClosed, r.Fail)
	}
	return nil
}

// Config is the limits block.
type Config struct {
	// Redis is the URL of a shared Redis (see ParseRedisURL); empty keeps
	// the buckets in memory.
	Redis string
	// Timeout bounds a decision's wait for the backend (DefaultTimeout
	// when zero).
	Timeout time.Duration
	// Prefix starts every Redis key ("llmproxy" when empty).
	Prefix string
	Rules  []Rule
	// LeaseTTL bounds how long a concurrency lease outlives a replica
	// that died holding it.
	LeaseTTL time.Duration
}

// Subject is what a request is limited by. KeyID and Limits carry the
// key's own limits (nil: none), applied by Admit as one more rule with a
// bucket of the key's own.
type Subject struct {
	Key      string
	Model    string
	Route    string
	Instance string
	KeyID    string
	Limits   *KeyLimits
}

// KeyLimits are the limits of one API key, set through the admin API on
// a stored key or in its api_key block; zero means none. Admit applies
// them as a rule named "key:<id>" with the fail mode "open", on the same
// backend as the configured rules.
type KeyLimits struct {
	RPM        int64 `json:"rpm,omitempty" hcl:"rpm,optional"`
	RPS        int64 `json:"rps,omitempty" hcl:"rps,optional"`
	TPM        int64 `json:"tpm,omitempty" hcl:"tpm,optional"`
	Concurrent int64 `json:"concurrency,omitempty" hcl:"concurrent,optional"`
}

// MaxKeyLimit bounds each of a key's limits.
const MaxKeyLimit = 1_000_000_000

// Validate reports the first problem of k: a negative limit or one above
// MaxKeyLimit.
func (k *KeyLimits) Validate() error {
	for _, x := range []struct {
		name string
		n    int64
	}{{"rpm", k.RPM}, {"rps", k.RPS}, {"tpm", k.TPM}, {"concurrency", k.Concurrent}} {
		if x.n < 0 || x.n > MaxKeyLimit {
			return fmt.Errorf("limits.%s must be a whole number from 0 to %d, not %d", x.name, MaxKeyLimit, x.n)
		}
	}
	return nil
}

// Empty reports whether k sets no limit (a nil k sets none).
func (k *KeyLimits) Empty() bool {
	return k == nil || k.RPM == 0 && k.RPS == 0 && k.TPM == 0 && k.Concurrent == 0
}

// Tokens reports whether k limits tokens.
func (k *KeyLimits) Tokens() bool { return k != nil && k.TPM > 0 }

// rule returns the rule of a key's own limits, or nil when it has none.
// The bucket names carry the limits, so that a changed limit starts
// afresh instead of inheriting a bucket sized for the old one.
func (k *KeyLimits) rule(id string) *Rule {
	if k.Empty() {
		return nil
	}
	return &Rule{Name: "key:" + id, RPM: k.RPM, RPS: k.RPS, TPM: k.TPM, Concurrent: k.Concurrent,
		Fail: FailOpen, CompletionTokens: DefaultCompletionTokens}
}

// Limiter decides whether requests may proceed.
type Limiter struct {
	rules     []*Rule
	backend   Backend
	timeout   time.Duration
	prefix    string
	leaseTTL  time.Duration
	seq       atomic.Uint64
	leaseBase string

	// Degraded counts decisions taken without the backend, by outcome.
	openDecisions, closedDecisions atomic.Uint64
	allowed, limited               atomic.Uint64
}

// New returns a Limiter over backend. A nil backend means Memory.
func New(cfg Config, backend Backend) (*Limiter, error) {
	l := &Limiter{backend: backend, timeout: cfg.Timeout, prefix: cfg.Prefix, leaseTTL: cfg.LeaseTTL}
	if l.backend == nil {
		l.backend = NewMemory()
	}
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	if l.prefix == "" {
		l.prefix = "llmproxy"
	}
	if l.leaseTTL <= 0 {
		l.leaseTTL = 15 * time.Minute
	}
	l.leaseBase = strconv.FormatInt(time.Now().UnixNano(), 36)
	seen := map[string]bool{}
	for i := range cfg.Rules {
		r := cfg.Rules[i]
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("two limits are named %q", r.Name)
		}
		seen[r.Name] = true
		if r.Fail == "" {
			r.Fail = FailOpen
		}
		if r.CompletionTokens == 0 {
			r.CompletionTokens = DefaultCompletionTokens
		}
		l.rules = append(l.rules, &r)
	}
	return l, nil
}

// Open builds the backend cfg names and a Limiter over it.
func Open(cfg Config) (*Limiter, error) {
	var b Backend
	if cfg.Redis != "" {
		r, err := NewRedis(cfg.Redis)
		if err != nil {
			return nil, err
		}
		b = r
	}
	l, err := New(cfg, b)
	if err != nil && b != nil {
		b.Close()
	}
	return l, err
}

// Remote reports whether the backend is across the network (Redis).
func (l *Limiter) Remote() bool {
	if l == nil {
		return false
	}
	_, mem := l.backend.(*Memory)
	return !mem
}

// Close releases the backend.
func (l *Limiter) Close() error { return l.backend.Close() }

// HasInstanceRules reports whether some limit selects an instance.
func (l *Limiter) HasInstanceRules() bool {
	for _, r := range l.rules {
		if r.Instance != "" {
			return true
		}
	}
	return false
}

// HasTokenRules reports whether some limit counts tokens.
func (l *Limiter) HasTokenRules() bool {
	for _, r := range l.rules {
		if r.TPM > 0 {
			return true
		}
	}
	return false
}

// Stats are the limiter's counters since start.
type Stats struct {
	Allowed, Limited uint64
	// FailedOpen and FailedClosed count decisions taken without the
	// backend.
	FailedOpen, FailedClosed uint64
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	return Stats{Allowed: l.allowed.Load(), Limited: l.limited.Load(),
		FailedOpen: l.openDecisions.Load(), FailedClosed: l.closedDecisions.Load()}
}

// Kinds of bucket.
const (
	kindRequests = iota
	kindTokens
	kindConcurrent
)

// Bucket is one counter a decision touches.
type Bucket struct {
	Key string
	// Concurrent buckets hold leases; the others are GCRA buckets.
	Concurrent bool
	// Interval is the emission interval of one unit (GCRA); Burst the
	// number of units the bucket holds (GCRA) or the number of leases.
	Interval time.Duration
	Burst    int64
	// Cost is the units taken (GCRA).
	Cost int64
	// Lease names the lease taken (concurrent); TTL bounds it.
	Lease string
	TTL   time.Duration

	kind int
	rule *Rule
}

// State is a bucket's answer to a decision.
type State struct {
	Allowed bool
	// Remaining units after the decision.
	Remaining int64
	// RetryAfter is when the refused cost would fit (zero when allowed,
	// negative when it never fits: the cost exceeds the burst).
	RetryAfter time.Duration
	// ResetAfter is when the bucket is full again.
	ResetAfter time.Duration
}

// Backend stores buckets.
type Backend interface {
	// Take decides on all buckets at once: when every one allows its
	// cost, every one is charged; otherwise none is. It returns one State
	// per bucket.
	Take(ctx context.Context, bs []Bucket) ([]State, bool, error)
	// Adjust moves a GCRA bucket by delta units (negative: a refund).
	Adjust(ctx context.Context, b Bucket, delta int64) error
	// Release returns a concurrency lease.
	Release(ctx context.Context, b Bucket) error
	Close() error
}

// partition names the bucket of rule for s.
func (l *Limiter) partition(r *Rule, s Subject) string {
	var b strings.Builder
	b.WriteString(l.prefix)
	b.WriteString(":rl:{")
	b.WriteString(l.prefix)
	b.WriteString("}:")
	b.WriteString(r.Name)
	if r.Key != "" {
		b.WriteString(":k=")
		b.WriteString(s.Key)
	}
	if r.Model != "" {
		b.WriteString(":m=")
		b.WriteString(s.Route)
	}
	if r.Instance != "" {
		b.WriteString(":i=")
		b.WriteString(s.Instance)
	}
	return b.String()
}

func (r *Rule) matches(s Subject, instance bool) bool {
	if (r.Instance != "") != instance {
		return false
	}
	if r.Key != "" && !glob.Match(r.Key, s.Key) {
		return false
	}
	if r.Model != "" && !glob.Match(r.Model, s.Model) && !glob.Match(r.Model, s.Route) {
		return false
	}
	return r.Instance == "" || glob.Match(r.Instance, s.Instance)
}

// Usage is the size of a request for token limits.
type Usage struct {
	// Prompt is the estimated prompt size; MaxTokens the completion cap
	// the request names (zero: none, so the limit's CompletionTokens).
	Prompt, MaxTokens int64
	// NoCompletion is set for requests that produce no completion
	// (embeddings): only the prompt is reserved.
	NoCompletion bool
}

// Admit decides on the request-level limits (those without an instance
// selector). It returns nil, nil when no limit applies.
func (l *Limiter) Admit(ctx context.Context, s Subject, u Usage) (*Ticket, *Decision) {
	return l.decide(ctx, s, u, false)
}

// AdmitInstance decides on the limits of one provider instance (the
// upstream's quota): a refusal means "try another instance".
func (l *Limiter) AdmitInstance(ctx context.Context, s Subject, u Usage) (*Ticket, *Decision) {
	return l.decide(ctx, s, u, true)
}

func (l *Limiter) decide(ctx context.Context, s Subject, u Usage, instance bool) (*Ticket, *Decision) {
	if l == nil {
		return nil, nil
	}
	var bs []Bucket
	for _, r := range l.rules {
		if !r.matches(s, instance) {
			continue
		}
		bs = l.buckets(bs, r, l.partition(r, s), "", u)
	}
	if !instance && s.Limits != nil {
		if r := s.Limits.rule(s.KeyID); r != nil {
			bs = l.buckets(bs, r, l.partition(r, s), "=", u)
		}
	}
	if len(bs) == 0 {
		return nil, nil
	}
	tctx, cancel := context.WithTimeout(ctx, l.timeout)
	states, ok, err := l.backend.Take(tctx, bs)
	cancel()
	d := &Decision{instance: instance}
	if err != nil {
		d.Err = err
		for _, b := range bs {
			if b.rule.Fail == FailClosed {
				l.closedDecisions.Add(1)
				d.Unavailable = true
				return nil, d
			}
		}
		l.openDecisions.Add(1)
		d.Allowed = true
		return nil, d
	}
	d.Allowed = ok
	d.summarise(bs, states)
	if !ok {
		l.limited.Add(1)
		return nil, d
	}
	l.allowed.Add(1)
	t := &Ticket{l: l}
	for _, b := range bs {
		if b.kind == kindTokens || b.kind == kindConcurrent {
			t.held = append(t.held, b)
		}
	}
	if len(t.held) == 0 {
		return nil, d
	}
	return t, d
}

// buckets appends the buckets of rule r, partition base, to bs. A
// non-empty sized separator appends each bucket's size to its name.
func (l *Limiter) buckets(bs []Bucket, r *Rule, base, sized string, u Usage) []Bucket {
	name := func(kind string, n int64) string {
		if sized == "" {
			return base + kind
		}
		return base + kind + sized + strconv.FormatInt(n, 10)
	}
	if r.RPM > 0 {
		bs = append(bs, Bucket{Key: name(":rpm", r.RPM), Interval: per(time.Minute, r.RPM), Burst: r.RPM, Cost: 1, kind: kindRequests, rule: r})
	}
	if r.RPS > 0 {
		bs = append(bs, Bucket{Key: name(":rps", r.RPS), Interval: per(time.Second, r.RPS), Burst: r.RPS, Cost: 1, kind: kindRequests, rule: r})
	}
	if r.TPM > 0 {
		completion := u.MaxTokens
		switch {
		case u.NoCompletion:
			completion = 0
		case completion <= 0:
			completion = r.CompletionTokens
		}
		bs = append(bs, Bucket{Key: name(":tpm", r.TPM), Interval: per(time.Minute, r.TPM), Burst: r.TPM,
			Cost: max(u.Prompt+completion, 1), kind: kindTokens, rule: r})
	}
	if r.Concurrent > 0 {
		lease := l.leaseBase + "." + strconv.FormatUint(l.seq.Add(1), 36)
		bs = append(bs, Bucket{Key: name(":conc", r.Concurrent), Concurrent: true, Burst: r.Concurrent, Cost: 1, Lease: lease, TTL: l.leaseTTL,
			kind: kindConcurrent, rule: r})
	}
	return bs
}

// per is the emission interval of n units per period, at least 1 ns.
func per(period time.Duration, n int64) time.Duration {
	return max(period/time.Duration(n), time.Nanosecond)
}

// Decision is the outcome of Admit: whether the request may proceed, and
// the numbers the x-ratelimit-* headers report.
type Decision struct {
	Allowed bool
	// Unavailable is set when the backend failed and a limit fails
	// closed; Err is the backend's error.
	Unavailable bool
	Err         error

	// Requests and Tokens describe the most restrictive bucket of each
	// kind; a zero Limit means no such bucket applied.
	Requests, Tokens Window
	// RetryAfter is when the request would be admitted (zero when it
	// was; negative when it never can be).
	RetryAfter time.Duration
	// Refused names the limit and what it counts when not allowed.
	Refused     string
	RefusedKind string
	RefusedCost int64
	RefusedMax  int64

	instance bool
}

// Window is what one kind of limit reports.
type Window struct {
	Limit, Remaining int64
	Reset            time.Duration
}

func (d *Decision) summarise(bs []Bucket, st []State) {
	for i, b := range bs {
		s := st[i]
		var w *Window
		switch b.kind {
		case kindRequests:
			w = &d.Requests
		case kindTokens:
			w = &d.Tokens
		}
		if w != nil && (w.Limit == 0 || s.Remaining < w.Remaining || s.Remaining == w.Remaining && b.Burst < w.Limit) {
			*w = Window{Limit: b.Burst, Remaining: max(s.Remaining, 0), Reset: max(s.ResetAfter, 0)}
		}
		if !s.Allowed && (d.Refused == "" || s.RetryAfter < 0 || d.RetryAfter >= 0 && s.RetryAfter > d.RetryAfter) {
			d.Refused, d.RetryAfter, d.RefusedCost, d.RefusedMax = b.rule.Name, s.RetryAfter, b.Cost, b.Burst
			d.RefusedKind = [...]string{"requests", "tokens", "concurrent requests"}[b.kind]
		}
	}
}

// Headers calls set with the x-ratelimit-* headers OpenAI sends, for the
// kinds of limit that applied; reset values are durations such as "1s",
// "6m0s" or "12ms".
func (d *Decision) Headers(set func(k, v string)) {
	if d == nil || d.instance {
		return
	}
	for _, x := range []struct {
		name string
		w    Window
	}{{"requests", d.Requests}, {"tokens", d.Tokens}} {
		if x.w.Limit == 0 {
			continue
		}
		set("x-ratelimit-limit-"+x.name, strconv.FormatInt(x.w.Limit, 10))
		set("x-ratelimit-remaining-"+x.name, strconv.FormatInt(x.w.Remaining, 10))
		set("x-ratelimit-reset-"+x.name, resetString(x.w.Reset))
	}
}

// resetString formats a reset duration the way OpenAI does: whole
// milliseconds below a second, else seconds with up to three decimals.
func resetString(d time.Duration) string {
	if d < time.Millisecond {
		return "0s"
	}
	if d < time.Second {
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// Error returns the refusal in the OpenAI shape: 429 rate_limit_exceeded
// with a Retry-After, or 429 rate_limit_backend_unavailable.
func (d *Decision) Error() *openai.Error {
	if d.Unavailable {
		e := openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "rate_limit_backend_unavailable",
			"the rate limit backend is unavailable and this limit fails closed; retry shortly")
		e.RetryAfter = time.Second
		return e
	}
	if d.RetryAfter < 0 {
		return openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "rate_limit_exceeded",
			fmt.Sprintf("request too large for limit %q on %s: limit %d, requested %d; reduce max_tokens or the prompt",
				d.Refused, d.RefusedKind, d.RefusedMax, d.RefusedCost))
	}
	e := openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "rate_limit_exceeded",
		fmt.Sprintf("rate limit %q reached on %s (limit %d); try again in %s",
			d.Refused, d.RefusedKind, d.RefusedMax, resetString(d.RetryAfter)))
	e.RetryAfter = max(d.RetryAfter, time.Millisecond)
	return e
}

// RetryAfterMS is the retry-after-ms header value of a refusal ("" when
// none applies).
func (d *Decision) RetryAfterMS() string {
	if d == nil || d.Allowed || d.Unavailable || d.RetryAfter < 0 {
		return ""
	}
	return strconv.FormatInt(int64(math.Ceil(float64(d.RetryAfter)/float64(time.Millisecond))), 10)
}

// Ticket is what an admitted request holds: its token reservations and
// concurrency leases. Done settles and releases them once.
type Ticket struct {
	l    *Limiter
	held []Bucket
	once sync.Once
}

// Done settles the token reservations with the tokens the request really
// used (known false: keep the reservation, the usage was not reported)
// and returns the concurrency leases. A nil Ticket is valid.
func (t *Ticket) Done(used int64, known bool) {
	if t == nil {
		return
	}
	t.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*t.l.timeout)
		defer cancel()
		for _, b := range t.held {
			switch {
			case b.Concurrent:
				t.l.backend.Release(ctx, b)
			case known && used != b.Cost:
				t.l.backend.Adjust(ctx, b, used-b.Cost)
			}
		}
	})
}
