package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// version is the plugin's version, reported by Describe.
const version = "0.1.0"

// Interface guards.
var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.Presigner     = (*Store)(nil)
	_ storage.HealthChecker = (*Store)(nil)
)

// Store is the Azure Blob Storage plugin. A bucket is a container and a
// key is a block blob name. The zero value is ready for Configure.
type Store struct {
	b atomic.Pointer[backend]
}

// backend is one configured client; Configure swaps it atomically so
// requests in flight finish on the one they started with.
type backend struct {
	settings
	svc *service.Client
	// key is set when the account key is configured; presigned URLs are
	// then service SAS signed with it.
	key *service.SharedKeyCredential
	// token is set when authenticating with an Azure identity; presigned
	// URLs are then user delegation SAS.
	token azcore.TokenCredential
}

// Describe implements storage.Storage.
func (s *Store) Describe(context.Context) (*storage.Description, error) {
	return &storage.Description{
		Name:         "azblob",
		Version:      version,
		Capabilities: []string{storage.CapRange},
		ConfigSchema: configSchema(),
		Credentials:  credentials(),
	}, nil
}

// Configure implements storage.Storage. It builds a client from the config
// block and the credentials (account key, SAS token, or the ambient Azure
// identity when neither is given) without calling the service.
func (s *Store) Configure(_ context.Context, cfg *storage.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	set, err := c.resolve()
	if err != nil {
		return err
	}
	b, err := newBackend(set, cfg.Credentials)
	if err != nil {
		return err
	}
	s.b.Store(b)
	return nil
}

func newBackend(set settings, creds map[string]string) (*backend, error) {
	opts := &service.ClientOptions{ClientOptions: policy.ClientOptions{
		// InsecureAllowCredentialWithHTTP lets shared key and bearer
		// auth talk to a plain-HTTP emulator; production URLs are https.
		InsecureAllowCredentialWithHTTP: set.insecure,
	}}
	b := &backend{settings: set}
	var err error
	key, sas := creds[credAccountKey], creds[credSASToken]
	switch set.auth {
	case authStatic:
		if key == "" && sas == "" {
			return nil, schema.Errorf([]string{"auth"}, `auth = "static" needs the %s or %s credential`, credAccountKey, credSASToken)
		}
	case authWorkloadIdentity:
		if key != "" || sas != "" {
			return nil, schema.Errorf([]string{"auth"}, `auth = "workload_identity" takes no credentials: the identity comes from the platform`)
		}
	}
	switch {
	case set.auth == authWorkloadIdentity:
		b.token, err = workloadIdentity(set.clientID)
		if err != nil {
			return nil, fmt.Errorf("configure azblob: workload identity: %w", err)
		}
		b.svc, err = service.NewClient(set.serviceURL, b.token, opts)
	case key != "" && sas != "":
		return nil, fmt.Errorf("configure azblob: set only one of the %s and %s credentials", credAccountKey, credSASToken)
	case key != "":
		b.key, err = service.NewSharedKeyCredential(set.accountName, strings.TrimSpace(key))
		if err != nil {
			return nil, fmt.Errorf("configure azblob: %s: %w", credAccountKey, err)
		}
		b.svc, err = service.NewClientWithSharedKeyCredential(set.serviceURL, b.key, opts)
	case sas != "":
		q, qerr := sasQuery(sas)
		if qerr != nil {
			return nil, fmt.Errorf("configure azblob: %w", qerr)
		}
		b.svc, err = service.NewClientWithNoCredential(set.serviceURL+"?"+q, opts)
	default:
		b.token, err = azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("configure azblob: no %s or %s credential and no Azure identity: %w", credAccountKey, credSASToken, err)
		}
		b.svc, err = service.NewClient(set.serviceURL, b.token, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("configure azblob: client for %s: %w", set.serviceURL, err)
	}
	return b, nil
}

// backend returns the configured backend or an error before Configure.
func (s *Store) backend() (*backend, error) {
	b := s.b.Load()
	if b == nil {
		return nil, errors.New("azblob storage is not configured")
	}
	return b, nil
}

func (b *backend) blob(bucket, key string) *blockblob.Client {
	return b.svc.NewContainerClient(bucket).NewBlockBlobClient(key)
}

// Put implements storage.Storage. The body is staged in blocks of
// block_size, at most concurrency at a time, and committed only after the
// body has ended, so a failed body leaves no object behind.
func (s *Store) Put(ctx context.Context, obj *storage.Object, body io.Reader) (*storage.ObjectInfo, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	if err := validateMetadata(obj.Metadata); err != nil {
		return nil, err
	}
	opts := &blockblob.UploadStreamOptions{
		BlockSize:   b.blockSize,
		Concurrency: b.concurrency,
		Metadata:    toAzureMetadata(obj.Metadata),
	}
	if obj.ContentType != "" {
		opts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &obj.ContentType}
	}
	cr := &countingReader{r: body}
	resp, err := b.blob(obj.Bucket, obj.Key).UploadStream(ctx, cr, opts)
	if cr.err != nil && !errors.Is(cr.err, io.EOF) {
		// The body failed (client gone, size mismatch): report that, not
		// what the upload made of it.
		return nil, mapError(cr.err, opPut, obj.Bucket, obj.Key)
	}
	if err != nil {
		return nil, mapError(err, opPut, obj.Bucket, obj.Key)
	}
	info := &storage.ObjectInfo{
		Bucket:      obj.Bucket,
		Key:         obj.Key,
		Size:        cr.n,
		ETag:        etag(resp.ETag),
		ContentType: obj.ContentType,
		Metadata:    copyMetadata(obj.Metadata),
	}
	if info.ContentType == "" {
		info.ContentType = defaultContentType
	}
	if resp.LastModified != nil {
		info.LastModified = *resp.LastModified
	}
	return info, nil
}

// defaultContentType is what Azure stores when an upload names none.
const defaultContentType = "application/octet-stream"

// Get implements storage.Storage.
func (s *Store) Get(ctx context.Context, req *storage.GetRequest) (*storage.ObjectInfo, io.ReadCloser, error) {
	b, err := s.backend()
	if err != nil {
		return nil, nil, err
	}
	bc := b.blob(req.Bucket, req.Key)
	opts := &blob.DownloadStreamOptions{}
	if r := req.Range; r != nil {
		if r.Start < 0 || (r.End >= 0 && r.End < r.Start) {
			return nil, nil, storage.RangeNotSatisfiable(*r, -1)
		}
		opts.Range = blob.HTTPRange{Offset: r.Start}
		if r.End >= 0 {
			opts.Range.Count = r.End - r.Start + 1
		}
	}
	resp, err := bc.DownloadStream(ctx, opts)
	if err != nil {
		if req.Range != nil && isRangeError(err) {
			return nil, nil, s.rangeError(ctx, b, req)
		}
		return nil, nil, mapError(err, opGet, req.Bucket, req.Key)
	}
	info := &storage.ObjectInfo{
		Bucket:      req.Bucket,
		Key:         req.Key,
		ETag:        etag(resp.ETag),
		ContentType: deref(resp.ContentType),
		Metadata:    fromAzureMetadata(resp.Metadata),
	}
	if resp.LastModified != nil {
		info.LastModified = *resp.LastModified
	}
	if resp.ContentLength != nil {
		info.Size = *resp.ContentLength
	}
	if req.Range != nil {
		cr, size, err := parseContentRange(deref(resp.ContentRange))
		if err != nil {
			resp.Body.Close()
			return nil, nil, fmt.Errorf("azure blob get %s/%s: %w", req.Bucket, req.Key, err)
		}
		if cr.Start >= size || cr.End < cr.Start {
			// Azure answers 416 here; Azurite answers 206 with an
			// empty range such as "bytes 1000-999/1000".
			resp.Body.Close()
			return nil, nil, storage.RangeNotSatisfiable(*req.Range, size)
		}
		info.ContentRange, info.Size = &cr, size
	}
	return info, resp.Body, nil
}

// isRangeError reports whether err is Azure's 416 for a range outside the
// blob.
func isRangeError(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusRequestedRangeNotSatisfiable
}

// rangeError builds the 416 for req's range, with the blob's size when it
// can be had.
func (s *Store) rangeError(ctx context.Context, b *backend, req *storage.GetRequest) error {
	props, err := b.blob(req.Bucket, req.Key).GetProperties(ctx, nil)
	if err != nil {
		return mapError(err, opGet, req.Bucket, req.Key)
	}
	return storage.RangeNotSatisfiable(*req.Range, deref(props.ContentLength))
}

// parseContentRange parses "bytes start-end/size". It does not check that
// the range lies inside the object.
func parseContentRange(s string) (storage.ByteRange, int64, error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	rng, total, ok2 := strings.Cut(spec, "/")
	first, last, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return storage.ByteRange{}, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	size, err3 := strconv.ParseInt(total, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || start < 0 || end < -1 || size < 0 {
		return storage.ByteRange{}, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	return storage.ByteRange{Start: start, End: end}, size, nil
}

// Head implements storage.Storage.
func (s *Store) Head(ctx context.Context, bucket, key string) (*storage.ObjectInfo, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	p, err := b.blob(bucket, key).GetProperties(ctx, nil)
	if err != nil {
		return nil, mapError(err, opHead, bucket, key)
	}
	info := &storage.ObjectInfo{
		Bucket:      bucket,
		Key:         key,
		Size:        deref(p.ContentLength),
		ETag:        etag(p.ETag),
		ContentType: deref(p.ContentType),
		Metadata:    fromAzureMetadata(p.Metadata),
	}
	if p.LastModified != nil {
		info.LastModified = *p.LastModified
	}
	return info, nil
}

// List implements storage.Storage. The page token is Azure's opaque
// continuation marker.
func (s *Store) List(ctx context.Context, req *storage.ListRequest) (*storage.ListResult, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	cc := b.svc.NewContainerClient(req.Bucket)
	max := int32(req.MaxKeys)
	if max <= 0 {
		max = storage.DefaultMaxKeys
	}
	include := container.ListBlobsInclude{Metadata: true}
	res := &storage.ListResult{}
	var items []*container.BlobItem
	var next *string
	if req.Delimiter == "" {
		p := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
			Include: include, Marker: optional(req.PageToken), MaxResults: &max, Prefix: optional(req.Prefix),
		})
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, mapError(err, opList, req.Bucket, "")
		}
		if page.Segment != nil {
			items = page.Segment.BlobItems
		}
		next = page.NextMarker
	} else {
		p := cc.NewListBlobsHierarchyPager(req.Delimiter, &container.ListBlobsHierarchyOptions{
			Include: include, Marker: optional(req.PageToken), MaxResults: &max, Prefix: optional(req.Prefix),
		})
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, mapError(err, opList, req.Bucket, "")
		}
		if page.Segment != nil {
			items = page.Segment.BlobItems
			for _, bp := range page.Segment.BlobPrefixes {
				res.CommonPrefixes = append(res.CommonPrefixes, deref(bp.Name))
			}
		}
		next = page.NextMarker
	}
	for _, it := range items {
		info := storage.ObjectInfo{Bucket: req.Bucket, Key: deref(it.Name), Metadata: fromAzureMetadata(it.Metadata)}
		if p := it.Properties; p != nil {
			info.Size = deref(p.ContentLength)
			info.ETag = etag(p.ETag)
			info.ContentType = deref(p.ContentType)
			if p.LastModified != nil {
				info.LastModified = *p.LastModified
			}
		}
		res.Objects = append(res.Objects, info)
	}
	res.NextPageToken = deref(next)
	return res, nil
}

// Delete implements storage.Storage. Deleting a missing blob succeeds; a
// missing container is still an error.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	_, err = b.blob(bucket, key).Delete(ctx, &blob.DeleteOptions{
		DeleteSnapshots: ptr(blob.DeleteSnapshotsOptionTypeInclude),
	})
	if err == nil {
		return nil
	}
	if mapped := mapError(err, opDelete, bucket, key); !isObjectNotFound(mapped) {
		return mapped
	}
	return nil
}

// Health implements storage.HealthChecker: it reads the account's
// information, which needs a reachable service and working credentials.
func (s *Store) Health(ctx context.Context) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	if _, err := b.svc.GetAccountInfo(ctx, nil); err != nil {
		return mapError(err, opHealth, "", "")
	}
	return nil
}

// countingReader counts the bytes read and remembers the first error.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// toAzureMetadata converts user metadata to the SDK's form, with names in
// lower case (Azure compares them case-insensitively and returns them in
// HTTP canonical case).
func toAzureMetadata(md map[string]string) map[string]*string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]*string, len(md))
	for k, v := range md {
		out[strings.ToLower(k)] = &v
	}
	return out
}

// fromAzureMetadata converts the SDK's metadata back, names in lower case.
func fromAzureMetadata(md map[string]*string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		out[strings.ToLower(k)] = deref(v)
	}
	return out
}

func copyMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		out[strings.ToLower(k)] = v
	}
	return out
}

func etag(e *azcore.ETag) string {
	if e == nil {
		return ""
	}
	return strings.Trim(string(*e), `"`)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }
