package document

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults to fields left at their zero value.
const (
	DefaultMaxBytes       = 20 << 20
	DefaultMaxDocuments   = 8
	DefaultTimeout        = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxRedirects   = 5
	DefaultCacheMaxBytes  = 256 << 20
	DefaultCacheTTL       = time.Hour

	DefaultExtractProcesses   = 2
	DefaultExtractTimeout     = 20 * time.Second
	DefaultExtractCPUSeconds  = 20
	DefaultExtractMemoryBytes = 512 << 20
	DefaultMaxTextBytes       = 4 << 20
	DefaultMaxPages           = 2000
	DefaultMaxDecodedBytes    = 64 << 20
)

// Cache backends accepted in CacheConfig.Backend.
const (
	BackendMemory = "memory"
	BackendRedis  = "redis"
	BackendNone   = "none"
)

// DefaultMIMETypes are the document types accepted when Config lists none.
var DefaultMIMETypes = []string{
	"text/plain",
	"text/markdown",
	"text/html",
	"text/csv",
	"application/json",
	"application/pdf",
}

// Config is the host's documents { } block. The host decodes it from HCL
// with gohcl; durations are strings such as "30s". Zero values mean the
// defaults (see WithDefaults).
type Config struct {
	// MaxBytes caps the total size of all documents of one request.
	MaxBytes int64 `hcl:"max_bytes,optional"`
	// MaxDocuments caps the number of document parts of one request.
	MaxDocuments int `hcl:"max_documents,optional"`
	// Timeout bounds one URL fetch, redirects and body included.
	Timeout string `hcl:"timeout,optional"`
	// ConnectTimeout bounds one TCP connect of a URL fetch.
	ConnectTimeout string `hcl:"connect_timeout,optional"`
	// MaxRedirects is the number of redirects a URL fetch follows.
	MaxRedirects int `hcl:"max_redirects,optional"`
	// AllowHosts are host names (exact, or "*.example.com" for any
	// subdomain) that may resolve to non-public addresses. Use them only
	// for hosts whose DNS the operator controls.
	AllowHosts []string `hcl:"allow_hosts,optional"`
	// AllowCIDRs are address ranges the fetcher may connect to although
	// they are loopback, private, link-local or otherwise non-public.
	AllowCIDRs []string `hcl:"allow_cidrs,optional"`
	// AllowedMIMETypes are the accepted document types; "text/*" matches a
	// whole top-level type. Empty means DefaultMIMETypes.
	AllowedMIMETypes []string `hcl:"allowed_mime_types,optional"`
	// Cache configures the document cache; nil means the defaults.
	Cache *CacheConfig `hcl:"cache,block"`
	// Extract configures the extractor plugins; nil means the defaults.
	Extract *ExtractConfig `hcl:"extract,block"`
}

// ExtractConfig is the documents { extract { } } block: which extractor
// plugins parse untrusted documents, and the limits each of their
// processes runs under.
type ExtractConfig struct {
	// Extractors are the types of the llmproxy-extractor-<type> binaries
	// to run. Nil (the attribute left out) means every one found in the
	// plugins dir; an empty list means none.
	Extractors *[]string `hcl:"extractors,optional"`
	// Processes is the number of processes per extractor; each reads one
	// document at a time.
	Processes int `hcl:"processes,optional"`
	// Timeout is the wall-clock limit of one document, e.g. "20s".
	Timeout string `hcl:"timeout,optional"`
	// CPUSeconds is the CPU-time limit of one document.
	CPUSeconds int `hcl:"cpu_seconds,optional"`
	// MemoryBytes limits each process's memory (GOMEMLIMIT and its
	// address space beyond what it had at start).
	MemoryBytes int64 `hcl:"memory_bytes,optional"`
	// MaxTextBytes caps the text of one document.
	MaxTextBytes int64 `hcl:"max_text_bytes,optional"`
	// MaxPages caps the pages read of one document.
	MaxPages int64 `hcl:"max_pages,optional"`
	// MaxDecodedBytes caps what decompressing one document's streams may
	// produce.
	MaxDecodedBytes int64 `hcl:"max_decoded_bytes,optional"`
}

// WithDefaults returns c with every zero field set to its default.
func (c ExtractConfig) WithDefaults() ExtractConfig {
	if c.Processes == 0 {
		c.Processes = DefaultExtractProcesses
	}
	if c.Timeout == "" {
		c.Timeout = DefaultExtractTimeout.String()
	}
	if c.CPUSeconds == 0 {
		c.CPUSeconds = DefaultExtractCPUSeconds
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = DefaultExtractMemoryBytes
	}
	if c.MaxTextBytes == 0 {
		c.MaxTextBytes = DefaultMaxTextBytes
	}
	if c.MaxPages == 0 {
		c.MaxPages = DefaultMaxPages
	}
	if c.MaxDecodedBytes == 0 {
		c.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	return c
}

// TimeoutDuration returns the parsed Timeout of a validated config.
func (c ExtractConfig) TimeoutDuration() time.Duration {
	d, err := time.ParseDuration(c.WithDefaults().Timeout)
	if err != nil || d <= 0 {
		return DefaultExtractTimeout
	}
	return d
}

func (c ExtractConfig) validate() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"processes", int64(c.Processes)}, {"cpu_seconds", int64(c.CPUSeconds)}, {"memory_bytes", c.MemoryBytes},
		{"max_text_bytes", c.MaxTextBytes}, {"max_pages", c.MaxPages}, {"max_decoded_bytes", c.MaxDecodedBytes},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("extract.%s: must be positive, got %d", f.name, f.v))
		}
	}
	if c.MemoryBytes > 0 && c.MemoryBytes < 64<<20 {
		errs = append(errs, fmt.Errorf("extract.memory_bytes: must be at least 67108864 (64 MiB), got %d", c.MemoryBytes))
	}
	if _, err := positiveDuration("extract.timeout", c.Timeout); err != nil {
		errs = append(errs, err)
	}
	if c.Extractors != nil {
		for _, t := range *c.Extractors {
			if t == "" || strings.ContainsAny(t, "/\\ ") {
				errs = append(errs, fmt.Errorf("extract.extractors: %q is not an extractor type (the <type> of llmproxy-extractor-<type>)", t))
			}
		}
	}
	return errs
}

// CacheConfig is the documents { cache { } } block.
type CacheConfig struct {
	// Backend is "memory" (default), "redis" or "none".
	Backend string `hcl:"backend,optional"`
	// MaxBytes bounds the memory cache and the size of one Redis entry.
	MaxBytes int64 `hcl:"max_bytes,optional"`
	// TTL is how long an entry is served, e.g. "1h".
	TTL string `hcl:"ttl,optional"`
	// RedisURL is a redis:// or rediss:// URL; required for "redis".
	RedisURL string `hcl:"redis_url,optional"`
}

// DefaultConfig returns the configuration used when the host config has
// no documents block.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxDocuments == 0 {
		c.MaxDocuments = DefaultMaxDocuments
	}
	if c.Timeout == "" {
		c.Timeout = DefaultTimeout.String()
	}
	if c.ConnectTimeout == "" {
		c.ConnectTimeout = DefaultConnectTimeout.String()
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = DefaultMaxRedirects
	}
	if len(c.AllowedMIMETypes) == 0 {
		c.AllowedMIMETypes = append([]string(nil), DefaultMIMETypes...)
	}
	cc := CacheConfig{}
	if c.Cache != nil {
		cc = *c.Cache
	}
	if cc.Backend == "" {
		cc.Backend = BackendMemory
	}
	if cc.MaxBytes == 0 {
		cc.MaxBytes = DefaultCacheMaxBytes
	}
	if cc.TTL == "" {
		cc.TTL = DefaultCacheTTL.String()
	}
	c.Cache = &cc
	ec := ExtractConfig{}
	if c.Extract != nil {
		ec = *c.Extract
	}
	ec = ec.WithDefaults()
	c.Extract = &ec
	return c
}

// settings is a validated Config with parsed values.
type settings struct {
	maxBytes       int64
	maxDocuments   int
	timeout        time.Duration
	connectTimeout time.Duration
	maxRedirects   int
	policy         *Policy
	mime           mimeSet
	cacheBackend   string
	cacheMaxBytes  int64
	cacheTTL       time.Duration
	redisURL       string
	maxTextBytes   int64
	extractTimeout time.Duration
}

// Validate reports every problem of c (after defaults) in one error.
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c Config) settings() (settings, error) {
	c = c.WithDefaults()
	var errs []error
	s := settings{
		maxBytes:      c.MaxBytes,
		maxDocuments:  c.MaxDocuments,
		maxRedirects:  c.MaxRedirects,
		cacheBackend:  c.Cache.Backend,
		cacheMaxBytes: c.Cache.MaxBytes,
		redisURL:      c.Cache.RedisURL,
		maxTextBytes:  c.Extract.MaxTextBytes,
	}
	errs = append(errs, c.Extract.validate()...)
	s.extractTimeout = c.Extract.TimeoutDuration()
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: must be positive, got %d", c.MaxBytes))
	}
	if c.MaxDocuments < 0 {
		errs = append(errs, fmt.Errorf("max_documents: must be positive, got %d", c.MaxDocuments))
	}
	if c.MaxRedirects < 0 {
		errs = append(errs, fmt.Errorf("max_redirects: must be positive, got %d", c.MaxRedirects))
	}
	var err error
	if s.timeout, err = positiveDuration("timeout", c.Timeout); err != nil {
		errs = append(errs, err)
	}
	if s.connectTimeout, err = positiveDuration("connect_timeout", c.ConnectTimeout); err != nil {
		errs = append(errs, err)
	}
	if s.cacheTTL, err = positiveDuration("cache.ttl", c.Cache.TTL); err != nil {
		errs = append(errs, err)
	}
	if s.policy, err = NewPolicy(c.AllowHosts, c.AllowCIDRs); err != nil {
		errs = append(errs, err)
	}
	if s.mime, err = newMIMESet(c.AllowedMIMETypes); err != nil {
		errs = append(errs, fmt.Errorf("allowed_mime_types: %w", err))
	}
	if c.Cache.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("cache.max_bytes: must be positive, got %d", c.Cache.MaxBytes))
	}
	switch c.Cache.Backend {
	case BackendMemory, BackendNone:
	case BackendRedis:
		if c.Cache.RedisURL == "" {
			errs = append(errs, errors.New(`cache.redis_url: required when backend = "redis"`))
		}
	default:
		errs = append(errs, fmt.Errorf(`cache.backend: must be "memory", "redis" or "none", got %q`, c.Cache.Backend))
	}
	if err := errors.Join(errs...); err != nil {
		return settings{}, fmt.Errorf("documents config: %w", err)
	}
	return s, nil
}

func positiveDuration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: must be positive, got %s", name, v)
	}
	return d, nil
}
