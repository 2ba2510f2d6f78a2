// Package cache is llmproxy's exact response cache: an answer to a chat
// request is kept for a while and served again, without calling the
// provider, to a request that is the same request.
//
// "The same" is exact: the key is the SHA-256 of the canonical request
// (its JSON re-encoded with object keys sorted, minus the fields listed in
// Ignored), the answer mode (JSON or stream), the route and its targets
// (instances and the models they are sent), and the digests of the
// documents the request attached. Nothing approximate: a different
// temperature, tool list or document content is a different key.
//
// Caching is opt-in, per route (a cache block) or per API key
// (cache = true). Only successful answers are kept; errors never are.
// Streams are kept (as their list of chunks, replayed as SSE) only when
// the request has no tools, unless the route says streams_with_tools.
// The client's Cache-Control is honoured: no-store skips the cache
// entirely, no-cache skips the lookup but stores the fresh answer.
//
// Answers live in memory (a size- and count-bounded LRU) or in Redis,
// shared by replicas.
package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// Defaults of the cache block.
const (
	DefaultTTL           = 10 * time.Minute
	DefaultMaxEntries    = 10000
	DefaultMaxBytes      = 64 << 20
	DefaultMaxEntryBytes = 1 << 20
	DefaultTimeout       = 50 * time.Millisecond
	DefaultPrefix        = "llmproxy:cache:"
)

// Ignored are the top-level request fields left out of the key: they
// identify or tag the caller and do not change the answer. "stream" is
// left out of the body too, but the answer mode is part of the key.
var Ignored = []string{"stream", "user", "safety_identifier", "prompt_cache_key", "metadata"}

// Result is what the cache did for a request, as reported in the
// X-LLMProxy-Cache header and the llmproxy_cache_requests_total counter.
type Result string

// Results.
const (
	Hit    Result = "hit"
	Miss   Result = "miss"
	Bypass Result = "bypass"
)

// Header is the response header that reports the Result.
const Header = "X-LLMProxy-Cache"

// Entry is one cached answer: a JSON body, or the chunks of a stream
// (each the data of one SSE event, without the final [DONE]).
type Entry struct {
	Body   []byte   `json:"body,omitempty"`
	Chunks [][]byte `json:"chunks,omitempty"`
}

// Size is the number of bytes the entry holds.
func (e *Entry) Size() int64 {
	n := int64(len(e.Body))
	for _, c := range e.Chunks {
		n += int64(len(c))
	}
	return n
}

// Backend keeps entries by key.
type Backend interface {
	// Get returns the entry under key, or nil when there is none or it
	// has expired.
	Get(ctx context.Context, key string) (*Entry, error)
	// Put keeps e under key for ttl.
	Put(ctx context.Context, key string, e *Entry, ttl time.Duration) error
	// Close releases the backend's connections.
	Close() error
}

// Cache is the response cache: a backend plus the bounds and counters
// around it.
type Cache struct {
	backend       Backend
	ttl           time.Duration
	timeout       time.Duration
	maxEntryBytes int64
	results       *prometheus.CounterVec
}

// New returns the cache described by c (nil: in memory with the
// defaults).
func New(c *config.Cache) (*Cache, error) {
	if c == nil {
		c = &config.Cache{}
	}
	ttl, err := config.Duration(c.TTL, DefaultTTL)
	if err != nil {
		return nil, fmt.Errorf("cache.ttl: %w", err)
	}
	timeout, err := config.Duration(c.Timeout, DefaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("cache.timeout: %w", err)
	}
	x := newCache(ttl)
	x.timeout = timeout
	if c.MaxEntryBytes > 0 {
		x.maxEntryBytes = c.MaxEntryBytes
	}
	switch c.Backend {
	case "", "memory":
		n, size := c.MaxEntries, c.MaxBytes
		if n == 0 {
			n = DefaultMaxEntries
		}
		if size == 0 {
			size = DefaultMaxBytes
		}
		x.backend, err = NewMemory(n, size)
	case "redis":
		prefix := c.Prefix
		if prefix == "" {
			prefix = DefaultPrefix
		}
		x.backend, err = NewRedis(c.Redis, prefix)
	default:
		err = fmt.Errorf("cache.backend must be \"memory\" or \"redis\", not %q", c.Backend)
	}
	if err != nil {
		return nil, err
	}
	return x, nil
}

// NewWith returns a cache over backend b; ttl is the default lifetime.
func NewWith(b Backend, ttl time.Duration) *Cache {
	x := newCache(ttl)
	x.backend = b
	return x
}

func newCache(ttl time.Duration) *Cache {
	x := &Cache{ttl: ttl, timeout: DefaultTimeout, maxEntryBytes: DefaultMaxEntryBytes,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmproxy_cache_requests_total",
			Help: "Chat requests that opted into the exact response cache, by result (hit, miss, bypass).",
		}, []string{"result"})}
	for _, r := range []Result{Hit, Miss, Bypass} {
		x.results.WithLabelValues(string(r))
	}
	return x
}

// Collector returns the cache's Prometheus counter.
func (x *Cache) Collector() prometheus.Collector { return x.results }

// Count records the result of one request.
func (x *Cache) Count(r Result) { x.results.WithLabelValues(string(r)).Inc() }

// Close releases the backend.
func (x *Cache) Close() error { return x.backend.Close() }

// Get returns the entry under key, or nil. A backend error or timeout is
// a miss.
func (x *Cache) Get(ctx context.Context, key string) (*Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	return x.backend.Get(ctx, key)
}

// Put keeps e under key for ttl (0: the cache's default). Entries larger
// than max_entry_bytes are not kept.
func (x *Cache) Put(ctx context.Context, key string, e *Entry, ttl time.Duration) error {
	if e.Size() > x.maxEntryBytes {
		return nil
	}
	if ttl <= 0 {
		ttl = x.ttl
	}
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	return x.backend.Put(ctx, key, e, ttl)
}

// Policy says which requests are cached and for how long: the routes with
// a cache block and the keys that opted in.
type Policy struct {
	routes map[string]config.RouteCache
	ttl    time.Duration
}

// NewPolicy reads the cache blocks of cfg's routes; defaultTTL applies to
// keys that opt in on routes without one.
func NewPolicy(cfg *config.File) (*Policy, error) {
	p := &Policy{routes: map[string]config.RouteCache{}, ttl: DefaultTTL}
	if cfg.Cache != nil {
		d, err := config.Duration(cfg.Cache.TTL, DefaultTTL)
		if err != nil {
			return nil, fmt.Errorf("cache.ttl: %w", err)
		}
		p.ttl = d
	}
	for _, rt := range cfg.Routes {
		if rt.Cache != nil {
			if _, err := config.Duration(rt.Cache.TTL, 0); err != nil {
				return nil, fmt.Errorf("route %q: cache.ttl: %w", rt.Model, err)
			}
			p.routes[rt.Model] = *rt.Cache
		}
	}
	return p, nil
}

// Enabled reports whether any route opts in; keys may still opt in when
// it does not.
func (p *Policy) Enabled() bool { return p != nil && len(p.routes) > 0 }

// Rule is how one request is cached.
type Rule struct {
	TTL              time.Duration
	StreamsWithTools bool
}

// For returns the rule of a request on route by a key that did
// (keyOptIn) or did not opt in; ok is false when the request is not
// cached.
func (p *Policy) For(route string, keyOptIn bool) (r Rule, ok bool) {
	if p == nil {
		return Rule{}, false
	}
	rc, routeOptIn := p.routes[route]
	if !routeOptIn && !keyOptIn {
		return Rule{}, false
	}
	r.TTL = p.ttl
	if routeOptIn {
		if d, _ := config.Duration(rc.TTL, 0); d > 0 {
			r.TTL = d
		}
		r.StreamsWithTools = rc.StreamsWithTools
	}
	return r, true
}

// Directive is what a client's Cache-Control header asks of the cache.
type Directive int

// Directives.
const (
	// Use looks up and stores.
	Use Directive = iota
	// Refresh skips the lookup but stores the fresh answer (no-cache).
	Refresh
	// Skip neither looks up nor stores (no-store).
	Skip
)

// ParseCacheControl reads a request's Cache-Control header.
func ParseCacheControl(h string) Directive {
	d := Use
	for _, part := range strings.Split(h, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(name) {
		case "no-store":
			return Skip
		case "no-cache":
			d = Refresh
		}
	}
	return d
}

// Target is one target of the route a request resolved to.
type Target struct {
	Instance, Model string
}

// Request is what makes up a cache key.
type Request struct {
	// Body is the request body the provider would be sent.
	Body []byte
	// Stream is set for a streamed answer.
	Stream bool
	// Route is the route's name; Targets its instances with the models
	// they are sent.
	Route   string
	Targets []Target
	// Documents are digests of the documents the request attached, in
	// the order of the request.
	Documents [][]byte
}

// errNotObject is returned for a body that is not a JSON object.
var errNotObject = errors.New("the request body is not a JSON object")

// Canonical returns body re-encoded with object keys sorted and the
// Ignored fields removed from the top level. Numbers keep their text.
func Canonical(body []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	for _, k := range Ignored {
		delete(m, k)
	}
	// encoding/json writes map keys sorted.
	return json.Marshal(m)
}

// Key returns the cache key of req.
func Key(req *Request) (string, error) {
	c, err := Canonical(req.Body)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	mode := "json"
	if req.Stream {
		mode = "sse"
	}
	fmt.Fprintf(h, "llmproxy-cache-v1\x00%s\x00%s\x00", mode, req.Route)
	ts := append([]Target(nil), req.Targets...)
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Instance != ts[j].Instance {
			return ts[i].Instance < ts[j].Instance
		}
		return ts[i].Model < ts[j].Model
	})
	for _, t := range ts {
		fmt.Fprintf(h, "%s\x00%s\x00", t.Instance, t.Model)
	}
	fmt.Fprintf(h, "%d\x00", len(req.Documents))
	for _, d := range req.Documents {
		fmt.Fprintf(h, "%x\x00", d)
	}
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HasTools reports whether a chat request body declares tools (or the
// legacy functions).
func HasTools(body []byte) bool {
	var v struct {
		Tools     []json.RawMessage `json:"tools"`
		Functions []json.RawMessage `json:"functions"`
	}
	if json.Unmarshal(body, &v) != nil {
		return true
	}
	return len(v.Tools) > 0 || len(v.Functions) > 0
}
