package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// issued remembers the presigned GET URLs this host handed out, so that a
// chat request carrying one is read through the storage plugin instead of
// over HTTP. Entries expire with their URL; the map is bounded.
type issued struct {
	mu   sync.Mutex
	urls map[string]issuedURL
}

type issuedURL struct {
	ref     document.StorageRef
	expires time.Time
}

const maxIssued = 100_000

func (is *issued) add(u, instance, bucket, key string, expires time.Time) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.urls == nil {
		is.urls = map[string]issuedURL{}
	}
	if len(is.urls) >= maxIssued {
		now := time.Now()
		for k, v := range is.urls {
			if v.expires.Before(now) || len(is.urls) >= maxIssued {
				delete(is.urls, k)
			}
		}
	}
	is.urls[u] = issuedURL{ref: document.StorageRef{Storage: instance, Bucket: bucket, Key: key}, expires: expires}
}

func (is *issued) lookup(u string) (document.StorageRef, bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	e, ok := is.urls[u]
	if !ok || time.Now().After(e.expires) {
		return document.StorageRef{}, false
	}
	return e.ref, true
}

// recognize tells whether u is a presigned URL of a configured storage
// instance: one this host issued, or one it signed itself (local).
func (s *Server) recognize(u *url.URL) (document.StorageRef, bool) {
	if ref, ok := s.issued.lookup(u.String()); ok {
		return ref, true
	}
	path := strings.TrimPrefix(u.EscapedPath(), "/-")
	typ, rest, _ := strings.Cut(path, "/")
	name, rest, _ := strings.Cut(rest, "/")
	if op, _, _ := strings.Cut(rest, "/"); op != storage.SignedOp {
		return document.StorageRef{}, false
	}
	in := s.opts.Plugins.Get(name)
	if in == nil || in.Type != typ || in.Kind() != "storage" {
		return document.StorageRef{}, false
	}
	so, err := storage.VerifySignedURL(in.SigningKey(), "GET", u, time.Now())
	if err != nil || so.Instance != name {
		return document.StorageRef{}, false
	}
	return document.StorageRef{Storage: name, Bucket: so.Bucket, Key: so.Key}, true
}

// documentResolver adapts document.Resolver to the pipeline: storage
// references are read through the storage plugins with the caller's
// permissions.
type documentResolver struct {
	s   *Server
	res *document.Resolver
}

func (d documentResolver) Resolve(ctx context.Context, key *auth.Key, body []byte) ([]byte, []provider.Document, error) {
	if !document.MayHaveDocuments(body) {
		// Spares building the options (an allocation) on every chat.
		return body, nil, nil
	}
	return d.res.Resolve(ctx, body, document.ResolveOptions{Storage: storageReader{s: d.s, key: key}})
}

// storageReader opens storage objects for one caller.
type storageReader struct {
	s   *Server
	key *auth.Key
}

func (sr storageReader) Open(ctx context.Context, name, bucket, key string) (io.ReadCloser, document.ObjectInfo, error) {
	in := sr.s.opts.Plugins.Get(name)
	if in == nil || in.Kind() != "storage" {
		return nil, document.ObjectInfo{}, fmt.Errorf("storage instance %q is not configured: %w", name, document.ErrNotFound)
	}
	if !sr.key.AllowsStorage(name) || !sr.key.AllowsStorageOp(opGet) {
		return nil, document.ObjectInfo{}, fmt.Errorf("this API key may not read storage instance %q: %w", name, document.ErrAccessDenied)
	}
	// A document reference names its object the way a storage route
	// does, and obeys the same rules.
	obj, err := access.NewObject(bucket, key)
	if err != nil {
		var e *openai.Error
		if errors.As(err, &e) {
			c := *e
			c.Param = ""
			return nil, document.ObjectInfo{}, &c
		}
		return nil, document.ObjectInfo{}, err
	}
	if err := sr.s.policy(name).Check(obj); err != nil {
		return nil, document.ObjectInfo{}, fmt.Errorf("%v: %w", err, document.ErrAccessDenied)
	}
	bucket, key = obj.Bucket, obj.Key
	c, err := in.Storage()
	if err != nil {
		return nil, document.ObjectInfo{}, err
	}
	info, body, err := c.Get(ctx, &storage.GetRequest{Bucket: bucket, Key: key})
	if err != nil {
		var e *openai.Error
		if errors.As(err, &e) && e.Status == http.StatusNotFound {
			return nil, document.ObjectInfo{}, fmt.Errorf("%s/%s/%s: %w", name, bucket, key, document.ErrNotFound)
		}
		return nil, document.ObjectInfo{}, err
	}
	return body, document.ObjectInfo{Size: info.Size, ContentType: info.ContentType, ETag: info.ETag}, nil
}
