package document

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCache stores entries in Redis under a key prefix, with the TTL as
// the key's expiry. Entries larger than the configured maximum are not
// stored; the total size is bounded by Redis's own maxmemory policy.
type RedisCache struct {
	client   *redis.Client
	prefix   string
	maxEntry int64
}

var _ Cache = (*RedisCache)(nil)

// RedisKeyPrefix is prepended to every key the RedisCache writes.
const RedisKeyPrefix = "llmproxy:doc:"

// NewRedisCache connects to the Redis server at rawURL (redis:// or
// rediss://). It does not dial until first use.
func NewRedisCache(rawURL string, maxEntryBytes int64) (*RedisCache, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// The URL may carry a password: never repeat it.
		return nil, errors.New("redis cache: redis_url is not a valid redis:// URL")
	}
	// A cache must not hold a request up: one short attempt, then a miss.
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.DialTimeout = 500 * time.Millisecond
	opt.ReadTimeout = time.Second
	opt.WriteTimeout = time.Second
	return &RedisCache{client: redis.NewClient(opt), prefix: RedisKeyPrefix, maxEntry: maxEntryBytes}, nil
}

// Ping checks that the server answers.
func (c *RedisCache) Ping(ctx context.Context) error {
	if err := c.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis cache: ping: %w", err)
	}
	return nil
}

// Get implements Cache.
func (c *RedisCache) Get(ctx context.Context, key string) (*Entry, bool, error) {
	b, err := c.client.Get(ctx, c.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis cache: get: %w", err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return nil, false, fmt.Errorf("redis cache: %w", err)
	}
	return e, true, nil
}

// Set implements Cache.
func (c *RedisCache) Set(ctx context.Context, key string, e *Entry, ttl time.Duration) error {
	if e.size() > c.maxEntry || ttl <= 0 {
		return nil
	}
	if err := c.client.Set(ctx, c.prefix+key, encodeEntry(e), ttl).Err(); err != nil {
		return fmt.Errorf("redis cache: set: %w", err)
	}
	return nil
}

// Close implements Cache.
func (c *RedisCache) Close() error { return c.client.Close() }
