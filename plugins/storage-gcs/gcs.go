package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// version is the plugin's version, reported by Describe.
const version = "0.1.0"

// defaultContentType is stored when an upload names no content type, so
// the backend does not guess one from the body.
const defaultContentType = "application/octet-stream"

// Interface guards.
var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.Presigner     = (*Store)(nil)
	_ storage.HealthChecker = (*Store)(nil)
)

// Store is the Google Cloud Storage plugin. The zero value is ready for
// Configure.
type Store struct {
	b atomic.Pointer[backend]
}

// backend is one configured client; Configure swaps it atomically so
// requests in flight finish on the one they started with.
type backend struct {
	settings
	client *gcs.Client
	// sa is the service account key that signs URLs; nil means the
	// client's own credentials sign them (IAM signBlob).
	sa *serviceAccount
}

// Describe implements storage.Storage.
func (s *Store) Describe(context.Context) (*storage.Description, error) {
	return &storage.Description{
		Name:         "gcs",
		Version:      version,
		Capabilities: []string{storage.CapRange},
		ConfigSchema: configSchema(),
		Credentials:  credentials(),
	}, nil
}

// Configure implements storage.Storage. It builds a client from the config
// block and the service account key (or Application Default Credentials)
// without calling the service.
func (s *Store) Configure(_ context.Context, cfg *storage.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	set, err := c.resolve()
	if err != nil {
		return err
	}
	switch js := cfg.Credentials[credServiceAccount]; c.Auth {
	case "":
	case authStatic:
		if js == "" {
			return schema.Errorf([]string{"auth"}, `auth = "static" needs the %s credential`, credServiceAccount)
		}
	case authWorkloadIdentity:
		if js != "" || set.anonymous {
			return schema.Errorf([]string{"auth"}, `auth = "workload_identity" takes no credential and is not anonymous: the identity comes from the GKE metadata server or a federation config`)
		}
	default:
		return schema.Errorf([]string{"auth"}, `auth must be "static" or "workload_identity", got %q`, c.Auth)
	}
	b := &backend{settings: set}
	var opts []option.ClientOption
	if set.endpoint != "" {
		opts = append(opts, option.WithEndpoint(set.endpoint))
	}
	if js := cfg.Credentials[credServiceAccount]; js != "" {
		if b.sa, err = parseServiceAccount(js); err != nil {
			return fmt.Errorf("configure gcs: %w", err)
		}
		if !set.anonymous {
			opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(js)))
		}
	}
	if set.anonymous {
		opts = append(opts, option.WithoutAuthentication())
	}
	// The client outlives this call; it must not inherit its deadline.
	b.client, err = gcs.NewClient(context.Background(), opts...)
	if err != nil {
		return fmt.Errorf("configure gcs: client: %w", err)
	}
	s.b.Store(b)
	return nil
}

// backend returns the configured backend or an error before Configure.
func (s *Store) backend() (*backend, error) {
	b := s.b.Load()
	if b == nil {
		return nil, errors.New("gcs storage is not configured")
	}
	return b, nil
}

// Put implements storage.Storage. The body goes up as a resumable upload
// in chunks of chunk_size; the object appears only when the body has
// ended, and a failed body cancels the upload.
func (s *Store) Put(ctx context.Context, obj *storage.Object, body io.Reader) (*storage.ObjectInfo, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := b.client.Bucket(obj.Bucket).Object(obj.Key).NewWriter(ctx)
	w.ChunkSize = b.chunkSize
	w.ContentType = obj.ContentType
	if w.ContentType == "" {
		w.ContentType = defaultContentType
	}
	w.Metadata = obj.Metadata
	cr := &errReader{r: body}
	if _, err := io.Copy(w, cr); err != nil {
		// Cancelling before Close aborts the upload: nothing is committed.
		cancel()
		w.Close()
		if cr.err != nil && !errors.Is(cr.err, io.EOF) {
			return nil, mapError(cr.err, opPut, obj.Bucket, obj.Key)
		}
		return nil, b.notFound(context.WithoutCancel(ctx), mapError(err, opPut, obj.Bucket, obj.Key), obj.Bucket)
	}
	if err := w.Close(); err != nil {
		return nil, b.notFound(ctx, mapError(err, opPut, obj.Bucket, obj.Key), obj.Bucket)
	}
	info := objectInfo(w.Attrs())
	info.Bucket = obj.Bucket
	return info, nil
}

// notFound turns an object_not_found error into bucket_not_found when the
// bucket itself is missing (GCS answers both with a bare 404).
func (b *backend) notFound(ctx context.Context, err error, bucket string) error {
	if !isObjectNotFound(err) {
		return err
	}
	if _, aerr := b.client.Bucket(bucket).Attrs(ctx); errors.Is(aerr, gcs.ErrBucketNotExist) {
		return storage.BucketNotFound(bucket)
	}
	return err
}

// Get implements storage.Storage. It reads the object's attributes, then
// its bytes pinned to that generation, so the body matches the info even
// when the object is replaced meanwhile.
func (s *Store) Get(ctx context.Context, req *storage.GetRequest) (*storage.ObjectInfo, io.ReadCloser, error) {
	b, err := s.backend()
	if err != nil {
		return nil, nil, err
	}
	oh := b.client.Bucket(req.Bucket).Object(req.Key)
	attrs, err := oh.Attrs(ctx)
	if err != nil {
		return nil, nil, b.notFound(ctx, mapError(err, opGet, req.Bucket, req.Key), req.Bucket)
	}
	info := objectInfo(attrs)
	offset, length := int64(0), int64(-1)
	if req.Range != nil {
		r, err := storage.ResolveRange(*req.Range, attrs.Size)
		if err != nil {
			return nil, nil, err
		}
		info.ContentRange = &r
		offset, length = r.Start, r.Length()
	}
	rd, err := oh.Generation(attrs.Generation).ReadCompressed(true).NewRangeReader(ctx, offset, length)
	if err != nil {
		return nil, nil, b.notFound(ctx, mapError(err, opGet, req.Bucket, req.Key), req.Bucket)
	}
	return info, rd, nil
}

// Head implements storage.Storage.
func (s *Store) Head(ctx context.Context, bucket, key string) (*storage.ObjectInfo, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	attrs, err := b.client.Bucket(bucket).Object(key).Attrs(ctx)
	if err != nil {
		return nil, b.notFound(ctx, mapError(err, opHead, bucket, key), bucket)
	}
	return objectInfo(attrs), nil
}

// Delete implements storage.Storage. Deleting a missing object succeeds;
// a missing bucket is still an error.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	err = b.notFound(ctx, mapError(b.client.Bucket(bucket).Object(key).Delete(ctx), opDelete, bucket, key), bucket)
	if isObjectNotFound(err) {
		return nil
	}
	return err
}

// Health implements storage.HealthChecker. With a project it lists one of
// the project's buckets, which needs a reachable service and working
// credentials; without one there is nothing to ask and it succeeds.
func (s *Store) Health(ctx context.Context) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	if b.project == "" {
		return nil
	}
	it := b.client.Buckets(ctx, b.project)
	it.PageInfo().MaxSize = 1
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return mapError(err, opHealth, "", "")
	}
	return nil
}

// objectInfo converts GCS attributes.
func objectInfo(a *gcs.ObjectAttrs) *storage.ObjectInfo {
	if a == nil {
		return &storage.ObjectInfo{}
	}
	return &storage.ObjectInfo{
		Bucket:       a.Bucket,
		Key:          a.Name,
		Size:         a.Size,
		ETag:         strings.Trim(a.Etag, `"`),
		ContentType:  a.ContentType,
		LastModified: a.Updated,
		Metadata:     a.Metadata,
	}
}

// errReader remembers the first error its reader returned, so Put can
// tell a failed body from a failed upload.
type errReader struct {
	r   io.Reader
	err error
}

func (c *errReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}
