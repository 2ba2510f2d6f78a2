// Package storage is what a storage plugin author writes against.
//
// A storage plugin is a Go type that implements Storage, served by one
// call in main:
//
//	func main() { storage.Serve(&Local{}) }
//
// Serve speaks the go-plugin handshake and the llmproxy.storage.v1 gRPC
// service; authors never see protobuf. Optional features are optional
// interfaces (Presigner, HealthChecker): the SDK advertises each one the
// type implements.
//
// The host calls Describe once after start, then Configure with the
// instance's config and credentials (again whenever credentials rotate),
// then the data-plane methods concurrently. Object bodies are streamed in
// pieces of at most PieceSize bytes in both directions, so neither side
// ever holds a whole object in memory. Errors meant for the client are
// *openai.Error values; the constructors in this package (NotFound,
// BucketNotFound, AccessDenied, InvalidKey, ...) give them the shapes the
// host and its clients expect. Any other error reaches the client as 502.
//
// The host-side Client mirrors Storage: Get hands back an io.ReadCloser,
// Put takes an io.Reader. SignURL, VerifySignedURL and SignedURLHandler
// implement presigned URLs that point at the host itself, for backends
// (such as a local directory) that have no server of their own.
package storage

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// PieceSize is the largest body piece sent in one gRPC message. Readers
// and writers on both sides buffer at most a few pieces at a time.
const PieceSize = 256 << 10

// DefaultMaxKeys is the page size List uses when ListRequest.MaxKeys is 0,
// and the largest one a backend must honour.
const DefaultMaxKeys = 1000

// Storage is the interface every storage plugin implements.
//
// Describe returns the plugin's name, version, config schema and the
// credentials it needs; it must work before Configure. Configure receives
// an instance's decoded config block and resolved credentials; it
// validates them and returns schema.Diagnostics (or any error) when they
// are wrong. It may be called again at any time with new credentials and
// must then swap them without failing requests in flight.
//
// Put stores body under obj.Bucket/obj.Key, replacing any existing object,
// and returns the stored object's info. It must stream body (never read it
// whole) and must not leave a partial object behind when body fails:
// the object appears only when body has returned io.EOF. When obj.Size is
// not -1 the SDK guarantees body yields exactly that many bytes (it fails
// otherwise).
//
// Get returns the object's info and a reader over its bytes, or over the
// requested range, in which case info.ContentRange is set and info.Size
// is still the size of the whole object. The caller closes the reader.
//
// Head returns an object's info without its body. List returns one page
// of the objects in a bucket, sorted by key. Delete removes an object;
// deleting an object that does not exist succeeds. Every method must
// honour ctx.
type Storage interface {
	Describe(ctx context.Context) (*Description, error)
	Configure(ctx context.Context, cfg *Config) error
	Put(ctx context.Context, obj *Object, body io.Reader) (*ObjectInfo, error)
	Get(ctx context.Context, req *GetRequest) (*ObjectInfo, io.ReadCloser, error)
	Head(ctx context.Context, bucket, key string) (*ObjectInfo, error)
	List(ctx context.Context, req *ListRequest) (*ListResult, error)
	Delete(ctx context.Context, bucket, key string) error
}

// Presigner is implemented by storage plugins that can issue URLs a plain
// HTTP client may use to GET or PUT one object without llmproxy
// credentials until the URL expires.
type Presigner interface {
	Presign(ctx context.Context, req *PresignRequest) (*PresignedURL, error)
}

// HealthChecker is implemented by storage plugins that can tell whether
// their backend is usable. The host calls it periodically; an error marks
// the instance unhealthy in /readyz without restarting the plugin.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// Capabilities a storage plugin may advertise in
// Description.Capabilities. The SDK derives CapPresign and CapHealth from
// the interfaces the plugin implements.
const (
	CapPresign = "presign"
	CapHealth  = "health"
	// CapRange says Get honours byte ranges natively. Every plugin must
	// honour GetRequest.Range; the capability is informational.
	CapRange = "range"
)

// Description is what Describe returns.
type Description struct {
	// Name is the storage type, e.g. "s3"; it matches the binary name
	// llmproxy-storage-<name>.
	Name    string
	Version string
	// Capabilities are filled in by the SDK from the implemented
	// interfaces; a plugin may add CapRange.
	Capabilities []string
	ConfigSchema schema.Schema
	Credentials  []schema.Credential
}

// Config is what Configure receives: the instance name, its config block
// as JSON (see Config.Decode), its credentials and host settings.
type Config = schema.Config

// Object names an object to store and describes its body.
type Object struct {
	Bucket      string
	Key         string
	ContentType string
	// Size is the body length in bytes, -1 when unknown.
	Size int64
	// Metadata is user metadata stored with the object.
	Metadata map[string]string
}

// ByteRange is an inclusive byte range [Start, End] of an object. End -1
// means "to the end of the object".
type ByteRange struct {
	Start int64
	End   int64
}

// Length returns the number of bytes in the range, or -1 when End is
// open.
func (r ByteRange) Length() int64 {
	if r.End < 0 {
		return -1
	}
	return r.End - r.Start + 1
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Bucket string
	Key    string
	// Size is the size of the whole object in bytes.
	Size int64
	// ETag is the backend's entity tag without surrounding quotes.
	ETag         string
	ContentType  string
	LastModified time.Time
	Metadata     map[string]string
	// ContentRange is the range a ranged Get returns, with both ends
	// resolved; nil for the whole object.
	ContentRange *ByteRange
}

// GetRequest asks for an object or a range of it.
type GetRequest struct {
	Bucket string
	Key    string
	// Range selects part of the object; nil for the whole object.
	Range *ByteRange
}

// ListRequest asks for one page of a bucket's objects.
type ListRequest struct {
	Bucket string
	// Prefix restricts the listing to keys that start with it.
	Prefix string
	// Delimiter, when set (usually "/"), rolls keys that contain it after
	// Prefix up into CommonPrefixes.
	Delimiter string
	// PageToken is the previous page's NextPageToken; empty first.
	PageToken string
	// MaxKeys bounds the page (objects plus common prefixes); 0 means
	// DefaultMaxKeys.
	MaxKeys int
}

// ListResult is one page of a listing. Objects and CommonPrefixes are
// each sorted lexicographically.
type ListResult struct {
	Objects        []ObjectInfo
	CommonPrefixes []string
	// NextPageToken is empty on the last page.
	NextPageToken string
}

// PresignRequest asks for a presigned URL.
type PresignRequest struct {
	Bucket string
	Key    string
	// Method is http.MethodGet or http.MethodPut.
	Method string
	// TTL is how long the URL stays valid.
	TTL time.Duration
	// ContentType is the Content-Type a presigned PUT must send.
	ContentType string
}

// PresignedURL is a URL a plain HTTP client can use until Expires.
type PresignedURL struct {
	URL    string
	Method string
	// Header must be sent with the request for the signature to hold.
	Header  http.Header
	Expires time.Time
}

// Meta describes the client request a call serves. The host attaches it
// to ctx with ContextWithMeta; the plugin finds it with MetaFromContext.
type Meta struct {
	RequestID string
	Instance  string
	Deadline  time.Time
	// Trace carries W3C trace context headers.
	Trace map[string]string
}

type metaKey struct{}

// ContextWithMeta returns ctx carrying m.
func ContextWithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFromContext returns the Meta carried by ctx.
func MetaFromContext(ctx context.Context) (Meta, bool) {
	m, ok := ctx.Value(metaKey{}).(Meta)
	return m, ok
}

// Logger returns the plugin's logger. Its output (hclog JSON on stderr)
// is merged into the host's log; never write to stdout.
func Logger() hclog.Logger { return rpc.Logger() }

// Serve serves s as a storage plugin and does not return. It performs the
// go-plugin handshake, recovers panics into errors, and exits when the
// host goes away.
func Serve(s Storage) {
	rpc.Serve(PluginName, &Plugin{Impl: s})
}
