package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps buckets in a Redis shared by every replica. Each decision is
// one Lua script that reads the server's clock (TIME), decides on every
// bucket and charges them all or none. Bucket keys share one hash tag, so
// the script also runs on Redis Cluster (all limit keys then live on one
// shard).
type Redis struct {
	client redis.UniversalClient
}

var _ Backend = (*Redis)(nil)

// NewRedis connects to the Redis rawURL names (see ParseRedisURL). The
// connection is made lazily; NewRedis fails only on a malformed URL.
func NewRedis(rawURL string) (*Redis, error) {
	c, err := ParseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	return &Redis{client: c}, nil
}

// ParseRedisURL returns a client for one of:
//
//	redis://[user:password@]host:port[/db][?options]   one server (rediss:// for TLS, unix:// for a socket)
//	redis+cluster://host:port[?addr=host:port&…]       Redis Cluster
//	redis+sentinel://host:port?master_name=name[&addr=…] Sentinel-managed primary
//
// The options are go-redis's URL options. Commands never retry and follow
// the caller's deadline, so a decision's wait is bounded by its context.
// Errors do not quote the URL (it may hold a password).
func ParseRedisURL(rawURL string) (redis.UniversalClient, error) {
	scheme, _, _ := strings.Cut(rawURL, "://")
	base, variant, _ := strings.Cut(scheme, "+")
	plain := base + rawURL[len(scheme):]
	fail := func(err error) error {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid redis URL (scheme %q): %w", scheme, err)
	}
	switch variant {
	case "":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fail(err)
		}
		o.MaxRetries, o.ContextTimeoutEnabled = -1, true
		o.DialTimeout, o.DialerRetries = time.Second, 1
		return redis.NewClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(plain)
		if err != nil {
			return nil, fail(err)
		}
		o.MaxRetries, o.ContextTimeoutEnabled = -1, true
		o.DialTimeout, o.DialerRetries = time.Second, 1
		return redis.NewClusterClient(o), nil
	case "sentinel":
		o, err := redis.ParseFailoverURL(plain)
		if err != nil {
			return nil, fail(err)
		}
		if o.MasterName == "" {
			return nil, fail(errors.New("a sentinel URL needs ?master_name="))
		}
		o.MaxRetries, o.ContextTimeoutEnabled = -1, true
		o.DialTimeout, o.DialerRetries = time.Second, 1
		return redis.NewFailoverClient(o), nil
	}
	return nil, fail(errors.New("use redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://"))
}

// takeScript decides on every bucket (5 arguments each: kind "r" for GCRA
// or "c" for leases, interval in µs, burst, cost, lease id, lease TTL in µs)
// and charges all of them only when all allow. It returns the verdict
// followed by, per bucket, allowed, remaining, retry-after and reset-after
// (µs; retry-after -1 when the cost exceeds the burst). Times are µs since
// 2024-01-01 so that doubles keep µs precision.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1704067200) * 1000000 + tonumber(t[2])
local res = {1}
local tats = {}
for i = 1, #KEYS do
  local a = (i - 1) * 6
  local interval = tonumber(ARGV[a + 2])
  local burst = tonumber(ARGV[a + 3])
  local cost = tonumber(ARGV[a + 4])
  if ARGV[a + 1] == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local held = redis.call('ZCARD', KEYS[i])
    if held < burst then
      table.insert(res, 1); table.insert(res, burst - held - 1); table.insert(res, 0); table.insert(res, 0)
    else
      res[1] = 0
      table.insert(res, 0); table.insert(res, 0); table.insert(res, 1000000); table.insert(res, 0)
    end
  else
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local tolerance = interval * burst
    local newtat = tat + interval * cost
    tats[i] = newtat
    local left = math.floor((now + tolerance - tat) / interval)
    if cost > burst then
      res[1] = 0
      table.insert(res, 0); table.insert(res, left); table.insert(res, -1); table.insert(res, tat - now)
    elseif newtat - tolerance > now then
      res[1] = 0
      table.insert(res, 0); table.insert(res, left); table.insert(res, newtat - tolerance - now); table.insert(res, tat - now)
    else
      table.insert(res, 1); table.insert(res, math.floor((now + tolerance - newtat) / interval)); table.insert(res, 0); table.insert(res, newtat - now)
    end
  end
end
if res[1] == 1 then
  for i = 1, #KEYS do
    local a = (i - 1) * 6
    if ARGV[a + 1] == 'c' then
      local ttl = tonumber(ARGV[a + 6])
      redis.call('ZADD', KEYS[i], string.format('%.0f', now + ttl), ARGV[a + 5])
      redis.call('PEXPIRE', KEYS[i], math.ceil(ttl / 1000) + 1000)
    else
      redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1000)
    end
  end
end
return res
`)

// adjustScript moves one GCRA bucket by ARGV[2] units of ARGV[1] µs.
var adjustScript = redis.NewScript(`
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1704067200) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if delta > 0 and tat < now then tat = now end
tat = tat + interval * delta
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return 1
`)

func micros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', -1, 64)
}

// Take implements Backend.
func (r *Redis) Take(ctx context.Context, bs []Bucket) ([]State, bool, error) {
	keys := make([]string, len(bs))
	args := make([]any, 0, 6*len(bs))
	for i, b := range bs {
		keys[i] = b.Key
		kind := "r"
		if b.Concurrent {
			kind = "c"
		}
		args = append(args, kind, micros(b.Interval), b.Burst, b.Cost, b.Lease, micros(b.TTL))
	}
	v, err := takeScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, false, fmt.Errorf("rate limit decision in redis: %w", err)
	}
	if len(v) != 1+4*len(bs) {
		return nil, false, fmt.Errorf("rate limit decision in redis: %d values for %d buckets", len(v), len(bs))
	}
	out := make([]State, len(bs))
	for i := range bs {
		x := v[1+4*i:]
		out[i] = State{Allowed: x[0] == 1, Remaining: x[1], ResetAfter: time.Duration(x[3]) * time.Microsecond}
		if out[i].Allowed && v[0] != 1 {
			out[i] = uncharged(out[i], bs[i])
		}
		switch {
		case x[2] < 0:
			out[i].RetryAfter = -1
		default:
			out[i].RetryAfter = time.Duration(x[2]) * time.Microsecond
		}
	}
	return out, v[0] == 1, nil
}

// Adjust implements Backend.
func (r *Redis) Adjust(ctx context.Context, b Bucket, delta int64) error {
	if err := adjustScript.Run(ctx, r.client, []string{b.Key}, micros(b.Interval), delta).Err(); err != nil {
		return fmt.Errorf("settle rate limit in redis: %w", err)
	}
	return nil
}

// Release implements Backend.
func (r *Redis) Release(ctx context.Context, b Bucket) error {
	if err := r.client.ZRem(ctx, b.Key, b.Lease).Err(); err != nil {
		return fmt.Errorf("release rate limit lease in redis: %w", err)
	}
	return nil
}

// Close implements Backend.
func (r *Redis) Close() error { return r.client.Close() }
