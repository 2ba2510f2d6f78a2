package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// Limits is the limits block: rate, token and concurrency limits on any
// combination of API key, model (route) and provider instance, kept in
// memory or in a shared Redis.
//
//	limits {
//	  redis   = env("REDIS_URL")   # optional: in memory when unset
//	  timeout = "5ms"              # the longest a decision waits for Redis
//	  limit "per-key" {
//	    key  = "*"                  # each key its own bucket
//	    rpm  = 600
//	    tpm  = 100000
//	    fail = "closed"             # when Redis is unreachable
//	  }
//	  limit "east-quota" {
//	    instance = "openai-east"    # the upstream's quota, shared by all keys
//	    tpm      = 450000
//	  }
//	}
type Limits struct {
	Redis   string  `hcl:"redis,optional"`
	Timeout string  `hcl:"timeout,optional"`
	Prefix  string  `hcl:"prefix,optional"`
	Limits  []Limit `hcl:"limit,block"`

	DeclRange hcl.Range
}

// Limit is one limit block; see ratelimit.Rule for the meaning of each
// attribute.
type Limit struct {
	Name             string `hcl:"name,label"`
	Key              string `hcl:"key,optional"`
	Model            string `hcl:"model,optional"`
	Instance         string `hcl:"instance,optional"`
	RPM              int64  `hcl:"rpm,optional"`
	RPS              int64  `hcl:"rps,optional"`
	TPM              int64  `hcl:"tpm,optional"`
	Concurrent       int64  `hcl:"concurrent,optional"`
	Fail             string `hcl:"fail,optional"`
	CompletionTokens int64  `hcl:"completion_tokens,optional"`
}

// Ratelimit returns the limiter configuration of the block; requestTimeout
// bounds how long a concurrency lease may outlive a replica that died.
func (l *Limits) Ratelimit(requestTimeout time.Duration) (ratelimit.Config, error) {
	if l == nil {
		return ratelimit.Config{}, nil
	}
	timeout, err := Duration(l.Timeout, ratelimit.DefaultTimeout)
	if err != nil {
		return ratelimit.Config{}, fmt.Errorf("limits.timeout: %w", err)
	}
	if timeout <= 0 || timeout > time.Second {
		return ratelimit.Config{}, fmt.Errorf("limits.timeout must be between 0 and 1s, not %v", timeout)
	}
	cfg := ratelimit.Config{Redis: l.Redis, Timeout: timeout, Prefix: l.Prefix, LeaseTTL: requestTimeout + time.Minute}
	for _, x := range l.Limits {
		r := ratelimit.Rule{Name: x.Name, Key: x.Key, Model: x.Model, Instance: x.Instance, RPM: x.RPM, RPS: x.RPS,
			TPM: x.TPM, Concurrent: x.Concurrent, Fail: x.Fail, CompletionTokens: x.CompletionTokens}
		if err := r.Validate(); err != nil {
			return ratelimit.Config{}, err
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	if cfg.Redis != "" {
		c, err := ratelimit.ParseRedisURL(cfg.Redis)
		if err != nil {
			return ratelimit.Config{}, fmt.Errorf("limits.redis: %w", err)
		}
		c.Close()
	}
	return cfg, nil
}

// Retry is a route's retry block: how often a failed attempt is repeated
// against the same target before the route moves on, and how long it
// waits in between.
//
//	retry {
//	  attempts        = 4       # in all, across targets
//	  per_target      = 2       # attempts on one target before the next
//	  backoff         = "200ms" # full jitter: a random wait up to backoff × 2^n
//	  max_backoff     = "2s"
//	  max_retry_after = "5s"    # an upstream Retry-After above this moves on instead
//	  budget          = 0.2     # retries may add 20 % to the route's load
//	}
type Retry struct {
	Attempts      int     `hcl:"attempts,optional"`
	PerTarget     int     `hcl:"per_target,optional"`
	Backoff       string  `hcl:"backoff,optional"`
	MaxBackoff    string  `hcl:"max_backoff,optional"`
	MaxRetryAfter string  `hcl:"max_retry_after,optional"`
	Budget        float64 `hcl:"budget,optional"`
}

// Defaults of the retry block.
const (
	DefaultBackoff       = 100 * time.Millisecond
	DefaultMaxBackoff    = 2 * time.Second
	DefaultMaxRetryAfter = 10 * time.Second
	DefaultRetryBudget   = 0.2
)

// RetryPolicy is a resolved retry block.
type RetryPolicy struct {
	// Attempts is the most attempts of one request (zero: one per
	// target); PerTarget the most on one target.
	Attempts, PerTarget int
	Backoff, MaxBackoff time.Duration
	MaxRetryAfter       time.Duration
	Budget              float64
	Configured          bool
}

// Policy resolves r; a nil block means one attempt per target, no waits.
func (r *Retry) Policy() (RetryPolicy, error) {
	if r == nil {
		return RetryPolicy{PerTarget: 1}, nil
	}
	p := RetryPolicy{Attempts: r.Attempts, PerTarget: r.PerTarget, Budget: r.Budget, Configured: true}
	if p.PerTarget == 0 {
		p.PerTarget = 1
	}
	if p.Budget == 0 {
		p.Budget = DefaultRetryBudget
	}
	if p.Attempts < 0 || p.PerTarget < 0 || p.Budget < 0 || p.Budget > 1 {
		return p, fmt.Errorf("retry: attempts and per_target must be positive and budget between 0 and 1")
	}
	var err error
	for _, x := range []struct {
		name string
		v    string
		def  time.Duration
		out  *time.Duration
	}{{"backoff", r.Backoff, DefaultBackoff, &p.Backoff}, {"max_backoff", r.MaxBackoff, DefaultMaxBackoff, &p.MaxBackoff},
		{"max_retry_after", r.MaxRetryAfter, DefaultMaxRetryAfter, &p.MaxRetryAfter}} {
		if *x.out, err = Duration(x.v, x.def); err != nil || *x.out < 0 {
			return p, fmt.Errorf("retry.%s: %w", x.name, err)
		}
	}
	return p, nil
}

// CircuitBreaker is the circuit_breaker block: when an instance is ejected
// from routing, and for how long. Without the block no instance is
// ejected.
//
//	circuit_breaker {
//	  consecutive_failures = 5     # in a row
//	  error_rate           = 0.5   # or this share of failures …
//	  min_requests         = 20    # … over at least this many requests …
//	  window               = "30s" # … within this window
//	  cooldown             = "5s"  # first ejection; doubles on each re-ejection
//	  max_cooldown         = "5m"
//	}
type CircuitBreaker struct {
	ConsecutiveFailures int     `hcl:"consecutive_failures,optional"`
	ErrorRate           float64 `hcl:"error_rate,optional"`
	MinRequests         int     `hcl:"min_requests,optional"`
	Window              string  `hcl:"window,optional"`
	Cooldown            string  `hcl:"cooldown,optional"`
	MaxCooldown         string  `hcl:"max_cooldown,optional"`
}

// BreakerPolicy is a resolved circuit_breaker block.
type BreakerPolicy struct {
	Enabled               bool
	ConsecutiveFailures   int
	ErrorRate             float64
	MinRequests           int
	Window                time.Duration
	Cooldown, MaxCooldown time.Duration
}

// Policy resolves b; nil means disabled.
func (b *CircuitBreaker) Policy() (BreakerPolicy, error) {
	if b == nil {
		return BreakerPolicy{}, nil
	}
	p := BreakerPolicy{Enabled: true, ConsecutiveFailures: b.ConsecutiveFailures, ErrorRate: b.ErrorRate, MinRequests: b.MinRequests}
	if p.ConsecutiveFailures == 0 {
		p.ConsecutiveFailures = 5
	}
	if p.MinRequests == 0 {
		p.MinRequests = 20
	}
	if p.ConsecutiveFailures < 0 || p.MinRequests < 0 || p.ErrorRate < 0 || p.ErrorRate > 1 {
		return p, fmt.Errorf("circuit_breaker: counts must be positive and error_rate between 0 and 1")
	}
	var err error
	if p.Window, err = Duration(b.Window, 30*time.Second); err != nil {
		return p, fmt.Errorf("circuit_breaker.window: %w", err)
	}
	if p.Cooldown, err = Duration(b.Cooldown, 5*time.Second); err != nil {
		return p, fmt.Errorf("circuit_breaker.cooldown: %w", err)
	}
	if p.MaxCooldown, err = Duration(b.MaxCooldown, 5*time.Minute); err != nil {
		return p, fmt.Errorf("circuit_breaker.max_cooldown: %w", err)
	}
	if p.Window <= 0 || p.Cooldown <= 0 || p.MaxCooldown < p.Cooldown {
		return p, fmt.Errorf("circuit_breaker: window and cooldown must be positive and max_cooldown at least cooldown")
	}
	return p, nil
}

// validateTraffic checks the limits, retry and circuit_breaker blocks.
func (f *File) validateTraffic() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if f.Limits != nil {
		if _, err := f.Limits.Ratelimit(time.Minute); err != nil {
			diags = append(diags, errAt(f.Limits.DeclRange, "Invalid limits", err.Error()))
		}
	}
	if _, err := f.CircuitBreaker.Policy(); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid circuit_breaker", Detail: err.Error(),
			Subject: f.Range("circuit_breaker")})
	}
	for _, r := range f.Routes {
		if _, err := r.Retry.Policy(); err != nil {
			diags = append(diags, errAt(r.DeclRange, "Invalid retry", fmt.Sprintf("route %q: %v", r.Model, err)))
		}
		for _, t := range r.Targets {
			if t.Price < 0 {
				diags = append(diags, errAt(r.DeclRange, "Invalid price", "prices may not be negative"))
			}
		}
		if r.Strategy == "cost" {
			priced := false
			for _, t := range r.Targets {
				priced = priced || t.Price > 0
			}
			if !priced {
				diags = append(diags, errAt(r.DeclRange, "Strategy cost without prices",
					fmt.Sprintf("route %q: strategy \"cost\" needs a price on its targets", r.Model)))
			}
		}
	}
	return diags
}
