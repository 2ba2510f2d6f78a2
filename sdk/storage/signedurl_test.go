package storage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

var testKey = []byte("0123456789abcdef-test-key")

func TestSignedURLRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		base string
		obj  SignedObject
	}{
		{"plain", "http://127.0.0.1:8080", SignedObject{Type: "local", Instance: "files", Bucket: "b", Key: "a.txt", Method: http.MethodGet}},
		{"odd key", "https://llm.example.com/", SignedObject{Type: "local", Instance: "files", Bucket: "b", Key: "dir/ü sp+%#?.md", Method: http.MethodPut, ContentType: "text/markdown"}},
		{"base path", "https://example.com/llm", SignedObject{Type: "local", Instance: "x", Bucket: "b", Key: "object/-local/y", Method: http.MethodGet}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.obj.Expires = now.Add(time.Minute)
			raw, err := SignURL(testKey, tt.base, tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := VerifySignedURL(testKey, tt.obj.Method, u, now)
			if err != nil {
				t.Fatalf("VerifySignedURL(%s): %v", raw, err)
			}
			if got.Expires.Unix() != tt.obj.Expires.Unix() {
				t.Errorf("expires = %v, want %v", got.Expires, tt.obj.Expires)
			}
			got.Expires = tt.obj.Expires
			if *got != tt.obj {
				t.Errorf("verified %+v, want %+v", *got, tt.obj)
			}
		})
	}
}

func TestVerifySignedURLRejects(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	obj := SignedObject{Type: "local", Instance: "files", Bucket: "b", Key: "k.txt", Method: http.MethodGet, Expires: now.Add(time.Minute)}
	raw, err := SignURL(testKey, "http://h", obj)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(string) string
		key    []byte
		method string
		at     time.Time
		code   string
	}{
		{"other key", nil, []byte("another-key-of-16-bytes"), http.MethodGet, now, CodeSignatureInvalid},
		{"expired", nil, testKey, http.MethodGet, now.Add(time.Minute), CodeSignatureExpired},
		{"other method", nil, testKey, http.MethodPut, now, CodeSignatureInvalid},
		{"other object", func(s string) string { return strings.Replace(s, "k.txt", "secret.txt", 1) }, testKey, http.MethodGet, now, CodeSignatureInvalid},
		{"other bucket", func(s string) string { return strings.Replace(s, "/b/", "/c/", 1) }, testKey, http.MethodGet, now, CodeSignatureInvalid},
		{"later expiry", func(s string) string {
			return strings.Replace(s, "Expires=1800000060", "Expires=1900000000", 1)
		}, testKey, http.MethodGet, now, CodeSignatureInvalid},
		{"no signature", func(s string) string { return s[:strings.Index(s, "&"+ParamSignature)] }, testKey, http.MethodGet, now, CodeSignatureInvalid},
		{"not a signed path", func(s string) string { return strings.Replace(s, "/object/", "/get/", 1) }, testKey, http.MethodGet, now, CodeSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := raw
			if tt.mutate != nil {
				s = tt.mutate(s)
			}
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			_, err = VerifySignedURL(tt.key, tt.method, u, tt.at)
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusForbidden || oe.Code != tt.code {
				t.Errorf("VerifySignedURL(%s) = %v, want 403 %s", s, err, tt.code)
			}
		})
	}
	u, _ := url.Parse(raw)
	if _, err := VerifySignedURL(testKey, http.MethodHead, u, now); err != nil {
		t.Errorf("HEAD on a GET URL: %v", err)
	}
	if _, err := VerifySignedURL([]byte("short"), http.MethodGet, u, now); err == nil {
		t.Error("a short signing key was accepted")
	}
}

// memObjects is an ObjectIO over one in-memory object map.
type memObjects map[string]string

func (m memObjects) Put(_ context.Context, obj *Object, body io.Reader) (*ObjectInfo, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	m[obj.Bucket+"/"+obj.Key] = string(b)
	m["ct:"+obj.Bucket+"/"+obj.Key] = obj.ContentType
	return &ObjectInfo{Bucket: obj.Bucket, Key: obj.Key, Size: int64(len(b)), ETag: "e"}, nil
}

func (m memObjects) Head(_ context.Context, bucket, key string) (*ObjectInfo, error) {
	b, ok := m[bucket+"/"+key]
	if !ok {
		return nil, NotFound(bucket, key)
	}
	return &ObjectInfo{Bucket: bucket, Key: key, Size: int64(len(b)), ETag: "e", ContentType: m["ct:"+bucket+"/"+key]}, nil
}

func (m memObjects) Get(ctx context.Context, req *GetRequest) (*ObjectInfo, io.ReadCloser, error) {
	info, err := m.Head(ctx, req.Bucket, req.Key)
	if err != nil {
		return nil, nil, err
	}
	b := m[req.Bucket+"/"+req.Key]
	if req.Range != nil {
		r, err := ResolveRange(*req.Range, info.Size)
		if err != nil {
			return nil, nil, err
		}
		info.ContentRange = &r
		b = b[r.Start : r.End+1]
	}
	return info, io.NopCloser(strings.NewReader(b)), nil
}

func TestSignedURLHandler(t *testing.T) {
	objects := memObjects{"b/hello.txt": "hello, world", "ct:b/hello.txt": "text/plain"}
	srv := httptest.NewServer(SignedURLHandler(objects, testKey))
	defer srv.Close()
	sign := func(method, key, ct string, ttl time.Duration) string {
		u, err := SignURL(testKey, srv.URL, SignedObject{Type: "local", Instance: "i", Bucket: "b", Key: key, Method: method, ContentType: ct, Expires: time.Now().Add(ttl)})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	do := func(method, u, rng, body string) (*http.Response, string) {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		req.Header.Set("Content-Type", "application/x-uploader")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	tests := []struct {
		name, method, url, rng, body string
		wantStatus                   int
		wantBody                     string
	}{
		{"get", http.MethodGet, sign(http.MethodGet, "hello.txt", "", time.Minute), "", "", 200, "hello, world"},
		{"range", http.MethodGet, sign(http.MethodGet, "hello.txt", "", time.Minute), "bytes=7-", "", 206, "world"},
		{"bad range", http.MethodGet, sign(http.MethodGet, "hello.txt", "", time.Minute), "bytes=50-", "", 416, ""},
		{"head", http.MethodHead, sign(http.MethodGet, "hello.txt", "", time.Minute), "", "", 200, ""},
		{"missing", http.MethodGet, sign(http.MethodGet, "nope.txt", "", time.Minute), "", "", 404, ""},
		{"expired", http.MethodGet, sign(http.MethodGet, "hello.txt", "", -time.Second), "", "", 403, ""},
		{"put on get url", http.MethodPut, sign(http.MethodGet, "hello.txt", "", time.Minute), "", "x", 403, ""},
		{"put", http.MethodPut, sign(http.MethodPut, "up/load.json", "application/json", time.Minute), "", `{"a":1}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(tt.method, tt.url, tt.rng, tt.body)
			if resp.StatusCode != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("%s = %d %q, want %d %q", tt.name, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if resp.StatusCode >= 400 && tt.method != http.MethodHead && !strings.Contains(body, `"error"`) {
				t.Errorf("error body %q is not an OpenAI error", body)
			}
		})
	}
	if objects["b/up/load.json"] != `{"a":1}` || objects["ct:b/up/load.json"] != "application/json" {
		t.Errorf("PUT stored %q with type %q, want the body with the signed content type", objects["b/up/load.json"], objects["ct:b/up/load.json"])
	}
}
