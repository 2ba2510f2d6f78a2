package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// sigV4Bucket answers ListBuckets for requests signed (SigV4, with the
// session token) by a key pair keys knows, and 403 for any other.
func sigV4Bucket(t *testing.T, keys func(string) (string, string, bool)) (*httptest.Server, *[]string) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !validSigV4(r, keys) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>`))
			return
		}
		seen = append(seen, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>o</ID></Owner><Buckets><Bucket><Name>rag-docs</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>`))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

// validSigV4 re-signs the request's signed headers with the secret of its
// access key and compares the signatures.
func validSigV4(r *http.Request, keys func(string) (string, string, bool)) bool {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return false
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[3] != "s3" {
		return false
	}
	secret, session, ok := keys(scope[0])
	if !ok || r.Header.Get("X-Amz-Security-Token") != session {
		return false
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	re, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h != "host" {
			re.Header.Set(h, r.Header.Get(h))
		}
	}
	re.Header.Del("X-Amz-Security-Token") // the signer sets it from the credentials
	creds := aws.Credentials{AccessKeyID: scope[0], SecretAccessKey: secret, SessionToken: session}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, r.Header.Get("X-Amz-Content-Sha256"), "s3", scope[2], at); err != nil {
		return false
	}
	return re.Header.Get("Authorization") == auth
}

// TestWorkloadIdentity checks the storage plugin's auth =
// "workload_identity" against the identity fake: the S3 endpoint verifies
// SigV4 with the temporary keys and session token the fake issued.
// (versitygw, the emulator of the other tests, knows only its root keys.)
func TestWorkloadIdentity(t *testing.T) {
	const saToken = "eyJhbGciOiJSUzI1NiJ9.projected.sig"
	const podToken = "eyJhbGciOiJSUzI1NiJ9.pod.sig"
	tests := []struct {
		name     string
		env      func(t *testing.T, id *identityfake.Fake)
		endpoint string
	}{
		{"irsa", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeFile(t, saToken))
			t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/rag")
			t.Setenv("AWS_ENDPOINT_URL_STS", id.URL())
		}, "sts"},
		{"eks pod identity", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", id.URL()+"/v1/credentials")
			t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", writeFile(t, podToken))
		}, "container"},
		{"instance role", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", id.URL())
		}, "imds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
					t.Setenv(k, "")
					os.Unsetenv(k)
				}
			}
			t.Setenv("HOME", t.TempDir())
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			id := identityfake.New(identityfake.Options{WebIdentityToken: saToken, PodIdentityToken: podToken})
			t.Cleanup(id.Close)
			tt.env(t, id)
			srv, seen := sigV4Bucket(t, id.AWSKeys)

			raw, _ := json.Marshal(map[string]any{"endpoint": srv.URL, "region": "eu-west-1", "force_path_style": true, "auth": authWorkloadIdentity})
			p := &S3{}
			if err := p.Configure(context.Background(), &storage.Config{Instance: "wi", JSON: raw}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if err := p.Health(context.Background()); err != nil {
				t.Fatalf("Health (ListBuckets): %v", err)
			}
			if id.Calls(tt.endpoint) != 1 || len(*seen) != 1 {
				t.Fatalf("%s accepted %d requests, S3 %d; want 1 and 1", tt.endpoint, id.Calls(tt.endpoint), len(*seen))
			}
		})
	}
}

func TestWorkloadIdentityRejectsForgedKeys(t *testing.T) {
	// The key id is known but with another secret: only the signature
	// tells them apart.
	srv, _ := sigV4Bucket(t, func(id string) (string, string, bool) { return "the-real-secret", "", id == "AKIDFORGED" })
	raw, _ := json.Marshal(map[string]any{"endpoint": srv.URL, "region": "eu-west-1", "force_path_style": true})
	p := &S3{}
	if err := p.Configure(context.Background(), &storage.Config{Instance: "s", JSON: raw,
		Credentials: map[string]string{"access_key_id": "AKIDFORGED", "secret_access_key": "forged"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Health(context.Background()); err == nil {
		t.Fatal("the SigV4 check accepted a signature made with the wrong secret")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
