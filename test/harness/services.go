package harness

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The storage emulators the tests use are started by scripts in
// scripts/services/ (all at once by scripts/services.sh, which `make test`
// runs); each script prints the environment variables read here. A test
// that needs an emulator whose variables are missing fails with the
// command that starts it: it never skips.

// S3Service is the S3-compatible emulator (versitygw).
type S3Service struct {
	Endpoint        string
	AccessKeyID     string
	SecretAccessKey string
	Region          string
}

// AzuriteService is Azure's Blob Storage emulator.
type AzuriteService struct {
	// Endpoint is the account URL, e.g. http://127.0.0.1:10000/devstoreaccount1.
	Endpoint string
	Account  string
	// Key is the base64 account key.
	Key string
}

// GCSService is the Google Cloud Storage emulator (fake-gcs-server).
type GCSService struct {
	// Endpoint is the JSON API base URL ending in "/storage/v1/".
	Endpoint string
}

// Azurite's well-known development account, the defaults when the
// account variables are unset.
const (
	azuriteDevAccount = "devstoreaccount1"
	azuriteDevKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// missingService is the error of a service whose variables are unset.
func missingService(variable, script string) error {
	return fmt.Errorf("%s is not set: start the emulator with `eval \"$(scripts/services/%s start)\"` "+
		"from the repository root (or all of them with `eval \"$(scripts/services.sh start)\"`; `make test` does this)",
		variable, script)
}

// LoadS3 reads the S3 emulator's variables (LLMPROXY_TEST_S3_*).
func LoadS3() (S3Service, error) {
	s := S3Service{
		Endpoint:        os.Getenv("LLMPROXY_TEST_S3_ENDPOINT"),
		AccessKeyID:     os.Getenv("LLMPROXY_TEST_S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("LLMPROXY_TEST_S3_SECRET_ACCESS_KEY"),
		Region:          os.Getenv("LLMPROXY_TEST_S3_REGION"),
	}
	switch {
	case s.Endpoint == "":
		return s, missingService("LLMPROXY_TEST_S3_ENDPOINT", "versitygw.sh")
	case s.AccessKeyID == "" || s.SecretAccessKey == "":
		return s, missingService("LLMPROXY_TEST_S3_ACCESS_KEY_ID or LLMPROXY_TEST_S3_SECRET_ACCESS_KEY", "versitygw.sh")
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	return s, nil
}

// LoadAzurite reads Azurite's variables (LLMPROXY_TEST_AZURITE_*).
func LoadAzurite() (AzuriteService, error) {
	a := AzuriteService{
		Endpoint: strings.TrimRight(os.Getenv("LLMPROXY_TEST_AZURITE_ENDPOINT"), "/"),
		Account:  os.Getenv("LLMPROXY_TEST_AZURITE_ACCOUNT"),
		Key:      os.Getenv("LLMPROXY_TEST_AZURITE_KEY"),
	}
	if a.Endpoint == "" {
		return a, missingService("LLMPROXY_TEST_AZURITE_ENDPOINT", "azurite.sh")
	}
	if a.Account == "" {
		a.Account = azuriteDevAccount
	}
	if a.Key == "" {
		a.Key = azuriteDevKey
	}
	return a, nil
}

// LoadGCS reads fake-gcs-server's variable (LLMPROXY_TEST_GCS_ENDPOINT).
func LoadGCS() (GCSService, error) {
	g := GCSService{Endpoint: os.Getenv("LLMPROXY_TEST_GCS_ENDPOINT")}
	if g.Endpoint == "" {
		return g, missingService("LLMPROXY_TEST_GCS_ENDPOINT", "fake-gcs.sh")
	}
	if !strings.HasSuffix(g.Endpoint, "/") {
		g.Endpoint += "/"
	}
	return g, nil
}

// S3 returns the S3 emulator or fails the test naming the script to run.
func S3(t testing.TB) S3Service {
	t.Helper()
	s, err := LoadS3()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Azurite returns Azurite or fails the test naming the script to run.
func Azurite(t testing.TB) AzuriteService {
	t.Helper()
	a, err := LoadAzurite()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// GCS returns fake-gcs-server or fails the test naming the script to run.
func GCS(t testing.TB) GCSService {
	t.Helper()
	g, err := LoadGCS()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// serviceClient is the HTTP client of the emulator helpers.
var serviceClient = &http.Client{Timeout: 30 * time.Second}

// send performs req and accepts the listed statuses.
func send(req *http.Request, what string, ok ...int) error {
	resp, err := serviceClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	for _, s := range ok {
		if resp.StatusCode == s {
			return nil
		}
	}
	return fmt.Errorf("%s: status %d: %s", what, resp.StatusCode, bytes.TrimSpace(body))
}

// emptySHA256 is the hex SHA-256 of an empty payload.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// CreateBucket creates bucket in the emulator; an existing bucket of the
// same owner is fine.
func (s S3Service) CreateBucket(ctx context.Context, bucket string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(s.Endpoint, "/")+"/"+bucket, http.NoBody)
	if err != nil {
		return fmt.Errorf("create S3 bucket %s: %w", bucket, err)
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds := aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptySHA256, "s3", s.Region, time.Now()); err != nil {
		return fmt.Errorf("create S3 bucket %s: sign: %w", bucket, err)
	}
	resp, err := serviceClient.Do(req)
	if err != nil {
		return fmt.Errorf("create S3 bucket %s: %w", bucket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK || bytes.Contains(body, []byte("BucketAlreadyOwnedByYou")) {
		return nil
	}
	return fmt.Errorf("create S3 bucket %s: status %d: %s", bucket, resp.StatusCode, bytes.TrimSpace(body))
}

// azureVersion is the Blob service API version the helpers speak.
const azureVersion = "2021-08-06"

// CreateContainer creates a blob container; an existing one is fine.
func (a AzuriteService) CreateContainer(ctx context.Context, container string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.Endpoint+"/"+container+"?restype=container", http.NoBody)
	if err != nil {
		return fmt.Errorf("create Azurite container %s: %w", container, err)
	}
	if err := a.sign(req); err != nil {
		return fmt.Errorf("create Azurite container %s: %w", container, err)
	}
	return send(req, "create Azurite container "+container, http.StatusCreated, http.StatusConflict)
}

// sign adds Shared Key authorization to a body-less request.
func (a AzuriteService) sign(req *http.Request) error {
	key, err := base64.StdEncoding.DecodeString(a.Key)
	if err != nil {
		return fmt.Errorf("account key is not base64: %w", err)
	}
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("x-ms-version", azureVersion)
	var msHeaders []string
	for name := range req.Header {
		if l := strings.ToLower(name); strings.HasPrefix(l, "x-ms-") {
			msHeaders = append(msHeaders, l+":"+req.Header.Get(name))
		}
	}
	sort.Strings(msHeaders)
	resource := "/" + a.Account + req.URL.EscapedPath()
	q := req.URL.Query()
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		vals := append([]string(nil), q[name]...)
		sort.Strings(vals)
		resource += "\n" + strings.ToLower(name) + ":" + strings.Join(vals, ",")
	}
	// Verb, then Content-Encoding, -Language, -Length, -MD5, -Type, Date,
	// If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since and
	// Range, all empty for these requests.
	toSign := req.Method + strings.Repeat("\n", 12) + strings.Join(msHeaders, "\n") + "\n" + resource
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(toSign))
	req.Header.Set("Authorization", "SharedKey "+a.Account+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return nil
}

// CreateBucket creates a bucket in fake-gcs-server; an existing one is
// fine.
func (g GCSService) CreateBucket(ctx context.Context, bucket string) error {
	body, err := json.Marshal(map[string]string{"name": bucket})
	if err != nil {
		return fmt.Errorf("create GCS bucket %s: %w", bucket, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.Endpoint+"b?project=llmproxy-e2e", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("create GCS bucket %s: %w", bucket, err)
	}
	req.Header.Set("Content-Type", "application/json")
	return send(req, "create GCS bucket "+bucket, http.StatusOK, http.StatusConflict)
}

// NewServiceAccountJSON returns a freshly generated Google service account
// key in the JSON form the gcs plugin's service_account_json credential
// takes. Against the emulator it only signs URLs.
func NewServiceAccountJSON() (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("generate service account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encode service account key: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("service account key id: %w", err)
	}
	js, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "llmproxy-e2e",
		"private_key_id": hex.EncodeToString(id),
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "llmproxy-e2e@llmproxy-e2e.iam.gserviceaccount.com",
		"token_uri":      "http://127.0.0.1:1/token",
	})
	if err != nil {
		return "", fmt.Errorf("encode service account JSON: %w", err)
	}
	return string(js), nil
}

// StorageBackend is one storage plugin type wired to its test service.
type StorageBackend struct {
	// Type is the plugin type: local, s3, azblob or gcs.
	Type string
	// Body is what goes inside a storage "name" { } block after type: the
	// config block and the credentials that reach the service.
	Body string
	// CreateBucket makes a bucket exist in the service.
	CreateBucket func(ctx context.Context, bucket string) error
	// ChecksExpiry tells whether the service refuses its presigned URLs
	// once they expire. fake-gcs-server accepts signed URLs without
	// checking them; the gcs plugin's own tests verify its signatures.
	ChecksExpiry bool
}

// StorageTypes are the storage plugin types NewStorageBackend knows.
var StorageTypes = []string{"local", "s3", "azblob", "gcs"}

// NewStorageBackend returns the backend of plugin type typ against its
// test service, or an error naming the script that starts the service.
// dir is a private directory for files the backend needs (the local
// root, the gcs service account key).
func NewStorageBackend(typ, dir string) (StorageBackend, error) {
	b := StorageBackend{Type: typ, ChecksExpiry: true}
	switch typ {
	case "local":
		root := filepath.Join(dir, "objects")
		if err := os.MkdirAll(root, 0o700); err != nil {
			return b, fmt.Errorf("local storage root: %w", err)
		}
		b.Body = fmt.Sprintf("config {\n    root = %q\n    create_buckets = true\n  }", root)
		b.CreateBucket = func(context.Context, string) error { return nil }
	case "s3":
		s, err := LoadS3()
		if err != nil {
			return b, err
		}
		b.Body = fmt.Sprintf(`config {
    endpoint         = %q
    region           = %q
    force_path_style = true
  }
  credential "access_key_id" {
    from "value" { value = %q }
  }
  credential "secret_access_key" {
    from "value" { value = %q }
  }`, s.Endpoint, s.Region, s.AccessKeyID, s.SecretAccessKey)
		b.CreateBucket = s.CreateBucket
	case "azblob":
		a, err := LoadAzurite()
		if err != nil {
			return b, err
		}
		b.Body = fmt.Sprintf(`config {
    account_url  = %q
    account_name = %q
  }
  credential "account_key" {
    from "value" { value = %q }
  }`, a.Endpoint, a.Account, a.Key)
		b.CreateBucket = a.CreateContainer
	case "gcs":
		g, err := LoadGCS()
		if err != nil {
			return b, err
		}
		sa, err := NewServiceAccountJSON()
		if err != nil {
			return b, err
		}
		keyFile := filepath.Join(dir, "service-account.json")
		if err := os.WriteFile(keyFile, []byte(sa), 0o600); err != nil {
			return b, fmt.Errorf("write service account key: %w", err)
		}
		b.Body = fmt.Sprintf(`config {
    endpoint  = %q
    anonymous = true
  }
  credential "service_account_json" {
    from "file" { path = %q }
  }`, g.Endpoint, keyFile)
		b.CreateBucket = g.CreateBucket
		b.ChecksExpiry = false
	default:
		return b, fmt.Errorf("unknown storage type %q (want one of %v)", typ, StorageTypes)
	}
	return b, nil
}

// StorageBackendFor is NewStorageBackend for a test: it fails the test
// when the backend's service is not available.
func StorageBackendFor(t testing.TB, typ string) StorageBackend {
	t.Helper()
	b, err := NewStorageBackend(typ, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
