package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The emulator's well-known development account, used when the env does
// not name one.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// emulator is a running Azurite the tests talk to.
type emulator struct {
	endpoint, account, key string
}

// azurite returns the emulator named by the environment. Without it the
// test fails and says how to start one; -short skips emulator tests.
func azurite(t *testing.T) emulator {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not running tests against Azurite")
	}
	e := emulator{
		endpoint: os.Getenv("LLMPROXY_TEST_AZURITE_ENDPOINT"),
		account:  os.Getenv("LLMPROXY_TEST_AZURITE_ACCOUNT"),
		key:      os.Getenv("LLMPROXY_TEST_AZURITE_KEY"),
	}
	if e.endpoint == "" {
		t.Fatal(`LLMPROXY_TEST_AZURITE_ENDPOINT is not set: start Azurite with ` +
			`eval "$(scripts/services/azurite.sh start)" from the repository root (or run go test -short)`)
	}
	if e.account == "" {
		e.account = devAccount
	}
	if e.key == "" {
		e.key = devKey
	}
	return e
}

// config returns a plugin config for the emulator with the account key.
func (e emulator) config(t *testing.T) *storage.Config {
	t.Helper()
	js, err := json.Marshal(config{AccountURL: e.endpoint, AccountName: e.account, BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return &storage.Config{Instance: "test", JSON: js, Credentials: map[string]string{credAccountKey: e.key}}
}

// container creates a container for the test (it may already exist).
func (e emulator) container(t *testing.T, name string) {
	t.Helper()
	cred, err := service.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.NewClientWithSharedKeyCredential(strings.TrimRight(e.endpoint, "/")+"/", cred, insecureOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.CreateContainer(context.Background(), name, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("create container %q in Azurite: %v", name, err)
	}
}

func insecureOptions() *service.ClientOptions {
	o := &service.ClientOptions{}
	o.InsecureAllowCredentialWithHTTP = true
	return o
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
	e := azurite(t)
	const bucket = "conformance"
	e.container(t, bucket)
	sdktest.RunStorage(t, sdktest.StorageSuite{
		Storage:          &Store{},
		Config:           e.config(t),
		Bucket:           bucket,
		LargeObjectBytes: 200 << 20,
	})
}

func TestPresign(t *testing.T) {
	e := azurite(t)
	const bucket = "presign"
	e.container(t, bucket)
	s := configured(t, e.config(t))
	ctx := context.Background()
	key := "docs/report 1.txt"
	if _, err := s.Put(ctx, &storage.Object{Bucket: bucket, Key: key, Size: 5}, strings.NewReader("hello")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	t.Cleanup(func() { s.Delete(ctx, bucket, key) })
	get, err := s.Presign(ctx, &storage.PresignRequest{Bucket: bucket, Key: key, Method: http.MethodGet, TTL: time.Minute})
	if err != nil {
		t.Fatalf("Presign GET: %v", err)
	}
	put, err := s.Presign(ctx, &storage.PresignRequest{Bucket: bucket, Key: "docs/upload.txt", Method: http.MethodPut, TTL: time.Minute})
	if err != nil {
		t.Fatalf("Presign PUT: %v", err)
	}
	t.Cleanup(func() { s.Delete(ctx, bucket, "docs/upload.txt") })
	if got := put.Header.Get("x-ms-blob-type"); got != "BlockBlob" {
		t.Errorf("presigned PUT header x-ms-blob-type = %q, want BlockBlob", got)
	}

	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
		body   string
		want   int
	}{
		{"GET as signed", http.MethodGet, get.URL, nil, "", http.StatusOK},
		{"GET another blob", http.MethodGet, strings.Replace(get.URL, "report%201.txt", "report%202.txt", 1), nil, "", http.StatusForbidden},
		{"GET with a changed signature", http.MethodGet, tamper(t, get.URL, "sig"), nil, "", http.StatusForbidden},
		{"GET with a later expiry", http.MethodGet, withQuery(t, get.URL, "se", time.Now().Add(48*time.Hour).UTC().Format(sas.TimeFormat)), nil, "", http.StatusForbidden},
		{"PUT with a GET URL", http.MethodPut, get.URL, put.Header, "x", http.StatusForbidden},
		{"PUT as signed", http.MethodPut, put.URL, put.Header, "uploaded", http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if tt.method == http.MethodGet {
				req.Body, req.ContentLength = nil, 0
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s = %d %s, want %d", tt.name, resp.StatusCode, body, tt.want)
			}
		})
	}
}

func TestPresignExpires(t *testing.T) {
	e := azurite(t)
	const bucket = "presign"
	e.container(t, bucket)
	s := configured(t, e.config(t))
	ctx := context.Background()
	if _, err := s.Put(ctx, &storage.Object{Bucket: bucket, Key: "short-lived", Size: 1}, strings.NewReader("x")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	t.Cleanup(func() { s.Delete(ctx, bucket, "short-lived") })
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		p, err := s.Presign(ctx, &storage.PresignRequest{Bucket: bucket, Key: "short-lived", Method: method, TTL: time.Second})
		if err != nil {
			t.Fatalf("Presign %s: %v", method, err)
		}
		time.Sleep(time.Until(p.Expires) + 1500*time.Millisecond)
		req, _ := http.NewRequest(method, p.URL, nil)
		if method == http.MethodPut {
			req, _ = http.NewRequest(method, p.URL, strings.NewReader("late"))
		}
		for k, vs := range p.Header {
			req.Header[k] = vs
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("expired presigned %s = %d, want 403", method, resp.StatusCode)
		}
	}
}

// tamper flips the first character of query parameter name in u.
func tamper(t *testing.T, u, name string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	v := []byte(q.Get(name))
	if len(v) == 0 {
		t.Fatalf("URL has no %s parameter", name)
	}
	v[0] = map[bool]byte{true: 'B', false: 'A'}[v[0] == 'A']
	return withQuery(t, u, name, string(v))
}

func withQuery(t *testing.T, u, name, value string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	q.Set(name, value)
	pu.RawQuery = q.Encode()
	return pu.String()
}

func TestSASTokenCredential(t *testing.T) {
	e := azurite(t)
	const bucket = "sastoken"
	e.container(t, bucket)
	cred, err := service.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Create: true, Delete: true, List: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(config{Endpoint: e.endpoint})
	s := configured(t, &storage.Config{JSON: js, Credentials: map[string]string{credSASToken: "?" + qp.Encode()}})
	ctx := context.Background()
	if _, err := s.Put(ctx, &storage.Object{Bucket: bucket, Key: "k", Size: 2}, strings.NewReader("ok")); err != nil {
		t.Fatalf("Put with a SAS token: %v", err)
	}
	t.Cleanup(func() { s.Delete(ctx, bucket, "k") })
	_, rc, err := s.Get(ctx, &storage.GetRequest{Bucket: bucket, Key: "k"})
	if err != nil {
		t.Fatalf("Get with a SAS token: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "ok" {
		t.Errorf("Get = %q, want ok", got)
	}
	_, err = s.Presign(ctx, &storage.PresignRequest{Bucket: bucket, Key: "k", Method: http.MethodGet, TTL: time.Minute})
	wantCode(t, err, http.StatusNotImplemented, storage.CodePresignDisabled)
}

func TestWrongAccountKey(t *testing.T) {
	e := azurite(t)
	e.container(t, "wrongkey")
	cfg := e.config(t)
	cfg.Credentials = map[string]string{credAccountKey: "d3Jvbmcga2V5IGZvciB0ZXN0cw=="}
	s := configured(t, cfg)
	_, err := s.Head(context.Background(), "wrongkey", "anything")
	wantCode(t, err, http.StatusForbidden, storage.CodeAccessDenied)
}

func TestNotConfigured(t *testing.T) {
	s := &Store{}
	if _, err := s.Head(context.Background(), "b", "k"); err == nil {
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

func TestConfigResolve(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config
		want    settings
		errPath string
	}{
		{"azure host", config{AccountURL: "https://acct.blob.core.windows.net"},
			settings{serviceURL: "https://acct.blob.core.windows.net/", accountName: "acct", blockSize: defaultBlockSize, concurrency: defaultConcurrency}, ""},
		{"azurite path style via endpoint", config{Endpoint: "http://127.0.0.1:10000/devstoreaccount1/"},
			settings{serviceURL: "http://127.0.0.1:10000/devstoreaccount1/", accountName: "devstoreaccount1", blockSize: defaultBlockSize, concurrency: defaultConcurrency, insecure: true}, ""},
		{"explicit name and tuning", config{AccountURL: "https://blobs.example.com", AccountName: "x", BlockSize: 8 << 20, Concurrency: 4},
			settings{serviceURL: "https://blobs.example.com/", accountName: "x", blockSize: 8 << 20, concurrency: 4}, ""},
		{"missing URL", config{}, settings{}, "account_url"},
		{"both URLs differ", config{AccountURL: "https://a.blob.core.windows.net", Endpoint: "https://b.blob.core.windows.net"}, settings{}, "account_url"},
		{"relative URL", config{Endpoint: "acct.blob.core.windows.net"}, settings{}, "endpoint"},
		{"SAS in URL", config{AccountURL: "https://acct.blob.core.windows.net/?sig=x"}, settings{}, "account_url"},
		{"no account derivable", config{AccountURL: "http://127.0.0.1:10000"}, settings{}, "account_name"},
		{"block too small", config{AccountURL: "https://acct.blob.core.windows.net", BlockSize: 1024}, settings{}, "block_size"},
		{"concurrency too high", config{AccountURL: "https://acct.blob.core.windows.net", Concurrency: 99}, settings{}, "concurrency"},
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

func TestConfigureCredentials(t *testing.T) {
	js, _ := json.Marshal(config{AccountURL: "https://acct.blob.core.windows.net"})
	tests := []struct {
		name    string
		creds   map[string]string
		wantErr string
	}{
		{"account key", map[string]string{credAccountKey: devKey}, ""},
		{"sas token", map[string]string{credSASToken: "?sv=2024-08-04&ss=b&sig=abc"}, ""},
		{"both", map[string]string{credAccountKey: devKey, credSASToken: "sig=abc"}, "only one"},
		{"key not base64", map[string]string{credAccountKey: "not base64!"}, credAccountKey},
		{"sas without signature", map[string]string{credSASToken: "sv=2024-08-04"}, "no sig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Store{}).Configure(context.Background(), &storage.Config{JSON: js, Credentials: tt.creds})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Configure: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Configure error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), devKey) {
				t.Errorf("Configure error leaks the account key: %v", err)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in      string
		want    storage.ByteRange
		size    int64
		wantErr bool
	}{
		{"bytes 0-0/1", storage.ByteRange{Start: 0, End: 0}, 1, false},
		{"bytes 10-19/1000", storage.ByteRange{Start: 10, End: 19}, 1000, false},
		{"bytes 1000-999/1000", storage.ByteRange{Start: 1000, End: 999}, 1000, false},
		{"bytes -1-4/10", storage.ByteRange{}, 0, true},
		{"bytes 0-x/10", storage.ByteRange{}, 0, true},
		{"bytes */10", storage.ByteRange{}, 0, true},
		{"", storage.ByteRange{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, size, err := parseContentRange(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want || size != tt.size {
				t.Errorf("parseContentRange(%q) = %+v, %d, %v", tt.in, got, size, err)
			}
		})
	}
}

func TestMapError(t *testing.T) {
	resp := func(status int, code string) error {
		return &azcore.ResponseError{StatusCode: status, ErrorCode: code,
			RawResponse: &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {"7"}}}}
	}
	tests := []struct {
		name       string
		err        error
		key        string
		wantStatus int
		wantCode   string
	}{
		{"blob missing", resp(404, "BlobNotFound"), "k", 404, storage.CodeObjectNotFound},
		{"container missing", resp(404, "ContainerNotFound"), "k", 404, storage.CodeBucketNotFound},
		{"404 without code on a blob", resp(404, ""), "k", 404, storage.CodeObjectNotFound},
		{"404 without code on a listing", resp(404, ""), "", 404, storage.CodeBucketNotFound},
		{"auth failed", resp(403, "AuthenticationFailed"), "k", 403, storage.CodeAccessDenied},
		{"bad metadata", resp(400, "InvalidMetadata"), "k", 400, codeInvalidMetadata},
		{"bad request", resp(400, "InvalidHeaderValue"), "k", 400, "InvalidHeaderValue"},
		{"throttled", resp(503, "ServerBusy"), "k", 503, "ServerBusy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, mapError(tt.err, opGet, "b", tt.key), tt.wantStatus, tt.wantCode)
		})
	}
	t.Run("retry after", func(t *testing.T) {
		var oe *openai.Error
		if !errors.As(mapError(resp(503, "ServerBusy"), opPut, "b", "k"), &oe) || oe.RetryAfter != 7*time.Second {
			t.Errorf("RetryAfter = %+v, want 7s", oe)
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

func TestValidateMetadata(t *testing.T) {
	for _, tt := range []struct {
		name string
		md   map[string]string
		ok   bool
	}{
		{"identifiers", map[string]string{"owner": "x", "_v2": "y", "Camel": "z"}, true},
		{"dash", map[string]string{"x-owner": "x"}, false},
		{"leading digit", map[string]string{"2x": "x"}, false},
		{"empty", map[string]string{"": "x"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := validateMetadata(tt.md); (err == nil) != tt.ok {
				t.Errorf("validateMetadata(%v) = %v", tt.md, err)
			}
		})
	}
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
