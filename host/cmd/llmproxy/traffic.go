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

// openLimits builds the limiter of the limits block (nil without one).
// go-redis's own messages (one per failed dial while Redis is down) go to
// the debug log: the limiter reports a backend outage itself, once a
// second. The limits block is read at start; a reload keeps the limiter.
func openLimits(cfg *config.File, requestTimeout time.Duration, log hclog.Logger) (*ratelimit.Limiter, error) {
	if cfg.Limits == nil {
		return nil, nil
	}
	lc, err := cfg.Limits.Ratelimit(requestTimeout)
	if err != nil {
		return nil, err
	}
	redis.SetLogger(redisLog{log.Named("redis")})
	return ratelimit.Open(lc)
}

// redisLog routes go-redis's messages into hclog at debug level.
type redisLog struct{ log hclog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}
