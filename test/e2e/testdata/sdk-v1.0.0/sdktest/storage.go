package sdktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// StorageSuite configures RunStorage.
type StorageSuite struct {
	// Storage is the plugin under test, usually pointed at an emulator.
	Storage storage.Storage
	// Config is passed to Configure before the data-plane checks. With
	// HostSignedURLs the suite adds the public_url setting and the
	// signing_key credential to a copy of it.
	Config *storage.Config
	// Bucket is a bucket the configured backend has (or creates on Put).
	Bucket string
	// Prefix is put before every key the suite writes, so that runs do
	// not collide; empty means "conformance/<random>/".
	Prefix string
	// HostSignedURLs says presigned URLs point at the host (as the local
	// plugin's do): the suite then serves them with
	// storage.SignedURLHandler on a test server whose URL it passes as
	// Config.Settings["public_url"].
	HostSignedURLs bool
	// PresignExpiryUnchecked says the backend accepts presigned URLs
	// without checking their expiry (some emulators do): the suite then
	// checks that the URLs work, not that they stop working.
	PresignExpiryUnchecked bool
	// LargeObjectBytes, when positive, is the size of an object streamed
	// through Put and Get with bounded memory (200 MiB in CI).
	LargeObjectBytes int64
	// MaxHeapGrowth bounds how far the heap may grow while the large
	// object streams; 0 means 64 MiB.
	MaxHeapGrowth uint64
}

// ConnectStorage serves s over an in-process gRPC connection and returns
// the host-side client, closed when the test ends.
func ConnectStorage(t testing.TB, s storage.Storage) *storage.Client {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{
		storage.PluginName: &storage.Plugin{Impl: s},
	})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(storage.PluginName)
	if err != nil {
		t.Fatalf("dispense storage: %v", err)
	}
	return raw.(*storage.Client)
}

// storageRun is the state one RunStorage call shares between checks.
type storageRun struct {
	s      StorageSuite
	c      *storage.Client
	prefix string

	mu      sync.Mutex
	written map[string]bool
}

func (r *storageRun) key(k string) string { return r.prefix + k }

func (r *storageRun) put(t *testing.T, key, contentType string, body []byte) *storage.ObjectInfo {
	t.Helper()
	r.mu.Lock()
	r.written[key] = true
	r.mu.Unlock()
	info, err := r.c.Put(context.Background(), &storage.Object{
		Bucket: r.s.Bucket, Key: key, ContentType: contentType, Size: int64(len(body)),
	}, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Put %q: %v", key, err)
	}
	return info
}

func (r *storageRun) get(t *testing.T, key string, rng *storage.ByteRange) (*storage.ObjectInfo, []byte) {
	t.Helper()
	info, rc, err := r.c.Get(context.Background(), &storage.GetRequest{Bucket: r.s.Bucket, Key: key, Range: rng})
	if err != nil {
		t.Fatalf("Get %q %+v: %v", key, rng, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return info, b
}

// RunStorage runs the storage conformance suite: Describe and Configure,
// round trips of odd keys with content types and metadata, overwrite,
// ranges, not-found shapes, delete, pagination with and without a
// delimiter, size checks and aborted uploads, presigned GET and PUT URLs
// used by a plain HTTP client (and their expiry), and, when
// LargeObjectBytes is set, a large object streamed with bounded memory.
func RunStorage(t *testing.T, s StorageSuite) {
	if s.Config == nil || s.Bucket == "" {
		t.Fatal("StorageSuite needs Config and Bucket")
	}
	c := ConnectStorage(t, s.Storage)
	ctx := context.Background()
	r := &storageRun{s: s, c: c, prefix: s.Prefix, written: map[string]bool{}}
	if r.prefix == "" {
		r.prefix = "conformance/" + randomHex(6) + "/"
	}
	t.Cleanup(func() {
		for k := range r.written {
			if err := c.Delete(ctx, s.Bucket, k); err != nil {
				t.Logf("cleanup: delete %q: %v", k, err)
			}
		}
	})

	cfg := *s.Config
	var signingKey []byte
	if s.HostSignedURLs {
		signingKey = []byte(randomHex(32))
		srv := httptest.NewServer(storage.SignedURLHandler(c, signingKey))
		t.Cleanup(srv.Close)
		cfg.Settings = maps.Clone(cfg.Settings)
		if cfg.Settings == nil {
			cfg.Settings = map[string]string{}
		}
		cfg.Settings["public_url"] = srv.URL
		cfg.Credentials = maps.Clone(cfg.Credentials)
		if cfg.Credentials == nil {
			cfg.Credentials = map[string]string{}
		}
		cfg.Credentials["signing_key"] = string(signingKey)
	}

	var desc *storage.Description
	t.Run("Describe", func(t *testing.T) {
		d, err := c.Describe(ctx)
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		desc = d
		if d.Name == "" || d.Version == "" {
			t.Errorf("Describe must name the storage type and its version, got %q %q", d.Name, d.Version)
		}
		checkSchema(t, "config", d.ConfigSchema)
	})
	if desc == nil {
		return
	}

	configured := t.Run("Configure", func(t *testing.T) {
		diags, err := c.Configure(ctx, &storage.Config{Instance: cfg.Instance, JSON: []byte(`{"this is":`)})
		if err != nil {
			t.Fatalf("Configure with broken JSON: %v", err)
		}
		if !diags.HasErrors() {
			t.Errorf("Configure accepted a broken config JSON")
		}
		diags, err = c.Configure(ctx, &cfg)
		if err != nil {
			t.Fatalf("Configure: %v", err)
		}
		if diags.HasErrors() {
			t.Fatalf("Configure rejected the suite's config: %v", diags)
		}
	})
	if !configured {
		return
	}

	if slices.Contains(desc.Capabilities, storage.CapHealth) {
		t.Run("Health", func(t *testing.T) {
			if err := c.Health(ctx); err != nil {
				t.Errorf("Health: %v", err)
			}
		})
	}
	t.Run("OddKeys", r.oddKeys)
	t.Run("Metadata", r.metadata)
	t.Run("Overwrite", r.overwrite)
	t.Run("Range", r.ranges)
	t.Run("NotFound", r.notFound)
	t.Run("Delete", r.delete)
	t.Run("InvalidKey", r.invalidKey)
	t.Run("SizeMismatch", r.sizeMismatch)
	t.Run("AbortedPut", r.abortedPut)
	t.Run("UnknownSize", r.unknownSize)
	t.Run("Pagination", r.pagination)
	if slices.Contains(desc.Capabilities, storage.CapPresign) {
		t.Run("Presign", r.presign)
	} else {
		t.Log("the plugin does not implement storage.Presigner; presigned URLs not checked")
	}
	if s.LargeObjectBytes > 0 {
		t.Run("LargeObject", r.largeObject)
	}
}

func (r *storageRun) oddKeys(t *testing.T) {
	keys := []struct{ name, key, contentType string }{
		{"plain", "plain.txt", "text/plain"},
		{"space", "with space.txt", "text/plain; charset=utf-8"},
		{"unicode", "unicodé/ключ/日本語.md", "text/markdown"},
		{"plus", "a+b=c.json", "application/json"},
		{"percent", "100%25 sure%.bin", "application/octet-stream"},
		{"hash", "hash#fragment", "application/x-custom"},
		{"question", "question?mark=1&x", "text/csv"},
		{"nested", "deep/er/still/deeper.html", "text/html"},
		{"dot", ".hidden.txt", "text/plain"},
		{"quotes", `quote'and"dq;semi`, "text/plain"},
	}
	for i, tt := range keys {
		t.Run(tt.name, func(t *testing.T) {
			key := r.key("odd/" + tt.key)
			body := []byte(fmt.Sprintf("object %d: %s\n", i, tt.key))
			put := r.put(t, key, tt.contentType, body)
			if put.ETag == "" || put.Size != int64(len(body)) {
				t.Errorf("Put info = %+v, want an ETag and size %d", put, len(body))
			}
			info, got := r.get(t, key, nil)
			if !bytes.Equal(got, body) {
				t.Errorf("Get body = %q, want %q", got, body)
			}
			if info.ContentType != tt.contentType {
				t.Errorf("Get content type = %q, want %q", info.ContentType, tt.contentType)
			}
			if info.Key != key || info.Size != int64(len(body)) || info.ETag != put.ETag || info.LastModified.IsZero() {
				t.Errorf("Get info = %+v, want key %q, size %d, etag %q and a modification time", info, key, len(body), put.ETag)
			}
			head, err := r.c.Head(context.Background(), r.s.Bucket, key)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			if head.Size != int64(len(body)) || head.ETag != put.ETag || head.ContentType != tt.contentType {
				t.Errorf("Head = %+v, want size %d, etag %q, type %q", head, len(body), put.ETag, tt.contentType)
			}
			res, err := r.c.List(context.Background(), &storage.ListRequest{Bucket: r.s.Bucket, Prefix: key})
			if err != nil {
				t.Fatalf("List prefix %q: %v", key, err)
			}
			if len(res.Objects) != 1 || res.Objects[0].Key != key || res.Objects[0].Size != int64(len(body)) {
				t.Errorf("List prefix %q = %+v, want exactly the object", key, res.Objects)
			}
		})
	}
}

func (r *storageRun) metadata(t *testing.T) {
	key := r.key("meta/with-metadata.txt")
	r.mu.Lock()
	r.written[key] = true
	r.mu.Unlock()
	md := map[string]string{"purpose": "conformance", "owner": "sdktest"}
	_, err := r.c.Put(context.Background(), &storage.Object{
		Bucket: r.s.Bucket, Key: key, ContentType: "text/plain", Size: 2, Metadata: md,
	}, strings.NewReader("md"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	head, err := r.c.Head(context.Background(), r.s.Bucket, key)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	for k, v := range md {
		if head.Metadata[k] != v {
			t.Errorf("metadata %q = %q, want %q (all: %v)", k, head.Metadata[k], v, head.Metadata)
		}
	}
}

func (r *storageRun) overwrite(t *testing.T) {
	key := r.key("overwrite.txt")
	first := r.put(t, key, "text/plain", []byte("first version"))
	second := r.put(t, key, "application/json", []byte(`{"version":2,"longer":true}`))
	if first.ETag == second.ETag {
		t.Errorf("ETag unchanged (%q) after overwriting with different content", first.ETag)
	}
	info, got := r.get(t, key, nil)
	if string(got) != `{"version":2,"longer":true}` || info.ContentType != "application/json" || info.ETag != second.ETag {
		t.Errorf("after overwrite Get = %q %+v", got, info)
	}
}

func (r *storageRun) ranges(t *testing.T) {
	key := r.key("range.bin")
	body := make([]byte, 1000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	r.put(t, key, "application/octet-stream", body)
	tests := []struct {
		name       string
		rng        storage.ByteRange
		start, end int64
	}{
		{"first byte", storage.ByteRange{Start: 0, End: 0}, 0, 0},
		{"middle", storage.ByteRange{Start: 10, End: 19}, 10, 19},
		{"open end", storage.ByteRange{Start: 990, End: -1}, 990, 999},
		{"end past object", storage.ByteRange{Start: 995, End: 5000}, 995, 999},
		{"whole", storage.ByteRange{Start: 0, End: 999}, 0, 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := tt.rng
			info, got := r.get(t, key, &rng)
			if !bytes.Equal(got, body[tt.start:tt.end+1]) {
				t.Errorf("range %+v: got %d bytes, want bytes %d-%d", tt.rng, len(got), tt.start, tt.end)
			}
			if info.Size != int64(len(body)) {
				t.Errorf("range %+v: info.Size = %d, want the whole object's %d", tt.rng, info.Size, len(body))
			}
			if info.ContentRange == nil || *info.ContentRange != (storage.ByteRange{Start: tt.start, End: tt.end}) {
				t.Errorf("range %+v: ContentRange = %+v, want %d-%d", tt.rng, info.ContentRange, tt.start, tt.end)
			}
		})
	}
	t.Run("unsatisfiable", func(t *testing.T) {
		_, rc, err := r.c.Get(context.Background(), &storage.GetRequest{
			Bucket: r.s.Bucket, Key: key, Range: &storage.ByteRange{Start: 1000, End: -1},
		})
		if err == nil {
			rc.Close()
		}
		wantStatus(t, err, http.StatusRequestedRangeNotSatisfiable)
	})
}

func wantError(t *testing.T, err error, status int, typ, code string) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("want an *openai.Error %d %s, got %v", status, code, err)
	}
	if oe.Status != status || oe.Type != typ || oe.Code != code {
		t.Errorf("error = %d %s %s, want %d %s %s (%v)", oe.Status, oe.Type, oe.Code, status, typ, code, oe)
	}
}

func (r *storageRun) notFound(t *testing.T) {
	ctx := context.Background()
	key := r.key("does/not/exist.txt")
	_, rc, err := r.c.Get(ctx, &storage.GetRequest{Bucket: r.s.Bucket, Key: key})
	if err == nil {
		rc.Close()
	}
	wantError(t, err, http.StatusNotFound, openai.TypeNotFound, storage.CodeObjectNotFound)
	_, err = r.c.Head(ctx, r.s.Bucket, key)
	wantError(t, err, http.StatusNotFound, openai.TypeNotFound, storage.CodeObjectNotFound)

	missing := "llmproxy-missing-" + randomHex(4)
	_, rc, err = r.c.Get(ctx, &storage.GetRequest{Bucket: missing, Key: "x"})
	if err == nil {
		rc.Close()
	}
	wantError(t, err, http.StatusNotFound, openai.TypeNotFound, storage.CodeBucketNotFound)
	_, err = r.c.List(ctx, &storage.ListRequest{Bucket: missing})
	wantError(t, err, http.StatusNotFound, openai.TypeNotFound, storage.CodeBucketNotFound)
}

func (r *storageRun) delete(t *testing.T) {
	ctx := context.Background()
	if err := r.c.Delete(ctx, r.s.Bucket, r.key("never/written")); err != nil {
		t.Errorf("Delete of a missing key: %v, want success", err)
	}
	key := r.key("delete-me.txt")
	r.put(t, key, "text/plain", []byte("bye"))
	if err := r.c.Delete(ctx, r.s.Bucket, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := r.c.Head(ctx, r.s.Bucket, key)
	wantError(t, err, http.StatusNotFound, openai.TypeNotFound, storage.CodeObjectNotFound)
	if err := r.c.Delete(ctx, r.s.Bucket, key); err != nil {
		t.Errorf("second Delete: %v, want success", err)
	}
}

func (r *storageRun) invalidKey(t *testing.T) {
	tests := []struct{ name, key string }{
		{"empty", ""},
		{"too long", r.key(strings.Repeat("k", storage.MaxKeyBytes))},
		{"control character", r.key("nul\x00byte")},
		{"newline", r.key("line\nbreak")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.c.Put(context.Background(), &storage.Object{Bucket: r.s.Bucket, Key: tt.key, Size: 1}, strings.NewReader("x"))
			wantStatus(t, err, http.StatusBadRequest)
		})
	}
}

func (r *storageRun) sizeMismatch(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		size int64
		body string
	}{{"short", 10, "12345"}, {"long", 3, "12345"}} {
		t.Run(tt.name, func(t *testing.T) {
			key := r.key("mismatch-" + tt.name)
			_, err := r.c.Put(ctx, &storage.Object{Bucket: r.s.Bucket, Key: key, Size: tt.size}, strings.NewReader(tt.body))
			wantStatus(t, err, http.StatusBadRequest)
			_, err = r.c.Head(ctx, r.s.Bucket, key)
			wantError(t, err, http.StatusNotFound, openai.TypeNotFound, storage.CodeObjectNotFound)
		})
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("client went away")
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func (r *storageRun) abortedPut(t *testing.T) {
	ctx := context.Background()
	key := r.key("aborted.txt")
	r.put(t, key, "text/plain", []byte("the old version"))
	for _, size := range []int64{-1, 4 << 20} {
		_, err := r.c.Put(ctx, &storage.Object{Bucket: r.s.Bucket, Key: key, Size: size}, &failingReader{n: 3 << 20})
		if err == nil {
			t.Fatalf("Put with a failing body (size %d) succeeded", size)
		}
		// The plugin sees the abort asynchronously; give it a moment.
		time.Sleep(200 * time.Millisecond)
		_, got := r.get(t, key, nil)
		if string(got) != "the old version" {
			t.Errorf("after an aborted Put (size %d) the object holds %d bytes, want the old version", size, len(got))
		}
	}
}

func (r *storageRun) unknownSize(t *testing.T) {
	ctx := context.Background()
	key := r.key("unknown-size.bin")
	r.mu.Lock()
	r.written[key] = true
	r.mu.Unlock()
	const n = 12<<20 + 12345
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(mrand.NewChaCha8([32]byte{1}), n), want)
	info, err := r.c.Put(ctx, &storage.Object{Bucket: r.s.Bucket, Key: key, Size: -1, ContentType: "application/octet-stream"}, src)
	if err != nil {
		t.Fatalf("Put of unknown size: %v", err)
	}
	if info.Size != n {
		t.Errorf("Put info size = %d, want %d", info.Size, n)
	}
	checkStream(t, r, key, n, want.Sum(nil))
}

// checkStream reads key back and compares its size and SHA-256.
func checkStream(t *testing.T, r *storageRun, key string, n int64, sum []byte) {
	t.Helper()
	info, rc, err := r.c.Get(context.Background(), &storage.GetRequest{Bucket: r.s.Bucket, Key: key})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	got, err := io.CopyBuffer(h, rc, make([]byte, 64<<10))
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if got != n || info.Size != n || !bytes.Equal(h.Sum(nil), sum) {
		t.Errorf("read back %d bytes (info %d) with sha256 %x, want %d bytes with %x", got, info.Size, h.Sum(nil), n, sum)
	}
}

func (r *storageRun) pagination(t *testing.T) {
	ctx := context.Background()
	base := r.key("page/")
	var all []string
	for i := range 18 {
		all = append(all, fmt.Sprintf("%sf%02d", base, i))
	}
	for _, k := range []string{"d0/a", "d0/b", "d0/c/x", "d1/a", "d1/b", "d2-z", "d2/a"} {
		all = append(all, base+k)
	}
	slices.Sort(all)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, k := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.put(t, k, "text/plain", []byte(k))
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	t.Run("flat", func(t *testing.T) {
		keys, prefixes := listAll(t, r, &storage.ListRequest{Bucket: r.s.Bucket, Prefix: base, MaxKeys: 7})
		if !slices.Equal(keys, all) || len(prefixes) != 0 {
			t.Errorf("paged listing =\n%v\n%v\nwant\n%v", keys, prefixes, all)
		}
	})
	t.Run("delimiter", func(t *testing.T) {
		var wantKeys []string
		for _, k := range all {
			if !strings.Contains(k[len(base):], "/") {
				wantKeys = append(wantKeys, k)
			}
		}
		wantPrefixes := []string{base + "d0/", base + "d1/", base + "d2/"}
		keys, prefixes := listAll(t, r, &storage.ListRequest{Bucket: r.s.Bucket, Prefix: base, Delimiter: "/", MaxKeys: 7})
		if !slices.Equal(keys, wantKeys) || !slices.Equal(prefixes, wantPrefixes) {
			t.Errorf("paged listing with delimiter = %v %v, want %v %v", keys, prefixes, wantKeys, wantPrefixes)
		}
	})
	t.Run("nested prefix", func(t *testing.T) {
		keys, prefixes := listAll(t, r, &storage.ListRequest{Bucket: r.s.Bucket, Prefix: base + "d0/", Delimiter: "/", MaxKeys: 1})
		if !slices.Equal(keys, []string{base + "d0/a", base + "d0/b"}) || !slices.Equal(prefixes, []string{base + "d0/c/"}) {
			t.Errorf("listing of d0/ = %v %v", keys, prefixes)
		}
	})
	t.Run("max keys", func(t *testing.T) {
		_, err := r.c.List(ctx, &storage.ListRequest{Bucket: r.s.Bucket, MaxKeys: storage.DefaultMaxKeys + 1})
		wantStatus(t, err, http.StatusBadRequest)
	})
}

// listAll follows page tokens to the end and checks every page: within
// its size, sorted, and nothing seen twice.
func listAll(t *testing.T, r *storageRun, req *storage.ListRequest) (keys, prefixes []string) {
	t.Helper()
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("listing did not end after 100 pages")
		}
		res, err := r.c.List(context.Background(), req)
		if err != nil {
			t.Fatalf("List page %d: %v", page, err)
		}
		if n := len(res.Objects) + len(res.CommonPrefixes); n > req.MaxKeys || (n == 0 && res.NextPageToken != "") {
			t.Errorf("page %d holds %d entries, want 1..%d", page, n, req.MaxKeys)
		}
		for _, o := range res.Objects {
			if seen[o.Key] {
				t.Errorf("key %q listed twice", o.Key)
			}
			seen[o.Key] = true
			keys = append(keys, o.Key)
		}
		for _, p := range res.CommonPrefixes {
			if seen[p] {
				t.Errorf("prefix %q listed twice", p)
			}
			seen[p] = true
			prefixes = append(prefixes, p)
		}
		if res.NextPageToken == "" {
			break
		}
		if res.NextPageToken == req.PageToken {
			t.Fatalf("page token %q repeats", res.NextPageToken)
		}
		next := *req
		next.PageToken = res.NextPageToken
		req = &next
	}
	if !slices.IsSorted(keys) || !slices.IsSorted(prefixes) {
		t.Errorf("listing not sorted: %v %v", keys, prefixes)
	}
	return keys, prefixes
}

func (r *storageRun) presign(t *testing.T) {
	ctx := context.Background()
	const ttl = 2 * time.Second
	getKey := r.key("presign/get me.txt")
	r.put(t, getKey, "text/plain", []byte("presigned body"))
	get, err := r.c.Presign(ctx, &storage.PresignRequest{Bucket: r.s.Bucket, Key: getKey, Method: http.MethodGet, TTL: ttl})
	if err != nil {
		t.Fatalf("Presign GET: %v", err)
	}
	putKey := r.key("presign/put me+ü.json")
	r.mu.Lock()
	r.written[putKey] = true
	r.mu.Unlock()
	put, err := r.c.Presign(ctx, &storage.PresignRequest{
		Bucket: r.s.Bucket, Key: putKey, Method: http.MethodPut, TTL: ttl, ContentType: "application/json",
	})
	if err != nil {
		t.Fatalf("Presign PUT: %v", err)
	}
	for _, p := range []*storage.PresignedURL{get, put} {
		if p.URL == "" || p.Expires.Before(time.Now()) || p.Expires.After(time.Now().Add(ttl+2*time.Second)) {
			t.Errorf("presigned %s = %+v, want a URL expiring in about %v", p.Method, p, ttl)
		}
	}

	status, body := doPresigned(t, get, nil)
	if status != http.StatusOK || string(body) != "presigned body" {
		t.Errorf("presigned GET = %d %q", status, body)
	}
	status, body = doPresigned(t, put, []byte(`{"uploaded":true}`))
	if status/100 != 2 { // S3 and GCS answer 200, Azure 201 Created.
		t.Errorf("presigned PUT = %d %q", status, body)
	} else {
		info, got := r.get(t, putKey, nil)
		if string(got) != `{"uploaded":true}` || info.ContentType != "application/json" {
			t.Errorf("object uploaded through the presigned URL = %q (%q)", got, info.ContentType)
		}
	}

	if r.s.PresignExpiryUnchecked {
		t.Log("the backend does not enforce presigned URL expiry; not checked")
		return
	}
	time.Sleep(time.Until(get.Expires) + 1500*time.Millisecond)
	if status, body := doPresigned(t, get, nil); status < 400 || status >= 500 {
		t.Errorf("expired presigned GET = %d %q, want a 4xx refusal", status, body)
	}
	time.Sleep(time.Until(put.Expires) + 100*time.Millisecond)
	if status, body := doPresigned(t, put, []byte(`{"late":true}`)); status < 400 || status >= 500 {
		t.Errorf("expired presigned PUT = %d %q, want a 4xx refusal", status, body)
	}
}

// doPresigned sends p's request with a plain net/http client.
func doPresigned(t *testing.T, p *storage.PresignedURL, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(p.Method, p.URL, rd)
	if err != nil {
		t.Fatalf("presigned URL %q: %v", p.URL, err)
	}
	for k, vs := range p.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.Method, p.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

func (r *storageRun) largeObject(t *testing.T) {
	n := r.s.LargeObjectBytes
	limit := r.s.MaxHeapGrowth
	if limit == 0 {
		limit = 64 << 20
	}
	key := r.key("large.bin")
	r.mu.Lock()
	r.written[key] = true
	r.mu.Unlock()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := newPeakSampler(base)
	defer peak.stop()

	want := sha256.New()
	src := io.TeeReader(io.LimitReader(mrand.NewChaCha8([32]byte{2}), n), want)
	info, err := r.c.Put(context.Background(), &storage.Object{Bucket: r.s.Bucket, Key: key, Size: n, ContentType: "application/octet-stream"}, src)
	if err != nil {
		t.Fatalf("Put of %d bytes: %v", n, err)
	}
	if info.Size != n {
		t.Errorf("Put info size = %d, want %d", info.Size, n)
	}
	checkStream(t, r, key, n, want.Sum(nil))
	growth := peak.stop() - base
	t.Logf("streamed %d MiB up and down; heap grew by at most %d MiB", n>>20, growth>>20)
	if growth > limit {
		t.Errorf("heap grew by %d MiB while streaming %d MiB, want < %d MiB", growth>>20, n>>20, limit>>20)
	}
}

// peakSampler records the highest HeapAlloc seen until stopped.
type peakSampler struct {
	done chan struct{}
	res  chan uint64
	once sync.Once
	peak uint64
}

func newPeakSampler(base uint64) *peakSampler {
	p := &peakSampler{done: make(chan struct{}), res: make(chan uint64, 1)}
	go func() {
		peak := base
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-p.done:
				p.res <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) stop() uint64 {
	p.once.Do(func() {
		close(p.done)
		p.peak = <-p.res
	})
	return p.peak
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
