package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestConformance(t *testing.T) {
	large := int64(200 << 20)
	if testing.Short() {
		large = 16 << 20
	}
	sdktest.RunStorage(t, sdktest.StorageSuite{
		Storage:          &Local{},
		Config:           &storage.Config{Instance: "files", JSON: mustJSON(t, config{Root: t.TempDir(), CreateBuckets: true})},
		Bucket:           "conformance",
		HostSignedURLs:   true,
		LargeObjectBytes: large,
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configured returns a Local over a fresh root with bucket "b".
func configured(t *testing.T, createBuckets bool) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "b"), 0o750); err != nil {
		t.Fatal(err)
	}
	l := &Local{}
	err := l.Configure(context.Background(), &storage.Config{Instance: "t", JSON: mustJSON(t, config{Root: dir, CreateBuckets: createBuckets})})
	var ds schema.Diagnostics
	if err != nil && (!errors.As(err, &ds) || ds.HasErrors()) {
		t.Fatalf("Configure: %v", err)
	}
	return l, dir
}

func TestObjectDir(t *testing.T) {
	tests := []struct {
		bucket, key string
		want        string
		wantErr     string
	}{
		{"b", "a.txt", "b/a.txt", ""},
		{"b", "x/y/z.md", "b/x/y/z.md", ""},
		{"b", ".hidden/.meta", "b/%2Ehidden/%2Emeta", ""},
		{"b", "100%/a%2Fb", "b/100%25/a%252Fb", ""},
		{"b", "sp ace/ü+#?", "b/sp ace/ü+#?", ""},
		{"b", "../etc/passwd", "", "segments are not allowed"},
		{"b", "a/./b", "", "segments are not allowed"},
		{"b", "/abs", "", "absolute"},
		{"b", "a//b", "", "empty path segment"},
		{"b", "dir/", "", "empty path segment"},
		{"b", "ctl\x01", "", "control character"},
		{"b", strings.Repeat("k", 1025), "", "longer than 1024"},
		{"b", strings.Repeat("k", 256), "", "longer than 255"},
		{"..", "k", "", "reserved name"},
		{".b", "k", "", "dot"},
		{"a/b", "k", "", "slash"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := objectDir(tt.bucket, tt.key)
			if tt.wantErr != "" {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || !strings.Contains(oe.Message, tt.wantErr) {
					t.Fatalf("objectDir(%q, %q) = %q, %v; want a 400 mentioning %q", tt.bucket, tt.key, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("objectDir(%q, %q) = %q, %v; want %q", tt.bucket, tt.key, got, err, tt.want)
			}
			segs := strings.Split(got, "/")[1:]
			for i, s := range segs {
				u, ok := unescapeSegment(s)
				if !ok || u != strings.Split(tt.key, "/")[i] {
					t.Errorf("segment %q does not unescape to the key's segment (%q, %v)", s, u, ok)
				}
			}
		})
	}
}

func TestSymlinkEscape(t *testing.T) {
	l, dir := configured(t, false)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "b", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := l.Put(ctx, &storage.Object{Bucket: "b", Key: "escape/x.txt", Size: 2}, strings.NewReader("hi"))
	wantStatus(t, err, http.StatusForbidden)
	_, err = l.Put(ctx, &storage.Object{Bucket: "linked", Key: "x.txt", Size: 2}, strings.NewReader("hi"))
	wantStatus(t, err, http.StatusForbidden)
	_, _, err = l.Get(ctx, &storage.GetRequest{Bucket: "b", Key: "escape/x.txt"})
	wantStatus(t, err, http.StatusForbidden)
	entries, err := os.ReadDir(outside)
	if err != nil || len(entries) != 0 {
		t.Errorf("the directory outside the root holds %v (%v); want nothing written there", entries, err)
	}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != status {
		t.Fatalf("error = %v, want status %d", err, status)
	}
}

func TestBuckets(t *testing.T) {
	ctx := context.Background()
	t.Run("missing bucket without create_buckets", func(t *testing.T) {
		l, _ := configured(t, false)
		_, err := l.Put(ctx, &storage.Object{Bucket: "nope", Key: "k", Size: 1}, strings.NewReader("x"))
		wantStatus(t, err, http.StatusNotFound)
	})
	t.Run("created with create_buckets", func(t *testing.T) {
		l, dir := configured(t, true)
		if _, err := l.Put(ctx, &storage.Object{Bucket: "fresh", Key: "k", Size: 1}, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "fresh", "k")); err != nil || !fi.IsDir() {
			t.Errorf("bucket directory not created: %v", err)
		}
	})
	t.Run("key and key/child coexist, delete prunes", func(t *testing.T) {
		l, dir := configured(t, false)
		for _, k := range []string{"a", "a/b"} {
			if _, err := l.Put(ctx, &storage.Object{Bucket: "b", Key: k, Size: int64(len(k))}, strings.NewReader(k)); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"a/b", "a"} {
			if err := l.Delete(ctx, "b", k); err != nil {
				t.Fatal(err)
			}
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "b"))
		if len(entries) != 0 {
			t.Errorf("bucket directory not empty after deleting everything: %v", entries)
		}
	})
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name     string
		cfg      *storage.Config
		wantPath string
		wantErr  bool
	}{
		{"no root", &storage.Config{JSON: []byte(`{}`)}, "root", true},
		{"bad json", &storage.Config{JSON: []byte(`{"root":`)}, "", true},
		{"short key", &storage.Config{JSON: mustJSON(t, config{Root: t.TempDir()}), Credentials: map[string]string{"signing_key": "short"}}, "", true},
		{"no presigning", &storage.Config{JSON: mustJSON(t, config{Root: t.TempDir()})}, "", false},
		{"presigning", &storage.Config{JSON: mustJSON(t, config{Root: t.TempDir()}),
			Credentials: map[string]string{"signing_key": "0123456789abcdef0123"}, Settings: map[string]string{"public_url": "http://127.0.0.1:8080"}}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Local{}).Configure(context.Background(), tt.cfg)
			var ds schema.Diagnostics
			if err != nil && !errors.As(err, &ds) {
				t.Fatalf("Configure returned %T %v, want schema.Diagnostics", err, err)
			}
			if ds.HasErrors() != tt.wantErr {
				t.Fatalf("Configure = %v, want errors: %v", ds, tt.wantErr)
			}
			if tt.wantPath != "" && (len(ds) == 0 || strings.Join(ds[0].Path, ".") != tt.wantPath) {
				t.Errorf("diagnostics %v do not point at %q", ds, tt.wantPath)
			}
		})
	}
}

func TestDescribeGolden(t *testing.T) {
	d, err := (&Local{}).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "describe.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if strings.TrimSpace(string(want)) != string(got) {
		t.Errorf("Describe changed; run go test -update if intended.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestPageToken(t *testing.T) {
	for _, tt := range []struct {
		last     string
		isPrefix bool
	}{{"a/b", false}, {"dir/", true}, {"ü ?#", false}} {
		got, isPrefix, err := decodeToken(encodeToken(tt.last, tt.isPrefix))
		if err != nil || got != tt.last || isPrefix != tt.isPrefix {
			t.Errorf("token round trip of %q/%v = %q/%v, %v", tt.last, tt.isPrefix, got, isPrefix, err)
		}
	}
	for _, bad := range []string{"!!", "", "eA"} {
		if _, _, err := decodeToken(bad); err == nil {
			t.Errorf("decodeToken(%q) accepted a malformed token", bad)
		}
	}
}
