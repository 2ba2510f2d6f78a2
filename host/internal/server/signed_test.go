package server

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// TestSignedURLsNormalised signs URLs with the instance's own key for
// objects the storage routes would refuse: a valid signature does not
// let them through, since signed URLs pass the same object type and
// policy. The instance has no plugin binary, so an accepted URL ends in
// 503 from the instance, after every check.
func TestSignedURLsNormalised(t *testing.T) {
	inst := config.Instance{Name: "dev", Type: "local", AllowedBuckets: []string{"rag-docs"}, DeniedPrefixes: []string{"secret/"}}
	mgr := plugins.Start(&config.File{Storage: []config.Instance{inst}}, plugins.Options{Dir: t.TempDir(), Logger: hclog.NewNullLogger()})
	t.Cleanup(mgr.Stop)
	policy, err := access.NewPolicy(&inst)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := auth.New(nil)
	rtr, _ := router.New(nil, nil)
	s := New(Options{Keys: keys, Router: rtr, Plugins: mgr, MaxBodyBytes: 1024, RequestTimeout: time.Second,
		Policies: map[string]*access.Policy{"dev": policy}})
	ln := fasthttputil.NewInmemoryListener()
	hs := s.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown(); ln.Close() })

	tests := []struct {
		bucket, key string
		status      int
		code        string
	}{
		{"rag-docs", "a/../secret/x", 400, "invalid_key"},
		{"rag-docs", "./x", 400, "invalid_key"},
		{"rag-docs", "a//x", 400, "invalid_key"},
		{"rag-docs", "secret/x", 403, "prefix_denied"},
		{"other", "x", 403, "bucket_not_allowed"},
		{"rag-docs", "public/x", 503, ""},
	}
	for _, tt := range tests {
		u, err := storage.SignURL(mgr.Get("dev").SigningKey(), "http://llmproxy", storage.SignedObject{
			Type: "local", Instance: "dev", Bucket: tt.bucket, Key: tt.key, Method: "GET", Expires: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		// Sent as raw bytes: HTTP clients clean "." and ".." out of
		// paths, which would break the signature before the host sees it.
		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("GET " + strings.TrimPrefix(u, "http://llmproxy") + " HTTP/1.1\r\nHost: llmproxy\r\n\r\n"))
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(conn)); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		status, body := resp.StatusCode(), string(resp.Body())
		if status != tt.status || (tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`)) {
			t.Errorf("signed %s/%s: %d %s, want %d %s", tt.bucket, tt.key, status, body, tt.status, tt.code)
		}
	}
}
