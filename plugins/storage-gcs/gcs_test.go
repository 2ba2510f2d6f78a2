package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testEmail = "llmproxy-test@test-project.iam.gserviceaccount.com"

// testAccount is a service account made up for a test: its key, its key
// JSON, and a token endpoint that exchanges signed assertions for tokens.
type testAccount struct {
	key  *rsa.PrivateKey
	json string
}

// newTestAccount generates a key and starts a token endpoint that checks
// the JWT assertions signed with it.
func newTestAccount(t *testing.T) *testAccount {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || !validAssertion(r.PostForm.Get("assertion"), &key.PublicKey) {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"test-access-token","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(tokens.Close)
	js, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": "test-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   testEmail,
		"client_id":      "1",
		"token_uri":      tokens.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testAccount{key: key, json: string(js)}
}

// validAssertion checks an RS256 JWT's signature.
func validAssertion(jwt string, pub *rsa.PublicKey) bool {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
}

// fakeGCS returns the emulator endpoint named by the environment. Without
// it the test fails and says how to start one; -short skips emulator
// tests.
func fakeGCS(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not running tests against fake-gcs-server")
	}
	ep := os.Getenv("LLMPROXY_TEST_GCS_ENDPOINT")
	if ep == "" {
		t.Fatal(`LLMPROXY_TEST_GCS_ENDPOINT is not set: start fake-gcs-server with ` +
			`eval "$(scripts/services/fake-gcs.sh start)" from the repository root (or run go test -short)`)
	}
	return ep
}

// createBucket creates a bucket in the emulator (it may already exist).
func createBucket(t *testing.T, endpoint, name string) {
	t.Helper()
	ctx := context.Background()
	c, err := gcs.NewClient(ctx, option.WithEndpoint(endpoint), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Bucket(name).Create(ctx, "test-project", nil)
	var ge *googleapi.Error
	if err != nil && !(errors.As(err, &ge) && ge.Code == http.StatusConflict) {
		t.Fatalf("create bucket %q in fake-gcs-server: %v", name, err)
	}
}

func configFor(t *testing.T, c config, creds map[string]string) *storage.Config {
	t.Helper()
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return &storage.Config{Instance: "test", JSON: js, Credentials: creds}
}

func configured(t *testing.T, cfg *storage.Config) *Store {
	t.Helper()
	s := &Store{}
	if err := s.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	ep := fakeGCS(t)
	const bucket = "conformance"
	createBucket(t, ep, bucket)
	sa := newTestAccount(t)
	sdktest.RunStorage(t, sdktest.StorageSuite{
		Storage: &Store{},
		Config: configFor(t, config{Endpoint: ep, Project: "test-project", ChunkSize: 1 << 20},
			map[string]string{credServiceAccount: sa.json}),
		Bucket: bucket,
		// fake-gcs-server does not check signatures or expiry;
		// TestPresignSignature checks both against the key.
		PresignExpiryUnchecked: true,
		LargeObjectBytes:       200 << 20,
	})
}

func TestAnonymousEmulator(t *testing.T) {
	ep := fakeGCS(t)
	const bucket = "anonymous"
	createBucket(t, ep, bucket)
	s := configured(t, configFor(t, config{Endpoint: ep, Anonymous: true}, nil))
	ctx := context.Background()
	if _, err := s.Put(ctx, &storage.Object{Bucket: bucket, Key: "k", Size: 2}, strings.NewReader("ok")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	t.Cleanup(func() { s.Delete(ctx, bucket, "k") })
	info, err := s.Head(ctx, bucket, "k")
	if err != nil || info.Size != 2 || info.ContentType != defaultContentType {
		t.Fatalf("Head = %+v, %v; want 2 bytes of %s", info, err, defaultContentType)
	}
	_, err = s.Presign(ctx, &storage.PresignRequest{Bucket: bucket, Key: "k", Method: http.MethodGet, TTL: time.Minute})
	wantCode(t, err, http.StatusNotImplemented, storage.CodePresignDisabled)
	if err := s.Delete(ctx, "llmproxy-no-such-bucket", "k"); !isCode(err, storage.CodeBucketNotFound) {
		t.Errorf("Delete in a missing bucket = %v, want bucket_not_found", err)
	}
	if _, err := s.Put(ctx, &storage.Object{Bucket: "llmproxy-no-such-bucket", Key: "k", Size: 1}, strings.NewReader("x")); !isCode(err, storage.CodeBucketNotFound) {
		t.Errorf("Put in a missing bucket = %v, want bucket_not_found", err)
	}
}

func TestPresignSignature(t *testing.T) {
	sa := newTestAccount(t)
	// Signing needs no server: the endpoint is never called.
	s := configured(t, configFor(t, config{Endpoint: "http://127.0.0.1:4443/storage/v1/"}, map[string]string{credServiceAccount: sa.json}))
	ctx := context.Background()
	const key = "docs/quarterly report+ü.pdf"
	get, err := s.Presign(ctx, &storage.PresignRequest{Bucket: "b", Key: key, Method: http.MethodGet, TTL: time.Hour})
	if err != nil {
		t.Fatalf("Presign GET: %v", err)
	}
	put, err := s.Presign(ctx, &storage.PresignRequest{Bucket: "b", Key: key, Method: http.MethodPut, TTL: time.Hour, ContentType: "application/pdf"})
	if err != nil {
		t.Fatalf("Presign PUT: %v", err)
	}
	if got := put.Header.Get("Content-Type"); got != "application/pdf" {
		t.Errorf("presigned PUT Content-Type header = %q", got)
	}
	for _, p := range []*storage.PresignedURL{get, put} {
		u, _ := url.Parse(p.URL)
		if u.Scheme != "http" || u.Host != "127.0.0.1:4443" || !strings.HasPrefix(u.EscapedPath(), "/b/") {
			t.Errorf("presigned %s URL %s does not point at the endpoint's host", p.Method, p.URL)
		}
		if d := time.Until(p.Expires); d < 59*time.Minute || d > time.Hour+time.Second {
			t.Errorf("presigned %s expires in %s, want about an hour", p.Method, d)
		}
	}
	now := time.Now()
	pub := &sa.key.PublicKey
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		url     string
		method  string
		header  http.Header
		pub     *rsa.PublicKey
		at      time.Time
		wantErr error
		bad     bool
	}{
		{"GET as signed", get.URL, http.MethodGet, get.Header, pub, now, nil, false},
		{"PUT as signed", put.URL, http.MethodPut, put.Header, pub, now, nil, false},
		{"GET just before expiry", get.URL, http.MethodGet, get.Header, pub, get.Expires.Add(-time.Second), nil, false},
		{"GET after expiry", get.URL, http.MethodGet, get.Header, pub, get.Expires.Add(time.Second), errExpired, true},
		{"GET before X-Goog-Date", get.URL, http.MethodGet, get.Header, pub, now.Add(-time.Hour), errExpired, true},
		{"GET URL used for PUT", get.URL, http.MethodPut, get.Header, pub, now, nil, true},
		{"PUT without its content type", put.URL, http.MethodPut, http.Header{}, pub, now, nil, true},
		{"PUT with another content type", put.URL, http.MethodPut, http.Header{"Content-Type": {"text/html"}}, pub, now, nil, true},
		{"another object", strings.Replace(get.URL, "/b/docs/", "/b/secret/", 1), http.MethodGet, nil, pub, now, nil, true},
		{"longer expiry", setQuery(t, get.URL, "X-Goog-Expires", "604800"), http.MethodGet, nil, pub, now, nil, true},
		{"earlier date", setQuery(t, get.URL, "X-Goog-Date", now.Add(-time.Minute).UTC().Format(v4DateFormat)), http.MethodGet, nil, pub, now, nil, true},
		{"changed signature", flipSignature(t, get.URL), http.MethodGet, nil, pub, now, nil, true},
		{"another key", get.URL, http.MethodGet, nil, &other.PublicKey, now, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyV4(tt.url, tt.method, tt.header, testEmail, tt.pub, tt.at)
			switch {
			case !tt.bad && err != nil:
				t.Errorf("verifyV4: %v", err)
			case tt.bad && err == nil:
				t.Errorf("verifyV4 accepted a %s", tt.name)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("verifyV4 = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func setQuery(t *testing.T, raw, name, value string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func flipSignature(t *testing.T, raw string) string {
	t.Helper()
	u, _ := url.Parse(raw)
	sig := []byte(u.Query().Get("X-Goog-Signature"))
	sig[len(sig)-1] = map[bool]byte{true: '1', false: '0'}[sig[len(sig)-1] == '0']
	return setQuery(t, raw, "X-Goog-Signature", string(sig))
}

func TestPresignValidation(t *testing.T) {
	sa := newTestAccount(t)
	s := configured(t, configFor(t, config{}, map[string]string{credServiceAccount: sa.json}))
	for _, tt := range []struct {
		name string
		req  storage.PresignRequest
	}{
		{"ttl too long", storage.PresignRequest{Bucket: "b", Key: "k", Method: http.MethodGet, TTL: 8 * 24 * time.Hour}},
		{"ttl too short", storage.PresignRequest{Bucket: "b", Key: "k", Method: http.MethodGet, TTL: time.Millisecond}},
		{"method", storage.PresignRequest{Bucket: "b", Key: "k", Method: http.MethodDelete, TTL: time.Minute}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Presign(context.Background(), &tt.req)
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
				t.Errorf("Presign = %v, want a 400", err)
			}
		})
	}
	t.Run("default host", func(t *testing.T) {
		p, err := s.Presign(context.Background(), &storage.PresignRequest{Bucket: "b", Key: "k", Method: http.MethodGet, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.URL, "https://storage.googleapis.com/b/k?") {
			t.Errorf("URL = %s, want one on storage.googleapis.com", p.URL)
		}
		if err := verifyV4(p.URL, http.MethodGet, nil, testEmail, &sa.key.PublicKey, time.Now()); err != nil {
			t.Errorf("verifyV4: %v", err)
		}
	})
}

func TestConfigResolve(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config
		want    settings
		errPath string
	}{
		{"defaults", config{}, settings{chunkSize: defaultChunkSize}, ""},
		{"emulator root", config{Endpoint: "http://127.0.0.1:4443", Anonymous: true},
			settings{endpoint: "http://127.0.0.1:4443/storage/v1/", signHost: "127.0.0.1:4443", insecure: true, anonymous: true, chunkSize: defaultChunkSize}, ""},
		{"full endpoint", config{Endpoint: "https://storage.example.com/storage/v1", Project: "p", ChunkSize: 8 << 20},
			settings{project: "p", endpoint: "https://storage.example.com/storage/v1/", signHost: "storage.example.com", chunkSize: 8 << 20}, ""},
		{"relative endpoint", config{Endpoint: "127.0.0.1:4443"}, settings{}, "endpoint"},
		{"endpoint with query", config{Endpoint: "https://x.example.com/?a=b"}, settings{}, "endpoint"},
		{"chunk not a multiple", config{ChunkSize: 1 << 20 / 3}, settings{}, "chunk_size"},
		{"chunk too large", config{ChunkSize: 512 << 20}, settings{}, "chunk_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.resolve()
			if tt.errPath != "" {
				var d schema.Diagnostics
				if !errors.As(err, &d) || len(d) == 0 || strings.Join(d[0].Path, ".") != tt.errPath {
					t.Fatalf("resolve() error = %v, want a diagnostic at %s", err, tt.errPath)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(): %v", err)
			}
			if got != tt.want {
				t.Errorf("resolve() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseServiceAccount(t *testing.T) {
	const secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"
	tests := []struct {
		name, js, wantErr string
	}{
		{"valid", `{"type":"service_account","client_email":"a@b","private_key":"` + strings.ReplaceAll(secret, "\n", `\n`) + `"}`, ""},
		{"not JSON", `{"private_key":"` + secret, "not valid JSON"},
		{"user credentials", `{"type":"authorized_user","client_email":"a@b","private_key":"x"}`, "want service_account"},
		{"no key", `{"type":"service_account","client_email":"a@b"}`, "lacks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServiceAccount(tt.js)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parseServiceAccount: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("parseServiceAccount error = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

func TestMapError(t *testing.T) {
	api := func(code int, reason string) error {
		return &googleapi.Error{Code: code, Message: "m", Errors: []googleapi.ErrorItem{{Reason: reason}},
			Header: http.Header{"Retry-After": {"3"}}}
	}
	tests := []struct {
		name       string
		err        error
		key        string
		wantStatus int
		wantCode   string
	}{
		{"object missing", gcs.ErrObjectNotExist, "k", 404, storage.CodeObjectNotFound},
		{"bucket missing", gcs.ErrBucketNotExist, "", 404, storage.CodeBucketNotFound},
		{"404 on a listing", api(404, "notFound"), "", 404, storage.CodeBucketNotFound},
		{"forbidden", api(403, "forbidden"), "k", 403, storage.CodeAccessDenied},
		{"unauthorized", api(401, "required"), "k", 403, storage.CodeAccessDenied},
		{"bad request", api(400, "invalid"), "k", 400, "invalid"},
		{"rate limited", api(429, "rateLimitExceeded"), "k", 429, "rateLimitExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, mapError(tt.err, opGet, "b", tt.key), tt.wantStatus, tt.wantCode)
		})
	}
	t.Run("retry after", func(t *testing.T) {
		var oe *openai.Error
		if !errors.As(mapError(api(503, "backendError"), opPut, "b", "k"), &oe) || oe.RetryAfter != 3*time.Second {
			t.Errorf("RetryAfter = %+v, want 3s", oe)
		}
	})
	t.Run("other errors wrap", func(t *testing.T) {
		base := errors.New("connection reset")
		err := mapError(base, opPut, "b", "k")
		var oe *openai.Error
		if !errors.Is(err, base) || errors.As(err, &oe) {
			t.Errorf("mapError(%v) = %v, want it wrapped as a plain error", base, err)
		}
	})
}

func TestSignedExpiry(t *testing.T) {
	tests := []struct {
		url     string
		want    time.Time
		wantErr bool
	}{
		{"https://h/b/k?X-Goog-Date=20260101T000000Z&X-Goog-Expires=90", time.Date(2026, 1, 1, 0, 1, 30, 0, time.UTC), false},
		{"https://h/b/k?X-Goog-Date=2026-01-01&X-Goog-Expires=90", time.Time{}, true},
		{"https://h/b/k?X-Goog-Date=20260101T000000Z", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := signedExpiry(tt.url)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("signedExpiry(%q) = %v, %v", tt.url, got, err)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	if _, err := (&Store{}).Head(context.Background(), "b", "k"); err == nil {
		t.Fatal("Head before Configure succeeded")
	}
}

func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != status || oe.Code != code {
		t.Fatalf("error = %v, want %d %s", err, status, code)
	}
}

func isCode(err error, code string) bool {
	var oe *openai.Error
	return errors.As(err, &oe) && oe.Code == code
}

func TestDescribeGolden(t *testing.T) {
	d, err := (&Store{}).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "describe.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Describe differs from %s (run go test -update after an intended change):\n%s", path, got)
	}
}
