package document

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"

	"github.com/llmproxy/llmproxy/host/internal/redistest"
)

// fakeStorage is a StorageReader over a map keyed "storage/bucket/key".
type fakeStorage struct {
	objects map[string]fakeObject
	denied  map[string]bool
	opens   atomic.Int64
	reads   atomic.Int64
}

type fakeObject struct {
	data        string
	contentType string
	etag        string
}

func (s *fakeStorage) Open(_ context.Context, storage, bucket, key string) (io.ReadCloser, ObjectInfo, error) {
	s.opens.Add(1)
	ref := storage + "/" + bucket + "/" + key
	if s.denied[storage] {
		return nil, ObjectInfo{}, fmt.Errorf("key may not read storage %q: %w", storage, ErrAccessDenied)
	}
	o, ok := s.objects[ref]
	if !ok {
		return nil, ObjectInfo{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	return &countingReader{Reader: strings.NewReader(o.data), reads: &s.reads},
		ObjectInfo{Size: int64(len(o.data)), ContentType: o.contentType, ETag: o.etag}, nil
}

type countingReader struct {
	io.Reader
	reads *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.reads.Add(1)
	return r.Reader.Read(p)
}

func (r *countingReader) Close() error { return nil }

func newFakeStorage() *fakeStorage {
	return &fakeStorage{
		objects: map[string]fakeObject{
			"prod/rag-docs/quantum.md":  {data: "# Quantum\nQubits.", contentType: "text/markdown", etag: `"e1"`},
			"prod/rag-docs/report.pdf":  {data: string(makePDF("Report body")), etag: `"e2"`},
			"prod/rag-docs/noetag.txt":  {data: "no etag here"},
			"prod/rag-docs/picture.png": {data: "\x89PNG\r\n\x1a\n", contentType: "image/png", etag: `"e3"`},
		},
		denied: map[string]bool{"secret": true},
	}
}

// docServer serves documents for URL sources on 127.0.0.1.
func docServer(t testing.TB) *countingServer {
	return newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/guide.html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body><h1>Guide</h1><script>x()</script><p>Read me.</p></body></html>")
		case "/data.json":
			fmt.Fprint(w, `{"a":1}`)
		case "/large.txt":
			w.Header().Set("Content-Type", "text/plain")
			w.Write(bytes.Repeat([]byte("a"), 300))
		case "/hostile.html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<p>UNREADABLE</p>")
		case "/photo":
			w.Header().Set("Content-Type", "image/jpeg")
			fmt.Fprint(w, "jpeg")
		default:
			http.Error(w, "nope", http.StatusNotFound)
		}
	}))
}

func newTestResolver(t *testing.T, cfg Config, opts Options) *Resolver {
	t.Helper()
	if cfg.AllowCIDRs == nil {
		cfg.AllowCIDRs = []string{"127.0.0.1/32"}
	}
	if opts.HostResolver == nil {
		opts.HostResolver = mapResolver{}
	}
	if opts.Extractor == nil {
		opts.Extractor = &scanExtractor{}
	}
	r, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func chatBody(parts ...string) []byte {
	return []byte(`{"model":"m","stream":true,"messages":[{"role":"system","content":"be brief"},` +
		`{"role":"user","content":[{"type":"text","text":"summarize"},` + strings.Join(parts, ",") + `]}]}`)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestResolve(t *testing.T) {
	srv := docServer(t)
	presigned := srv.URL + "/presigned/rag-docs/quantum.md?X-Amz-Signature=abc"
	recognizer := PresignRecognizerFunc(func(u *url.URL) (StorageRef, bool) {
		if rest, ok := strings.CutPrefix(u.Path, "/presigned/"); ok {
			bucket, key, _ := strings.Cut(rest, "/")
			return StorageRef{Storage: "prod", Bucket: bucket, Key: key}, true
		}
		return StorageRef{}, false
	})
	type doc struct{ name, mimeType, text, source string }
	tests := []struct {
		name     string
		cfg      Config
		opts     ResolveOptions
		parts    []string
		docs     []doc
		status   int
		code     string
		param    string
		unchaged bool
	}{
		{
			name:  "url document",
			parts: []string{`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/guide.html?sig=s3cret"}}`},
			docs:  []doc{{"guide.html", MIMEHTML, "Guide\nRead me.", srv.URL + "/guide.html"}},
		},
		{
			name:  "url document sniffed as json, renamed by source",
			parts: []string{`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/data.json","name":"cfg.json"}}`},
			docs:  []doc{{"cfg.json", MIMEJSON, "{\n  \"a\": 1\n}", srv.URL + "/data.json"}},
		},
		{
			name:  "file part with data URL",
			parts: []string{`{"type":"file","file":{"filename":"n.md","file_data":"data:text/markdown;base64,` + b64("# Hi") + `"}}`},
			docs:  []doc{{"n.md", MIMEMarkdown, "# Hi", "inline"}},
		},
		{
			name:  "file part with bare base64 pdf",
			parts: []string{`{"type":"file","file":{"filename":"r.pdf","file_data":"` + base64.StdEncoding.EncodeToString(makePDF("Inline PDF")) + `"}}`},
			docs:  []doc{{"r.pdf", MIMEPDF, "Inline PDF", "inline"}},
		},
		{
			name:     "file parts kept for native providers",
			opts:     ResolveOptions{KeepFileParts: true},
			parts:    []string{`{"type":"file","file":{"filename":"n.md","file_data":"data:text/markdown;base64,` + b64("# Hi") + `"}}`},
			unchaged: true,
		},
		{
			name:  "storage document",
			opts:  ResolveOptions{Storage: newFakeStorage()},
			parts: []string{`{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"quantum.md"}}`},
			docs:  []doc{{"quantum.md", MIMEMarkdown, "# Quantum\nQubits.", "storage://prod/rag-docs/quantum.md"}},
		},
		{
			name:  "storage pdf sniffed, storage without etag",
			opts:  ResolveOptions{Storage: newFakeStorage()},
			parts: []string{`{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"report.pdf"}}`, `{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"noetag.txt"}}`},
			docs: []doc{
				{"report.pdf", MIMEPDF, "Report body", "storage://prod/rag-docs/report.pdf"},
				{"noetag.txt", MIMEText, "no etag here", "storage://prod/rag-docs/noetag.txt"},
			},
		},
		{
			name:  "presigned URL read through storage",
			opts:  ResolveOptions{Storage: newFakeStorage()},
			parts: []string{`{"type":"document","source":{"type":"url","url":"` + presigned + `"}}`},
			docs:  []doc{{"quantum.md", MIMEMarkdown, "# Quantum\nQubits.", "storage://prod/rag-docs/quantum.md"}},
		},
		{
			name:  "escaped type is still resolved",
			parts: []string{`{"type":"docum\u0065nt","source":{"type":"url","url":"` + srv.URL + `/data.json"}}`},
			docs:  []doc{{"data.json", MIMEJSON, "{\n  \"a\": 1\n}", srv.URL + "/data.json"}},
		},
		{name: "storage denied", opts: ResolveOptions{Storage: newFakeStorage()}, parts: []string{`{"type":"document","source":{"type":"storage","storage":"secret","bucket":"b","key":"k"}}`}, status: 403, code: CodeAccessDenied, param: "messages[1].content[1]"},
		{name: "storage missing", opts: ResolveOptions{Storage: newFakeStorage()}, parts: []string{`{"type":"text","text":"x"}`, `{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"nope.md"}}`}, status: 404, code: CodeNotFound, param: "messages[1].content[2]"},
		{name: "storage unavailable", parts: []string{`{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"quantum.md"}}`}, status: 400, code: CodeInvalidDocument},
		{name: "storage type not allowed", opts: ResolveOptions{Storage: newFakeStorage()}, parts: []string{`{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"picture.png"}}`}, status: 415, code: CodeUnsupportedType},
		{name: "url type not allowed", parts: []string{`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/photo"}}`}, status: 415, code: CodeUnsupportedType},
		{name: "inline type not allowed", parts: []string{`{"type":"file","file":{"filename":"p.png","file_data":"data:image/png;base64,iVBORw0KGgo="}}`}, status: 415, code: CodeUnsupportedType},
		{name: "url fetch fails", parts: []string{`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/missing"}}`}, status: 502, code: CodeFetchFailed},
		{name: "url blocked", parts: []string{`{"type":"document","source":{"type":"url","url":"http://169.254.169.254/latest/meta-data"}}`}, status: 400, code: CodeURLNotAllowed},
		{name: "url too large", cfg: Config{MaxBytes: 200}, parts: []string{`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/large.txt"}}`}, status: 413, code: CodeTooLarge},
		{name: "inline too large", cfg: Config{MaxBytes: 10}, parts: []string{`{"type":"file","file":{"filename":"a.txt","file_data":"data:text/plain;base64,` + b64(strings.Repeat("x", 64)) + `"}}`}, status: 413, code: CodeTooLarge},
		{
			name:   "total too large",
			cfg:    Config{MaxBytes: 20},
			parts:  []string{`{"type":"file","file":{"filename":"a.txt","file_data":"data:text/plain;base64,` + b64("0123456789abcd") + `"}}`, `{"type":"file","file":{"filename":"b.txt","file_data":"data:text/plain;base64,` + b64("0123456789abcd") + `"}}`},
			status: 413, code: CodeTooLarge, param: "messages[1].content[2]",
		},
		{
			name:   "too many documents",
			cfg:    Config{MaxDocuments: 1},
			parts:  []string{`{"type":"file","file":{"file_data":"data:text/plain,a"}}`, `{"type":"file","file":{"file_data":"data:text/plain,b"}}`},
			status: 400, code: CodeTooManyDocuments, param: "messages[1].content[2]",
		},
		{name: "document without source", parts: []string{`{"type":"document","document":{"id":"doc_0"}}`}, status: 400, code: CodeInvalidDocument},
		{name: "unknown source type", parts: []string{`{"type":"document","source":{"type":"ftp"}}`}, status: 400, code: CodeInvalidDocument},
		{name: "url source without url", parts: []string{`{"type":"document","source":{"type":"url"}}`}, status: 400, code: CodeInvalidDocument},
		{name: "file id", parts: []string{`{"type":"file","file":{"file_id":"file-123"}}`}, status: 400, code: CodeInvalidDocument},
		{name: "bad base64", parts: []string{`{"type":"file","file":{"file_data":"data:text/plain;base64,!!!"}}`}, status: 400, code: CodeInvalidDocument},
		{name: "unreadable pdf", parts: []string{`{"type":"text","text":"x"}`, `{"type":"file","file":{"filename":"h.pdf","file_data":"` + base64.StdEncoding.EncodeToString(makePDF("UNREADABLE")) + `"}}`}, status: 422, code: extractor.CodeUnreadable, param: "messages[1].content[2]"},
		{name: "unreadable html by url", parts: []string{`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/hostile.html"}}`}, status: 422, code: extractor.CodeUnreadable},
		{name: "malformed part", parts: []string{`{"type":"document","source":"https://x"}`}, status: 400, code: CodeInvalidDocument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestResolver(t, tt.cfg, Options{Presign: recognizer})
			body := chatBody(tt.parts...)
			out, docs, err := r.Resolve(context.Background(), body, tt.opts)
			if tt.status != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tt.status || oe.Code != tt.code {
					t.Fatalf("Resolve error = %v, want %d %s", err, tt.status, tt.code)
				}
				want := tt.param
				if want == "" {
					want = "messages[1].content[1]"
				}
				if oe.Param != want {
					t.Errorf("param = %q, want %q", oe.Param, want)
				}
				if oe.Code == extractor.CodeUnreadable && !strings.HasPrefix(oe.Message, want+": ") {
					t.Errorf("message %q does not name the part %s", oe.Message, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.unchaged {
				if !bytes.Equal(out, body) || docs != nil {
					t.Fatalf("Resolve changed the body: %s", out)
				}
				return
			}
			checkResolved(t, out, docs)
			if len(docs) != len(tt.docs) {
				t.Fatalf("got %d documents, want %d", len(docs), len(tt.docs))
			}
			for i, d := range tt.docs {
				got := doc{docs[i].Name, docs[i].MIMEType, docs[i].Text, docs[i].Source}
				if got != d {
					t.Errorf("doc %d = %+v, want %+v", i, got, d)
				}
				if len(docs[i].Data) == 0 {
					t.Errorf("doc %d has no data", i)
				}
			}
		})
	}
}

// checkResolved checks that every document part of out refers to one of
// docs, in order, with no source left, and that the rest of the body
// survived.
func checkResolved(t *testing.T, out []byte, docs []provider.Document) {
	t.Helper()
	var req openai.ChatRequest
	if err := json.Unmarshal(out, &req); err != nil {
		t.Fatalf("resolved body does not decode: %v\n%s", err, out)
	}
	if req.Model != "m" || !req.Stream || req.Messages[0].Content.Text != "be brief" {
		t.Errorf("resolved body lost fields: %s", out)
	}
	n := 0
	for _, m := range req.Messages {
		for _, p := range m.Content.Parts {
			if p.Type == openai.PartFile {
				t.Errorf("file part left in body: %s", out)
			}
			if p.Type != openai.PartDocument {
				continue
			}
			if p.Source != nil || p.Document == nil {
				t.Fatalf("unresolved document part in %s", out)
			}
			if n >= len(docs) || p.Document.ID != docs[n].ID || p.Document.ID != fmt.Sprintf("doc_%d", n) || p.Document.Name != docs[n].Name {
				t.Errorf("part %d = %+v, does not match documents", n, p.Document)
			}
			n++
		}
	}
	if n != len(docs) {
		t.Errorf("%d document parts, %d documents", n, len(docs))
	}
	if bytes.Contains(out, []byte("s3cret")) {
		t.Errorf("resolved body still carries the URL: %s", out)
	}
}

func TestResolveWithoutDocumentsIsUnchanged(t *testing.T) {
	r := newTestResolver(t, Config{}, Options{})
	bodies := []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a \"document\" is mentioned"}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/file"}}]}]}`,
		`{"model":"m","input":"no messages but \"file\""}`,
		`{"model":"m","messages":[{"role":"user","content":"\u00e9t\u00e9"}]}`,
	}
	for _, b := range bodies {
		in := []byte(b)
		out, docs, err := r.Resolve(context.Background(), in, ResolveOptions{})
		if err != nil || docs != nil || &out[0] != &in[0] || len(out) != len(in) {
			t.Errorf("Resolve(%s) = %s, %v, %v; want the same slice", b, out, docs, err)
		}
	}
	if _, _, err := r.Resolve(context.Background(), []byte(`{"messages": "document"`), ResolveOptions{}); err == nil {
		t.Error("Resolve of invalid JSON succeeded, want an error")
	}
}

func TestResolveCachesAcrossRequests(t *testing.T) {
	srv := docServer(t)
	store := newFakeStorage()
	r := newTestResolver(t, Config{}, Options{})
	body := chatBody(
		`{"type":"document","source":{"type":"url","url":"`+srv.URL+`/guide.html"}}`,
		`{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"quantum.md"}}`,
		`{"type":"file","file":{"filename":"n.md","file_data":"data:text/markdown;base64,`+b64("# Hi")+`"}}`,
	)
	for i := range 3 {
		_, docs, err := r.Resolve(context.Background(), body, ResolveOptions{Storage: store})
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 3 || docs[0].Text != "Guide\nRead me." {
			t.Fatalf("request %d: docs = %+v", i, docs)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("URL fetched %d times, want 1", n)
	}
	if n := store.opens.Load(); n != 3 {
		t.Errorf("storage opened %d times, want 3 (the permission check runs every time)", n)
	}
	readsAfterFirst := store.reads.Load()
	if _, _, err := r.Resolve(context.Background(), body, ResolveOptions{Storage: store}); err != nil {
		t.Fatal(err)
	}
	if store.reads.Load() != readsAfterFirst {
		t.Error("a cached storage object was read again")
	}
	if st := r.Stats(); st.Hits != 9 || st.Misses != 3 || st.Errors != 0 {
		t.Errorf("stats = %+v, want 9 hits, 3 misses", st)
	}
	// A denied caller gets 403 even though the object is cached.
	denied := &fakeStorage{denied: map[string]bool{"prod": true}}
	_, _, err := r.Resolve(context.Background(), body, ResolveOptions{Storage: denied})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusForbidden {
		t.Errorf("denied caller: error = %v, want 403", err)
	}
}

func TestResolveRedisCacheSharedByReplicas(t *testing.T) {
	srv := docServer(t)
	redisURL := redistest.Start(t).URL()
	cfg := Config{Cache: &CacheConfig{Backend: BackendRedis, RedisURL: redisURL}}
	body := chatBody(`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/guide.html"}}`)
	for i := range 2 {
		r := newTestResolver(t, cfg, Options{})
		_, docs, err := r.Resolve(context.Background(), body, ResolveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != 1 || docs[0].Text != "Guide\nRead me." || docs[0].MIMEType != MIMEHTML {
			t.Fatalf("replica %d: docs = %+v", i, docs)
		}
		want := Stats{Misses: 1}
		if i == 1 {
			want = Stats{Hits: 1}
		}
		if st := r.Stats(); st != want {
			t.Errorf("replica %d: stats = %+v, want %+v", i, st, want)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("URL fetched %d times, want 1", n)
	}
}

func TestResolveRedisDownFailsOpen(t *testing.T) {
	srv := docServer(t)
	cfg := Config{Cache: &CacheConfig{Backend: BackendRedis, RedisURL: "redis://127.0.0.1:1/0"}}
	r := newTestResolver(t, cfg, Options{})
	body := chatBody(`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/guide.html"}}`)
	if _, docs, err := r.Resolve(context.Background(), body, ResolveOptions{}); err != nil || len(docs) != 1 {
		t.Fatalf("Resolve = %v, %v", docs, err)
	}
	if st := r.Stats(); st.Errors == 0 {
		t.Errorf("stats = %+v, want cache errors counted", st)
	}
}

func TestConfig(t *testing.T) {
	d := DefaultConfig()
	if d.MaxBytes != DefaultMaxBytes || d.MaxDocuments != DefaultMaxDocuments || d.Cache.Backend != BackendMemory || len(d.AllowedMIMETypes) == 0 {
		t.Errorf("DefaultConfig = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig does not validate: %v", err)
	}
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"timeout", Config{Timeout: "soon"}, "timeout"},
		{"negative timeout", Config{Timeout: "-1s"}, "timeout"},
		{"max bytes", Config{MaxBytes: -1}, "max_bytes"},
		{"cidr", Config{AllowCIDRs: []string{"10.0.0.0/99"}}, "allow_cidrs"},
		{"mime", Config{AllowedMIMETypes: []string{"pdf"}}, "allowed_mime_types"},
		{"backend", Config{Cache: &CacheConfig{Backend: "disk"}}, "cache.backend"},
		{"redis url", Config{Cache: &CacheConfig{Backend: BackendRedis}}, "cache.redis_url"},
		{"ttl", Config{Cache: &CacheConfig{TTL: "1 hour"}}, "cache.ttl"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error about %s", err, tt.want)
			}
			if _, err := New(tt.cfg, Options{}); err == nil {
				t.Error("New succeeded with a bad config")
			}
		})
	}
}

func TestMayHaveDocuments(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"type":"document"}`, true},
		{`{"type": "file"}`, true},
		{`"document"`, true},
		{`{"type":"docum\u0065nt"}`, true},
		{`{"type":"\u0066ile"}`, true},
		{`{"text":"a document about a file"}`, false},
		{`{"text":"document\"s"}`, false},
		{`{"text":"\u00e9t\u00e9 \u00fc"}`, false},
		{`{"text":"\\u00"}`, false},
		{`document"`, false},
		{`\u00`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := MayHaveDocuments([]byte(tt.body)); got != tt.want {
			t.Errorf("MayHaveDocuments(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}
