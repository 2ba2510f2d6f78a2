package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// Redis keeps the counters in a Redis shared by every replica. A
// reservation is one Lua script that checks every counter and charges
// them all or none; a settlement is one script too. Counters expire a day
// after their window ends. Keys should share a hash tag (the default
// prefix has one) so that the scripts also run on Redis Cluster.
type Redis struct {
	client redis.UniversalClient
}

var _ Backend = (*Redis)(nil)

// DefaultPrefix names the budget counters in Redis.
const DefaultPrefix = "{llmproxy-budget}:"

// NewRedis connects to the Redis rawURL names, in any form
// ratelimit.ParseRedisURL accepts. The connection is made lazily.
func NewRedis(rawURL string) (*Redis, error) {
	c, err := ratelimit.ParseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	return &Redis{client: c}, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// takeScript: KEYS are the counters; ARGV[1] the amount, then per key its
// limit and its expiry (Unix seconds, 0: none). It returns {-1, 0} when
// the amount was taken, else {index (0-based), counter} of the first key
// that would pass its limit.
var takeScript = redis.NewScript(`
local amount = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  local spent = tonumber(redis.call('GET', k) or '0')
  if spent + amount > tonumber(ARGV[2*i]) then
    return {i - 1, spent}
  end
end
for i, k in ipairs(KEYS) do
  redis.call('INCRBY', k, amount)
  local exp = tonumber(ARGV[2*i + 1])
  if exp > 0 then redis.call('EXPIREAT', k, exp) end
end
return {-1, 0}
`)

// adjustScript: KEYS are the counters; ARGV[1] the delta, then per key
// its expiry.
var adjustScript = redis.NewScript(`
local delta = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('INCRBY', k, delta)
  local exp = tonumber(ARGV[i + 1])
  if exp > 0 then redis.call('EXPIREAT', k, exp) end
end
return 0
`)

func unix(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// Take implements Backend.
func (r *Redis) Take(ctx context.Context, slots []Slot, amount int64) (int, int64, error) {
	keys := make([]string, len(slots))
	args := make([]any, 0, 1+2*len(slots))
	args = append(args, amount)
	for i, s := range slots {
		keys[i] = s.Key
		args = append(args, s.Limit, unix(s.Expire))
	}
	res, err := takeScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("redis: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("redis: unexpected reply %v", res)
	}
	return int(res[0]), res[1], nil
}

// Adjust implements Backend.
func (r *Redis) Adjust(ctx context.Context, slots []Slot, delta int64) error {
	keys := make([]string, len(slots))
	args := make([]any, 0, 1+len(slots))
	args = append(args, delta)
	for i, s := range slots {
		keys[i] = s.Key
		args = append(args, unix(s.Expire))
	}
	if err := adjustScript.Run(ctx, r.client, keys, args...).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Spent implements Backend.
func (r *Redis) Spent(ctx context.Context, key string) (int64, error) {
	n, err := r.client.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis: %w", err)
	}
	return n, nil
}
