package storage

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Error codes of the storage errors this package builds.
const (
	CodeObjectNotFound    = "object_not_found"
	CodeBucketNotFound    = "bucket_not_found"
	CodeAccessDenied      = "access_denied"
	CodeInvalidKey        = "invalid_key"
	CodeInvalidBucket     = "invalid_bucket"
	CodeInvalidRange      = "invalid_range"
	CodeSizeMismatch      = "size_mismatch"
	CodeUnsupportedMethod = "unsupported_method"
	CodeSignatureInvalid  = "signature_invalid"
	CodeSignatureExpired  = "signature_expired"
	CodePresignDisabled   = "presign_disabled"
)

// MaxKeyBytes is the longest object key the SDK accepts, as in S3.
const MaxKeyBytes = 1024

// NotFound returns the 404 not_found_error for a missing object.
func NotFound(bucket, key string) *openai.Error {
	return openai.NewError(http.StatusNotFound, openai.TypeNotFound, CodeObjectNotFound,
		fmt.Sprintf("object %q not found in bucket %q", key, bucket))
}

// BucketNotFound returns the 404 not_found_error for a missing bucket.
func BucketNotFound(bucket string) *openai.Error {
	return openai.NewError(http.StatusNotFound, openai.TypeNotFound, CodeBucketNotFound,
		fmt.Sprintf("bucket %q not found", bucket))
}

// AccessDenied returns the 403 permission_error for an operation the
// backend refused.
func AccessDenied(msg string) *openai.Error {
	return openai.NewError(http.StatusForbidden, openai.TypePermission, CodeAccessDenied, msg)
}

// InvalidKey returns the 400 invalid_request_error for an unusable key.
func InvalidKey(key, reason string) *openai.Error {
	e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeInvalidKey,
		fmt.Sprintf("invalid object key %q: %s", truncate(key, 128), reason))
	e.Param = "key"
	return e
}

// InvalidBucket returns the 400 invalid_request_error for an unusable
// bucket name.
func InvalidBucket(bucket, reason string) *openai.Error {
	e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeInvalidBucket,
		fmt.Sprintf("invalid bucket name %q: %s", truncate(bucket, 128), reason))
	e.Param = "bucket"
	return e
}

// RangeNotSatisfiable returns the 416 error for a range outside the
// object.
func RangeNotSatisfiable(r ByteRange, size int64) *openai.Error {
	return openai.NewError(http.StatusRequestedRangeNotSatisfiable, openai.TypeInvalidRequest, CodeInvalidRange,
		fmt.Sprintf("range %d-%d is not satisfiable for an object of %d bytes", r.Start, r.End, size))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ValidateKey checks the key rules every backend shares: non-empty, at
// most MaxKeyBytes bytes, valid UTF-8, no control characters. Backends
// add their own rules on top.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return InvalidKey(key, "empty key")
	case len(key) > MaxKeyBytes:
		return InvalidKey(key, fmt.Sprintf("longer than %d bytes", MaxKeyBytes))
	case !utf8.ValidString(key):
		return InvalidKey(key, "not valid UTF-8")
	case strings.ContainsFunc(key, isControl):
		return InvalidKey(key, "contains a control character")
	}
	return nil
}

// ValidateBucket checks that a bucket name is usable as one path segment:
// 1 to 255 bytes, no "/", "\", control characters, and not "." or "..".
func ValidateBucket(bucket string) error {
	switch {
	case bucket == "":
		return InvalidBucket(bucket, "empty bucket name")
	case len(bucket) > 255:
		return InvalidBucket(bucket, "longer than 255 bytes")
	case bucket == "." || bucket == "..":
		return InvalidBucket(bucket, "reserved name")
	case strings.ContainsAny(bucket, `/\`):
		return InvalidBucket(bucket, "contains a slash")
	case !utf8.ValidString(bucket) || strings.ContainsFunc(bucket, isControl):
		return InvalidBucket(bucket, "contains a control character or invalid UTF-8")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// ResolveRange checks r against an object of size bytes and returns the
// resolved inclusive range, with an open End replaced by the last byte and
// an End past the object clamped to it, as HTTP does. A Start at or past
// the end of the object (so any range of an empty object) is a 416 error.
func ResolveRange(r ByteRange, size int64) (ByteRange, error) {
	if r.Start < 0 || (r.End >= 0 && r.End < r.Start) || r.Start >= size {
		return ByteRange{}, RangeNotSatisfiable(r, size)
	}
	end := r.End
	if end < 0 || end >= size {
		end = size - 1
	}
	return ByteRange{Start: r.Start, End: end}, nil
}
