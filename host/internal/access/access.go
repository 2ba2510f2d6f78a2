// Package access holds the rules that guard a storage instance: which
// buckets it exposes, which key prefixes are off limits, and how long
// presigned URLs may live. It also parses the object part of storage
// paths so that no request can name a key outside its bucket.
package access

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/glob"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Default presign bounds.
const (
	DefaultTTL = 15 * time.Minute
	MinTTL     = time.Second
	MaxTTL     = 7 * 24 * time.Hour
)

// Policy is one storage instance's rules.
type Policy struct {
	// AllowedBuckets are bucket names or patterns; empty allows all.
	AllowedBuckets []string
	// DeniedPrefixes are key prefixes no request may touch.
	DeniedPrefixes             []string
	DefaultTTL, MinTTL, MaxTTL time.Duration
}

// NewPolicy builds the policy of a storage instance config.
func NewPolicy(in *config.Instance) (*Policy, error) {
	p := &Policy{AllowedBuckets: in.AllowedBuckets, DeniedPrefixes: in.DeniedPrefixes,
		DefaultTTL: DefaultTTL, MinTTL: MinTTL, MaxTTL: MaxTTL}
	if in.Presign != nil {
		var err error
		if p.DefaultTTL, err = config.Duration(in.Presign.DefaultTTL, DefaultTTL); err != nil {
			return nil, fmt.Errorf("presign.default_ttl: %w", err)
		}
		if p.MinTTL, err = config.Duration(in.Presign.MinTTL, MinTTL); err != nil {
			return nil, fmt.Errorf("presign.min_ttl: %w", err)
		}
		if p.MaxTTL, err = config.Duration(in.Presign.MaxTTL, MaxTTL); err != nil {
			return nil, fmt.Errorf("presign.max_ttl: %w", err)
		}
	}
	if p.MinTTL > p.MaxTTL || p.DefaultTTL < p.MinTTL || p.DefaultTTL > p.MaxTTL {
		return nil, fmt.Errorf("presign bounds must satisfy min_ttl (%v) <= default_ttl (%v) <= max_ttl (%v)", p.MinTTL, p.DefaultTTL, p.MaxTTL)
	}
	return p, nil
}

// Check refuses buckets outside the allowlist and keys under a denied
// prefix, with 403 errors that name the rule.
func (p *Policy) Check(bucket, key string) error {
	if len(p.AllowedBuckets) > 0 && !glob.Any(p.AllowedBuckets, bucket) {
		return openai.NewError(http.StatusForbidden, openai.TypePermission, "bucket_not_allowed",
			fmt.Sprintf("bucket %q is not allowed on this storage instance", bucket))
	}
	for _, d := range p.DeniedPrefixes {
		if strings.HasPrefix(key, d) {
			return openai.NewError(http.StatusForbidden, openai.TypePermission, "prefix_denied",
				fmt.Sprintf("keys under %q are denied on this storage instance", d))
		}
	}
	return nil
}

// CheckPrefix refuses list prefixes that would reach into a denied prefix
// only when the whole listing lies inside one; listings above a denied
// prefix are filtered instead (see Visible).
func (p *Policy) CheckPrefix(bucket, prefix string) error {
	if len(p.AllowedBuckets) > 0 && !glob.Any(p.AllowedBuckets, bucket) {
		return p.Check(bucket, "")
	}
	for _, d := range p.DeniedPrefixes {
		if strings.HasPrefix(prefix, d) {
			return p.Check(bucket, prefix)
		}
	}
	return nil
}

// Visible reports whether a listed key or common prefix may be shown.
func (p *Policy) Visible(key string) bool {
	for _, d := range p.DeniedPrefixes {
		if strings.HasPrefix(key, d) {
			return false
		}
	}
	return true
}

// TTL parses a ttl query value (seconds, or a Go duration) and checks it
// against the bounds; empty means the default.
func (p *Policy) TTL(v string) (time.Duration, error) {
	if v == "" {
		return p.DefaultTTL, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		d, err = time.ParseDuration(v + "s")
	}
	if err != nil {
		return 0, openai.InvalidRequest("ttl", fmt.Sprintf("ttl %q is not a number of seconds", v))
	}
	if d < p.MinTTL || d > p.MaxTTL {
		return 0, openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "ttl_out_of_range",
			fmt.Sprintf("ttl %v is outside the allowed range [%v, %v] (in seconds: %d to %d)",
				d, p.MinTTL, p.MaxTTL, int64(p.MinTTL/time.Second), int64(p.MaxTTL/time.Second)))
	}
	return d, nil
}

// SplitObject splits the raw (still escaped) "{bucket}/{key...}" part of a
// storage path, unescapes each side and validates them: keys with "..",
// "." or empty segments, a leading "/", control characters or over 1024
// bytes are refused with 400, so that no request escapes its bucket.
func SplitObject(raw string, needKey bool) (bucket, key string, err error) {
	rawBucket, rawKey, _ := strings.Cut(raw, "/")
	if bucket, err = url.PathUnescape(rawBucket); err != nil {
		return "", "", openai.InvalidRequest("bucket", "bucket is not a valid escaped path segment")
	}
	if err := storage.ValidateBucket(bucket); err != nil {
		return "", "", err
	}
	if key, err = url.PathUnescape(rawKey); err != nil {
		return "", "", openai.InvalidRequest("key", "key is not validly escaped")
	}
	if key == "" {
		if needKey {
			return "", "", storage.InvalidKey(key, "the path needs a key after the bucket: /{bucket}/{key}")
		}
		return bucket, "", nil
	}
	if err := storage.ValidateKey(key); err != nil {
		return "", "", err
	}
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		switch {
		case seg == ".." || seg == ".":
			return "", "", storage.InvalidKey(key, `keys may not contain "." or ".." segments`)
		case seg == "" && i < len(segs)-1:
			return "", "", storage.InvalidKey(key, `keys may not start with "/" or contain "//"`)
		}
	}
	return bucket, key, nil
}
