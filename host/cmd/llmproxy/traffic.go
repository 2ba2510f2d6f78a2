package main

import (
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
	"github.com/llmproxy/llmproxy/host/internal/router"
)

// openLimits builds the limiter of the limits block (nil without one) and
// gives the router its circuit breaker policy.
func openLimits(cfg *config.File, rtr *router.Router, requestTimeout time.Duration) (*ratelimit.Limiter, error) {
	bp, err := cfg.CircuitBreaker.Policy()
	if err != nil {
		return nil, err
	}
	rtr.SetBreaker(bp)
	if cfg.Limits == nil {
		return nil, nil
	}
	lc, err := cfg.Limits.Ratelimit(requestTimeout)
	if err != nil {
		return nil, err
	}
	return ratelimit.Open(lc)
}
