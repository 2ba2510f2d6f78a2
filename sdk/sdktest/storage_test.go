package sdktest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// memStorage is a small in-memory storage plugin that exercises the
// suite and the SDK's gRPC adapters. Bucket "conformance" exists.
type memStorage struct {
	mu         sync.Mutex
	objects    map[string]memObject
	instance   string
	publicURL  string
	signingKey []byte
}

type memObject struct {
	data []byte
	info storage.ObjectInfo
}

var (
	_ storage.Storage       = (*memStorage)(nil)
	_ storage.Presigner     = (*memStorage)(nil)
	_ storage.HealthChecker = (*memStorage)(nil)
)

func (m *memStorage) Describe(context.Context) (*storage.Description, error) {
	return &storage.Description{Name: "mem", Version: "test", ConfigSchema: schema.Schema{
		Attributes: []schema.Attribute{{Name: "note", Type: "string"}},
	}}, nil
}

func (m *memStorage) Configure(_ context.Context, cfg *storage.Config) error {
	var c struct{ Note string }
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.instance, m.publicURL, m.signingKey = cfg.Instance, cfg.Settings["public_url"], []byte(cfg.Credentials["signing_key"])
	if m.objects == nil {
		m.objects = map[string]memObject{}
	}
	return nil
}

func (m *memStorage) Health(context.Context) error { return nil }

func (m *memStorage) bucket(b string) error {
	if b != "conformance" {
		return storage.BucketNotFound(b)
	}
	return nil
}

func (m *memStorage) Put(_ context.Context, obj *storage.Object, body io.Reader) (*storage.ObjectInfo, error) {
	if err := m.bucket(obj.Bucket); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	sum := md5.Sum(data)
	info := storage.ObjectInfo{
		Bucket: obj.Bucket, Key: obj.Key, Size: int64(len(data)), ETag: hex.EncodeToString(sum[:]),
		ContentType: obj.ContentType, LastModified: time.Now(), Metadata: obj.Metadata,
	}
	m.mu.Lock()
	m.objects[obj.Key] = memObject{data: data, info: info}
	m.mu.Unlock()
	return &info, nil
}

func (m *memStorage) Get(ctx context.Context, req *storage.GetRequest) (*storage.ObjectInfo, io.ReadCloser, error) {
	info, err := m.Head(ctx, req.Bucket, req.Key)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	data := m.objects[req.Key].data
	m.mu.Unlock()
	if req.Range != nil {
		r, err := storage.ResolveRange(*req.Range, info.Size)
		if err != nil {
			return nil, nil, err
		}
		info.ContentRange = &r
		data = data[r.Start : r.End+1]
	}
	return info, io.NopCloser(strings.NewReader(string(data))), nil
}

func (m *memStorage) Head(_ context.Context, bucket, key string) (*storage.ObjectInfo, error) {
	if err := m.bucket(bucket); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return nil, storage.NotFound(bucket, key)
	}
	info := o.info
	return &info, nil
}

func (m *memStorage) Delete(_ context.Context, bucket, key string) error {
	if err := m.bucket(bucket); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

// List sorts every key and pages by the last entry returned; a page token
// ending in the delimiter skips the keys it rolled up.
func (m *memStorage) List(_ context.Context, req *storage.ListRequest) (*storage.ListResult, error) {
	if err := m.bucket(req.Bucket); err != nil {
		return nil, err
	}
	m.mu.Lock()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m.objects {
			if !yield(k) {
				return
			}
		}
	})
	m.mu.Unlock()
	res := &storage.ListResult{}
	after := req.PageToken
	for _, k := range keys {
		if !strings.HasPrefix(k, req.Prefix) || k <= after || (req.Delimiter != "" && strings.HasSuffix(after, req.Delimiter) && strings.HasPrefix(k, after)) {
			continue
		}
		entry, isPrefix := k, false
		if i := strings.Index(k[len(req.Prefix):], req.Delimiter); req.Delimiter != "" && i >= 0 {
			entry, isPrefix = k[:len(req.Prefix)+i+len(req.Delimiter)], true
			if n := len(res.CommonPrefixes); n > 0 && res.CommonPrefixes[n-1] == entry {
				continue
			}
		}
		if len(res.Objects)+len(res.CommonPrefixes) == req.MaxKeys {
			res.NextPageToken = after
			break
		}
		if isPrefix {
			res.CommonPrefixes = append(res.CommonPrefixes, entry)
		} else {
			m.mu.Lock()
			res.Objects = append(res.Objects, m.objects[k].info)
			m.mu.Unlock()
		}
		after = entry
	}
	return res, nil
}

func (m *memStorage) Presign(_ context.Context, req *storage.PresignRequest) (*storage.PresignedURL, error) {
	exp := time.Now().Add(req.TTL).Truncate(time.Second)
	u, err := storage.SignURL(m.signingKey, m.publicURL, storage.SignedObject{
		Type: "mem", Instance: m.instance, Bucket: req.Bucket, Key: req.Key, Method: req.Method, ContentType: req.ContentType, Expires: exp,
	})
	if err != nil {
		return nil, err
	}
	return &storage.PresignedURL{URL: u, Method: req.Method, Header: http.Header{}, Expires: exp}, nil
}

func TestRunStorageInMemory(t *testing.T) {
	RunStorage(t, StorageSuite{
		Storage:          &memStorage{},
		Config:           &storage.Config{Instance: "mem", JSON: []byte(`{}`)},
		Bucket:           "conformance",
		HostSignedURLs:   true,
		LargeObjectBytes: 0,
	})
}

// earlyFailer fails Put before reading the body, and Get after the first
// piece.
type earlyFailer struct{ memStorage }

func (e *earlyFailer) Put(context.Context, *storage.Object, io.Reader) (*storage.ObjectInfo, error) {
	return nil, storage.AccessDenied("no writes here")
}

func (e *earlyFailer) Get(_ context.Context, req *storage.GetRequest) (*storage.ObjectInfo, io.ReadCloser, error) {
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", storage.PieceSize)), &failingReader{})
	return &storage.ObjectInfo{Bucket: req.Bucket, Key: req.Key, Size: 10 << 20}, io.NopCloser(r), nil
}

func TestClientErrors(t *testing.T) {
	c := ConnectStorage(t, &earlyFailer{})
	ctx := context.Background()
	t.Run("put refused before the body is read", func(t *testing.T) {
		_, err := c.Put(ctx, &storage.Object{Bucket: "conformance", Key: "k", Size: -1}, io.LimitReader(zeros{}, 8<<20))
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != http.StatusForbidden {
			t.Fatalf("Put = %v, want the plugin's 403", err)
		}
	})
	t.Run("get fails mid-stream", func(t *testing.T) {
		_, rc, err := c.Get(ctx, &storage.GetRequest{Bucket: "conformance", Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if err == nil || n != storage.PieceSize {
			t.Fatalf("read %d bytes, %v; want one piece, then an error", n, err)
		}
	})
	t.Run("invalid bucket", func(t *testing.T) {
		_, err := c.Head(ctx, "a/b", "k")
		wantStatus(t, err, http.StatusBadRequest)
	})
	t.Run("presign method", func(t *testing.T) {
		_, err := c.Presign(ctx, &storage.PresignRequest{Bucket: "conformance", Key: "k", Method: "DELETE", TTL: time.Minute})
		wantStatus(t, err, http.StatusBadRequest)
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
