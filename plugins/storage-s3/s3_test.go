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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testBucket = "llmproxy-conformance"

// emulator returns the config of the S3 emulator the tests run against,
// as scripts/services/versitygw.sh prints it.
func emulator(t *testing.T) *storage.Config {
	t.Helper()
	endpoint := os.Getenv("LLMPROXY_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if testing.Short() {
			t.Skip("LLMPROXY_TEST_S3_ENDPOINT is not set; the emulator-backed test is skipped in -short mode")
		}
		t.Fatal(`LLMPROXY_TEST_S3_ENDPOINT is not set: start the S3 emulator with eval "$(scripts/services/versitygw.sh start)" and run the tests again`)
	}
	region := os.Getenv("LLMPROXY_TEST_S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	cfg, err := json.Marshal(config{Region: region, Endpoint: endpoint, ForcePathStyle: true, HealthBucket: testBucket})
	if err != nil {
		t.Fatal(err)
	}
	return &storage.Config{
		Instance: "s3-test",
		JSON:     cfg,
		Credentials: map[string]string{
			"access_key_id":     os.Getenv("LLMPROXY_TEST_S3_ACCESS_KEY_ID"),
			"secret_access_key": os.Getenv("LLMPROXY_TEST_S3_SECRET_ACCESS_KEY"),
		},
	}
}

// withBucket configures p against the emulator and creates testBucket.
func withBucket(t *testing.T, cfg *storage.Config) *S3 {
	t.Helper()
	p := &S3{}
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	_, err := p.state.Load().client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(testBucket)})
	var ae smithy.APIError
	if err != nil && !(errors.As(err, &ae) && (ae.ErrorCode() == "BucketAlreadyOwnedByYou" || ae.ErrorCode() == "BucketAlreadyExists")) {
		t.Fatalf("create bucket %s: %v", testBucket, err)
	}
	return p
}

func TestConformance(t *testing.T) {
	cfg := emulator(t)
	large := int64(200 << 20)
	if testing.Short() {
		large = 16 << 20
	}
	sdktest.RunStorage(t, sdktest.StorageSuite{
		Storage:          withBucket(t, cfg),
		Config:           cfg,
		Bucket:           testBucket,
		LargeObjectBytes: large,
	})
}

func TestWrongSecret(t *testing.T) {
	cfg := emulator(t)
	withBucket(t, cfg)
	bad := *cfg
	bad.Credentials = map[string]string{"access_key_id": cfg.Credentials["access_key_id"], "secret_access_key": "not-the-secret"}
	p := &S3{}
	if err := p.Configure(context.Background(), &bad); err != nil {
		t.Fatal(err)
	}
	_, err := p.Head(context.Background(), testBucket, "anything")
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusForbidden {
		t.Fatalf("Head with a wrong secret = %v, want 403", err)
	}
}

func TestMapError(t *testing.T) {
	respErr := func(status int, err error) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err}
	}
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: code + " message"} }
	tests := []struct {
		name       string
		err        error
		key        string
		wantStatus int
		wantCode   string
	}{
		{"no such key", respErr(404, api("NoSuchKey")), "k", 404, storage.CodeObjectNotFound},
		{"no such bucket", respErr(404, api("NoSuchBucket")), "k", 404, storage.CodeBucketNotFound},
		{"head 404", respErr(404, errors.New("not found")), "k", 404, storage.CodeObjectNotFound},
		{"bucket 404", respErr(404, errors.New("not found")), "", 404, storage.CodeBucketNotFound},
		{"access denied", respErr(403, api("AccessDenied")), "k", 403, storage.CodeAccessDenied},
		{"bad signature", respErr(403, api("SignatureDoesNotMatch")), "k", 403, storage.CodeAccessDenied},
		{"invalid range", respErr(416, api("InvalidRange")), "k", 416, storage.CodeInvalidRange},
		{"slow down", respErr(503, api("SlowDown")), "k", 503, "backend_busy"},
		{"key too long", respErr(400, api("KeyTooLongError")), "k", 400, "invalid_request"},
		{"internal", respErr(500, api("InternalError")), "k", 502, "upstream_error"},
		{"network", errors.New("connection refused"), "k", 502, "upstream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var oe *openai.Error
			if err := mapError(tt.err, "b", tt.key); !errors.As(err, &oe) || oe.Status != tt.wantStatus || oe.Code != tt.wantCode {
				t.Errorf("mapError = %v, want %d %s", err, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if err := mapError(context.Canceled, "b", "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("mapError(context.Canceled) = %v", err)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end int64
		total      int64
		wantErr    bool
	}{
		{"bytes 0-0/10", 0, 0, 10, false},
		{"bytes 10-19/1000", 10, 19, 1000, false},
		{"bytes 5-4/10", 0, 0, 0, true},
		{"bytes 0-10/10", 0, 0, 0, true},
		{"bytes */10", 0, 0, 0, true},
		{"items 0-1/2", 0, 0, 0, true},
	}
	for _, tt := range tests {
		r, total, err := parseContentRange(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && (r.Start != tt.start || r.End != tt.end || total != tt.total)) {
			t.Errorf("parseContentRange(%q) = %+v %d %v", tt.in, r, total, err)
		}
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		creds   map[string]string
		wantErr string
	}{
		{"defaults", `{}`, nil, ""},
		{"static keys", `{"region":"eu-west-1"}`, map[string]string{"access_key_id": "AKIA", "secret_access_key": "s"}, ""},
		{"half a key", `{}`, map[string]string{"access_key_id": "AKIA"}, "go together"},
		{"bad endpoint", `{"endpoint":"127.0.0.1:7070"}`, nil, "endpoint"},
		{"small parts", `{"part_size_mib":1}`, nil, "part_size_mib"},
		{"broken json", `{"region":`, nil, "invalid config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&S3{}).Configure(context.Background(), &storage.Config{JSON: []byte(tt.json), Credentials: tt.creds})
			var ds schema.Diagnostics
			if err != nil && !errors.As(err, &ds) {
				t.Fatalf("Configure returned %T %v, want schema.Diagnostics", err, err)
			}
			if tt.wantErr == "" && ds.HasErrors() {
				t.Fatalf("Configure = %v, want success", ds)
			}
			if tt.wantErr != "" && (!ds.HasErrors() || !strings.Contains(ds.Error(), tt.wantErr)) {
				t.Fatalf("Configure = %v, want an error about %q", ds, tt.wantErr)
			}
		})
	}
}

func TestDescribeGolden(t *testing.T) {
	d, err := (&S3{}).Describe(context.Background())
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
