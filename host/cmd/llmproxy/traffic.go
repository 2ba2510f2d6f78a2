package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// openLimits builds the limiter of the limits block. Without one, keys
// may still have limits of their own (a store block, whose keys get them
// through the admin API, or an api_key block with limits): those get an
// in-memory limiter without rules; otherwise there is none (nil).
// go-redis's own messages (one per failed dial while Redis is down) go to
// the debug log: the limiter reports a backend outage itself, once a
// second. The limits block is read at start; a reload keeps the limiter.
func openLimits(cfg *config.File, requestTimeout time.Duration, log hclog.Logger) (*ratelimit.Limiter, error) {
	if cfg.Limits == nil {
		if !keyLimits(cfg) {
			return nil, nil
		}
		return ratelimit.New(ratelimit.Config{LeaseTTL: requestTimeout + time.Minute}, nil)
	}
	lc, err := cfg.Limits.Ratelimit(requestTimeout)
	if err != nil {
		return nil, err
	}
	redis.SetLogger(redisLog{log.Named("redis")})
	return ratelimit.Open(lc)
}

// keyLimits reports whether some key may have limits of its own.
func keyLimits(cfg *config.File) bool {
	if cfg.Store != nil {
		return true
	}
	for _, k := range cfg.APIKeys {
		if !k.Limits.Empty() {
			return true
		}
	}
	return false
}

// redisLog routes go-redis's messages into hclog at debug level.
type redisLog struct{ log hclog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}
