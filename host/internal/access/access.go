// Package access holds the rules that guard a storage instance: which
// buckets it exposes, which key prefixes are off limits, and how long
// presigned URLs may live. It also parses the object part of storage
// paths so that no request can name a key outside its bucket.
package access

import (
	"errors"
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
	// MaxObjectBytes caps one upload; 0 means no cap.
	MaxObjectBytes int64
}

// NewPolicy builds the policy of a storage instance config.
func NewPolicy(in *config.Instance) (*Policy, error) {
	p := &Policy{AllowedBuckets: in.AllowedBuckets, DeniedPrefixes: in.DeniedPrefixes,
		DefaultTTL: DefaultTTL, MinTTL: MinTTL, MaxTTL: MaxTTL, MaxObjectBytes: in.MaxObjectBytes}
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
func (p *Policy) Check(o Object) error {
	return p.check(o.Bucket, o.Key)
}

func (p *Policy) check(bucket, key string) error {
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
		return p.check(bucket, "")
	}
	for _, d := range p.DeniedPrefixes {
		if strings.HasPrefix(prefix, d) {
			return p.check(bucket, prefix)
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

// Object names one stored object: a valid bucket and a normalised key.
// It is the only form in which the host passes an object to a storage
// plugin, whichever way the request named it (storage route, presign,
// host-signed URL, document reference in a chat), so every path obeys
// the same rules: no "." or ".." segments, no empty segments (a leading
// "/" or "//"), no control characters or invalid UTF-8, at most
// storage.MaxKeyBytes bytes. An Object with an empty Key names a whole
// bucket (list).
type Object struct {
	Bucket string
	Key    string
}

// ParseObject parses the raw (still escaped) "{bucket}/{key...}" part of
// a storage path, unescaping each side before checking it, so that an
// escaped "/" or ".." is judged as the backend would see it. needKey
// refuses a path that names only a bucket.
func ParseObject(raw string, needKey bool) (Object, error) {
	rawBucket, rawKey, _ := strings.Cut(raw, "/")
	bucket, err := url.PathUnescape(rawBucket)
	if err != nil {
		return Object{}, openai.InvalidRequest("bucket", "bucket is not a valid escaped path segment")
	}
	key, err := url.PathUnescape(rawKey)
	if err != nil {
		return Object{}, openai.InvalidRequest("key", "key is not validly escaped")
	}
	if key == "" {
		if err := storage.ValidateBucket(bucket); err != nil {
			return Object{}, err
		}
		if needKey {
			return Object{}, storage.InvalidKey(key, "the path needs a key after the bucket: /{bucket}/{key}")
		}
		return Object{Bucket: bucket}, nil
	}
	return NewObject(bucket, key)
}

// NewObject checks an unescaped bucket and key, as they come from a
// document reference or a signed URL, and returns them as an Object.
func NewObject(bucket, key string) (Object, error) {
	if err := storage.ValidateBucket(bucket); err != nil {
		return Object{}, err
	}
	if err := storage.ValidateKey(key); err != nil {
		return Object{}, err
	}
	if err := checkSegments(key); err != nil {
		return Object{}, storage.InvalidKey(key, err.Error())
	}
	return Object{Bucket: bucket, Key: key}, nil
}

// CheckPrefix checks a list prefix by the rules of keys, except that it
// may be empty.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := storage.ValidateKey(prefix); err != nil {
		e := *(err.(*openai.Error))
		e.Param = "prefix"
		return &e
	}
	if err := checkSegments(prefix); err != nil {
		e := storage.InvalidKey(prefix, err.Error())
		e.Param = "prefix"
		return e
	}
	return nil
}

// checkSegments refuses "." and ".." segments and empty ones; a trailing
// "/" (a folder-like key or prefix) is allowed.
func checkSegments(key string) error {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		switch {
		case seg == ".." || seg == ".":
			return errors.New(`keys may not contain "." or ".." segments`)
		case seg == "" && i < len(segs)-1:
			return errors.New(`keys may not start with "/" or contain "//"`)
		case strings.ContainsRune(seg, '\\'):
			return errors.New(`keys may not contain "\\"`)
		}
	}
	return nil
}
