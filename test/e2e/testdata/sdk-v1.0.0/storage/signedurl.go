package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Query parameters of a host-signed URL.
const (
	ParamMethod      = "X-Llmproxy-Method"
	ParamExpires     = "X-Llmproxy-Expires"
	ParamContentType = "X-Llmproxy-Content-Type"
	ParamSignature   = "X-Llmproxy-Signature"
)

// SignedOp is the path segment after the instance in a host-signed URL:
// {public_url}/-{type}/{instance}/object/{bucket}/{key...}.
const SignedOp = "object"

// MinSigningKeyBytes is the shortest HMAC key SignURL and
// VerifySignedURL accept.
const MinSigningKeyBytes = 16

// SignedObject is what a host-signed URL grants: one method on one object
// of one storage instance until Expires.
type SignedObject struct {
	// Type is the storage type, e.g. "local".
	Type     string
	Instance string
	Bucket   string
	Key      string
	// Method is http.MethodGet (which also allows HEAD) or
	// http.MethodPut.
	Method string
	// ContentType, when set on a PUT, is the content type the object is
	// stored with, whatever the uploader sends.
	ContentType string
	Expires     time.Time
}

// signature is the hex HMAC-SHA256 of o's fields, each length-prefixed
// so that no two different objects share a signed string.
func (o *SignedObject) signature(signingKey []byte) string {
	m := hmac.New(sha256.New, signingKey)
	io.WriteString(m, "llmproxy-signed-url-v1")
	for _, f := range []string{o.Method, o.Type, o.Instance, o.Bucket, o.Key, o.ContentType, strconv.FormatInt(o.Expires.Unix(), 10)} {
		fmt.Fprintf(m, "\n%d:%s", len(f), f)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// SignURL returns a URL below publicURL (the host's externally visible
// base URL, e.g. "https://llm.example.com") that grants o until
// o.Expires, verifiable with VerifySignedURL and the same key.
func SignURL(signingKey []byte, publicURL string, o SignedObject) (string, error) {
	if len(signingKey) < MinSigningKeyBytes {
		return "", fmt.Errorf("sign URL: signing key must be at least %d bytes", MinSigningKeyBytes)
	}
	if o.Method != http.MethodGet && o.Method != http.MethodPut {
		return "", fmt.Errorf("sign URL: method must be GET or PUT, got %q", o.Method)
	}
	if o.Type == "" || o.Instance == "" || o.Bucket == "" || o.Key == "" {
		return "", errors.New("sign URL: type, instance, bucket and key are required")
	}
	base, err := url.Parse(publicURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return "", fmt.Errorf("sign URL: public URL %q is not an absolute URL", publicURL)
	}
	segs := []string{"-" + o.Type, o.Instance, SignedOp, o.Bucket}
	segs = append(segs, strings.Split(o.Key, "/")...)
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	q := url.Values{}
	q.Set(ParamMethod, o.Method)
	q.Set(ParamExpires, strconv.FormatInt(o.Expires.Unix(), 10))
	if o.ContentType != "" {
		q.Set(ParamContentType, o.ContentType)
	}
	q.Set(ParamSignature, o.signature(signingKey))
	return strings.TrimSuffix(base.String(), "/") + "/" + strings.Join(segs, "/") + "?" + q.Encode(), nil
}

// VerifySignedURL checks that u is a URL made by SignURL with signingKey,
// that it has not expired at now, and that it allows method (a GET URL
// also allows HEAD). It returns what the URL grants. Failures are 403
// permission_error values (code signature_invalid or signature_expired),
// ready to return to the client.
func VerifySignedURL(signingKey []byte, method string, u *url.URL, now time.Time) (*SignedObject, error) {
	if len(signingKey) < MinSigningKeyBytes {
		return nil, fmt.Errorf("verify signed URL: signing key must be at least %d bytes", MinSigningKeyBytes)
	}
	o, err := parseSignedPath(u.EscapedPath())
	if err != nil {
		return nil, err
	}
	q := u.Query()
	o.Method = q.Get(ParamMethod)
	o.ContentType = q.Get(ParamContentType)
	exp, err := strconv.ParseInt(q.Get(ParamExpires), 10, 64)
	if err != nil {
		return nil, signatureInvalid("missing or malformed " + ParamExpires)
	}
	o.Expires = time.Unix(exp, 0)
	got, err := hex.DecodeString(q.Get(ParamSignature))
	if err != nil || len(got) != sha256.Size {
		return nil, signatureInvalid("missing or malformed " + ParamSignature)
	}
	want, _ := hex.DecodeString(o.signature(signingKey))
	if !hmac.Equal(got, want) {
		return nil, signatureInvalid("the signature does not match the URL")
	}
	if !now.Before(o.Expires) {
		return nil, openai.NewError(http.StatusForbidden, openai.TypePermission, CodeSignatureExpired,
			"the signed URL expired at "+o.Expires.UTC().Format(time.RFC3339))
	}
	if method != o.Method && !(method == http.MethodHead && o.Method == http.MethodGet) {
		return nil, signatureInvalid(fmt.Sprintf("the URL is signed for %s, not %s", o.Method, method))
	}
	return o, nil
}

// parseSignedPath finds /-{type}/{instance}/object/{bucket}/{key...} in an
// escaped path, after any prefix the public URL added.
func parseSignedPath(p string) (*SignedObject, error) {
	segs := strings.Split(p, "/")
	for i := 0; i+4 < len(segs); i++ {
		if !strings.HasPrefix(segs[i], "-") || segs[i+2] != SignedOp {
			continue
		}
		parts := make([]string, 0, len(segs)-i)
		for _, s := range segs[i:] {
			u, err := url.PathUnescape(s)
			if err != nil {
				return nil, signatureInvalid("malformed path escape")
			}
			parts = append(parts, u)
		}
		o := &SignedObject{Type: parts[0][1:], Instance: parts[1], Bucket: parts[3], Key: strings.Join(parts[4:], "/")}
		if o.Type == "" || o.Instance == "" || o.Bucket == "" || o.Key == "" {
			break
		}
		return o, nil
	}
	return nil, signatureInvalid("the path is not /-{type}/{instance}/object/{bucket}/{key}")
}

func signatureInvalid(msg string) *openai.Error {
	return openai.NewError(http.StatusForbidden, openai.TypePermission, CodeSignatureInvalid, msg)
}

// ObjectIO is the part of a storage backend SignedURLHandler serves
// through; *Client implements it.
type ObjectIO interface {
	Put(ctx context.Context, obj *Object, body io.Reader) (*ObjectInfo, error)
	Get(ctx context.Context, req *GetRequest) (*ObjectInfo, io.ReadCloser, error)
	Head(ctx context.Context, bucket, key string) (*ObjectInfo, error)
}

var _ ObjectIO = (*Client)(nil)

// SignedURLHandler serves URLs made by SignURL with signingKey: GET (with
// single byte ranges) and HEAD download the object, PUT uploads the
// request body. It checks the signature only, not the type and instance
// in the path: mount it where the path's instance is the one objects
// serves. Errors are answered with the OpenAI error body.
func SignedURLHandler(objects ObjectIO, signingKey []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, err := VerifySignedURL(signingKey, r.Method, r.URL, time.Now())
		if err != nil {
			WriteError(w, err)
			return
		}
		switch r.Method {
		case http.MethodPut:
			servePut(w, r, objects, o)
		case http.MethodHead:
			info, err := objects.Head(r.Context(), o.Bucket, o.Key)
			if err != nil {
				WriteError(w, err)
				return
			}
			setInfoHeader(w.Header(), info)
			w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
			w.WriteHeader(http.StatusOK)
		default:
			serveGet(w, r, objects, o)
		}
	})
}

func servePut(w http.ResponseWriter, r *http.Request, objects ObjectIO, o *SignedObject) {
	ct := o.ContentType
	if ct == "" {
		ct = r.Header.Get("Content-Type")
	}
	size := r.ContentLength
	if size < 0 {
		size = -1
	}
	info, err := objects.Put(r.Context(), &Object{Bucket: o.Bucket, Key: o.Key, ContentType: ct, Size: size}, r.Body)
	if err != nil {
		WriteError(w, err)
		return
	}
	if info.ETag != "" {
		w.Header().Set("ETag", strconv.Quote(info.ETag))
	}
	w.WriteHeader(http.StatusOK)
}

func serveGet(w http.ResponseWriter, r *http.Request, objects ObjectIO, o *SignedObject) {
	rng, err := ParseRangeHeader(r.Header.Get("Range"))
	if err != nil {
		WriteError(w, err)
		return
	}
	if rng != nil && rng.Start < 0 {
		head, err := objects.Head(r.Context(), o.Bucket, o.Key)
		if err != nil {
			WriteError(w, err)
			return
		}
		rng = ResolveSuffix(rng, head.Size)
	}
	info, body, err := objects.Get(r.Context(), &GetRequest{Bucket: o.Bucket, Key: o.Key, Range: rng})
	if err != nil {
		WriteError(w, err)
		return
	}
	defer body.Close()
	h := w.Header()
	setInfoHeader(h, info)
	status := http.StatusOK
	length := info.Size
	if cr := info.ContentRange; cr != nil {
		status = http.StatusPartialContent
		length = cr.End - cr.Start + 1
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", cr.Start, cr.End, info.Size))
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	buf := make([]byte, PieceSize)
	if _, err := io.CopyBuffer(w, body, buf); err != nil {
		// The status is out; all that is left is to cut the response
		// short, which the client sees as a truncated body.
		Logger().Warn("signed URL download cut short", "bucket", o.Bucket, "error", err)
	}
}

func setInfoHeader(h http.Header, info *ObjectInfo) {
	if info.ContentType != "" {
		h.Set("Content-Type", info.ContentType)
	}
	if info.ETag != "" {
		h.Set("ETag", strconv.Quote(info.ETag))
	}
	if !info.LastModified.IsZero() {
		h.Set("Last-Modified", info.LastModified.UTC().Format(http.TimeFormat))
	}
	h.Set("Accept-Ranges", "bytes")
}

// ParseRangeHeader parses an HTTP Range header holding one range:
// "bytes=start-end", "bytes=start-" or the suffix form "bytes=-n", which
// it returns as Start = -n, End = -1 (see ResolveSuffix). It returns nil
// for an empty header and a 416 error for anything else (multiple ranges
// included).
func ParseRangeHeader(v string) (*ByteRange, error) {
	if v == "" {
		return nil, nil
	}
	bad := openai.NewError(http.StatusRequestedRangeNotSatisfiable, openai.TypeInvalidRequest, CodeInvalidRange,
		fmt.Sprintf("unsupported Range header %q: use one range, bytes=start-end, bytes=start- or bytes=-suffix", v))
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil, bad
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, bad
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return nil, bad
		}
		return &ByteRange{Start: -n, End: -1}, nil
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return nil, bad
	}
	end := int64(-1)
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return nil, bad
		}
	}
	return &ByteRange{Start: start, End: end}, nil
}

// ResolveSuffix turns a suffix range (Start < 0, from ParseRangeHeader)
// into the last -Start bytes of an object of the given size; other ranges
// are returned as they are.
func ResolveSuffix(r *ByteRange, size int64) *ByteRange {
	if r == nil || r.Start >= 0 {
		return r
	}
	return &ByteRange{Start: max(size+r.Start, 0), End: size - 1}
}

// WriteError answers an HTTP request with err: an *openai.Error with its
// status, Retry-After and JSON body; anything else as 502.
func WriteError(w http.ResponseWriter, err error) {
	var e *openai.Error
	if !errors.As(err, &e) {
		e = openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "storage_error", err.Error())
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	w.Write(e.JSON())
}
