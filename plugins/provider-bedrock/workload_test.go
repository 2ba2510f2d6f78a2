package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
)

// clearAWSEnv leaves the test with only the variables it sets: no static
// keys, no shared config, no real IMDS.
func clearAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWorkloadIdentity runs a chat through each AWS workload identity
// against the identity fake, whose issued temporary keys are the only ones
// the Bedrock fake accepts (SigV4 with the session token).
func TestWorkloadIdentity(t *testing.T) {
	const saToken = "eyJhbGciOiJSUzI1NiJ9.projected-sa-token.sig"
	const podToken = "eyJhbGciOiJSUzI1NiJ9.pod-identity-token.sig"
	const role = "arn:aws:iam::111122223333:role/llmproxy"
	tests := []struct {
		name     string
		env      func(t *testing.T, id *identityfake.Fake)
		endpoint string
		prefix   string
		wantErr  string
	}{
		{"irsa web identity", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeToken(t, saToken))
			t.Setenv("AWS_ROLE_ARN", role)
			t.Setenv("AWS_ENDPOINT_URL_STS", id.URL())
		}, "sts", "ASIAWEB", ""},
		{"irsa wrong token", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", writeToken(t, "forged"))
			t.Setenv("AWS_ROLE_ARN", role)
			t.Setenv("AWS_ENDPOINT_URL_STS", id.URL())
		}, "sts", "", "InvalidIdentityToken"},
		{"eks pod identity", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", id.URL()+"/v1/credentials")
			t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", writeToken(t, podToken))
		}, "container", "ASIAPOD", ""},
		{"pod identity wrong token", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", id.URL()+"/v1/credentials")
			t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", writeToken(t, "forged"))
		}, "container", "", "Invalid authorization token"},
		{"instance role imdsv2", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", id.URL())
		}, "imds", "ASIAEC2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearAWSEnv(t)
			id := identityfake.New(identityfake.Options{WebIdentityToken: saToken, RoleARN: role, PodIdentityToken: podToken})
			t.Cleanup(id.Close)
			tt.env(t, id)
			f := bedrockfake.New(bedrockfake.Options{Keys: id.AWSKeys, Region: testRegion})
			if err := f.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(f.Close)

			raw, _ := json.Marshal(map[string]string{"region": testRegion, "endpoint": f.URL(), "auth": authWorkloadIdentity})
			b := New()
			if err := b.Configure(context.Background(), &provider.Config{Instance: "wi", JSON: raw}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			_, err := b.ChatCompletion(context.Background(), chatRequest(helloBody))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("chat error = %v, want one naming %q", err, tt.wantErr)
				}
				if f.Requests() != 0 {
					t.Fatalf("the Bedrock fake saw %d requests without a valid identity", f.Requests())
				}
				if strings.Contains(err.Error(), saToken) || strings.Contains(err.Error(), podToken) {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if id.Calls(tt.endpoint) != 1 {
				t.Fatalf("%s endpoint accepted %d requests, want 1", tt.endpoint, id.Calls(tt.endpoint))
			}
			if got := f.LastRequest().Header.Get("Authorization"); !strings.Contains(got, "Credential="+tt.prefix) {
				t.Fatalf("Bedrock saw %q, want one issued by %s (%s…)", got, tt.endpoint, tt.prefix)
			}
			if err := b.Health(context.Background()); err != nil {
				t.Fatalf("Health: %v", err)
			}
		})
	}
}

func TestWorkloadIdentityConfigErrors(t *testing.T) {
	clearAWSEnv(t)
	tests := []struct {
		name  string
		cfg   map[string]string
		creds map[string]string
		want  string
	}{
		{"credentials given", map[string]string{"auth": authWorkloadIdentity}, staticCreds(testSecret), "takes no credentials"},
		{"static without keys", map[string]string{"auth": authStatic}, nil, "needs access_key_id"},
		{"unknown mode", map[string]string{"auth": "magic"}, nil, `auth must be "static" or "workload_identity"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg["region"] = testRegion
			raw, _ := json.Marshal(tt.cfg)
			err := New().Configure(context.Background(), &provider.Config{Instance: "wi", JSON: raw, Credentials: tt.creds})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Configure error = %v, want %q", err, tt.want)
			}
		})
	}
}
