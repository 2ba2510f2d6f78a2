package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps entries in Redis, shared by every replica; Redis expires
// them.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

var _ Backend = (*Redis)(nil)

// NewRedis returns a Redis backend at rawURL (redis://, rediss:// or
// unix://) whose keys start with prefix.
func NewRedis(rawURL, prefix string) (*Redis, error) {
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("cache.redis: %w", err)
	}
	o.MaxRetries = -1
	return &Redis{client: redis.NewClient(o), prefix: prefix}, nil
}

// Get implements Backend.
func (r *Redis) Get(ctx context.Context, key string) (*Entry, error) {
	b, err := r.client.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: redis get: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("cache: redis entry %s: %w", key, err)
	}
	return &e, nil
}

// Put implements Backend.
func (r *Redis) Put(ctx context.Context, key string, e *Entry, ttl time.Duration) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := r.client.Set(ctx, r.prefix+key, b, ttl).Err(); err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	return nil
}

// Close implements Backend.
func (r *Redis) Close() error { return r.client.Close() }
