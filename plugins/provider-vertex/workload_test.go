package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
)

// TestWorkloadIdentity runs a chat with auth = "workload_identity" through
// Google's own credential detection: once against a GKE metadata server
// (GCE_METADATA_HOST) and once with workload identity federation from an
// external_account file whose subject token the fake STS checks. The Vertex
// fake accepts only tokens the identity fake issued.
func TestWorkloadIdentity(t *testing.T) {
	const subject = "eyJhbGciOiJSUzI1NiJ9.oidc-subject.sig"
	const audience = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/k8s"
	tests := []struct {
		name     string
		env      func(t *testing.T, id *identityfake.Fake)
		endpoint string
		wantErr  string
	}{
		{"gke metadata server", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("GCE_METADATA_HOST", id.Host())
		}, "gce", ""},
		{"workload identity federation", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", externalAccount(t, id, subject, audience))
		}, "google-sts", ""},
		{"federation with a wrong subject token", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", externalAccount(t, id, "forged", audience))
		}, "google-sts", "could not obtain an access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir())
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
			t.Setenv("GCE_METADATA_HOST", "")
			os.Unsetenv("GOOGLE_APPLICATION_CREDENTIALS")
			os.Unsetenv("GCE_METADATA_HOST")
			id := identityfake.New(identityfake.Options{WebIdentityToken: subject, GoogleAudience: audience, GoogleProject: vertexfake.DefaultProject})
			t.Cleanup(id.Close)
			tt.env(t, id)
			f := startFake(t, vertexfake.Options{AcceptToken: id.Issued})
			f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text("hi")}})

			raw, _ := json.Marshal(map[string]string{"endpoint": f.URL(), "project": f.Project(), "location": f.Location(), "auth": authWorkloadIdentity})
			v := &Vertex{}
			if err := v.Configure(context.Background(), &provider.Config{Instance: "wi", JSON: raw}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			body := `{"model":"` + testModel + `","messages":[{"role":"user","content":"Hello"}]}`
			_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(body)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("chat error = %v, want %q", err, tt.wantErr)
				}
				if f.Requests() != 0 {
					t.Fatalf("Vertex saw %d requests without a valid token", f.Requests())
				}
				if strings.Contains(err.Error(), subject) {
					t.Fatalf("error leaks the subject token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if id.Calls(tt.endpoint) != 1 {
				t.Fatalf("%s accepted %d requests, want 1", tt.endpoint, id.Calls(tt.endpoint))
			}
			tok, _ := strings.CutPrefix(f.LastRequest().Header.Get("Authorization"), "Bearer ")
			if !id.Issued(tok) {
				t.Fatalf("Vertex saw a token the identity fake did not issue: %q", tok)
			}
		})
	}
}

// externalAccount writes a workload identity federation config whose
// subject token is a file and whose token_url is the fake STS.
func externalAccount(t *testing.T, id *identityfake.Fake, subject, audience string) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(subject), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"type": "external_account", "audience": audience,
		"subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
		"token_url":          id.URL() + "/v1/token",
		"credential_source":  map[string]any{"file": tokenFile},
	})
	p := filepath.Join(dir, "credential-config.json")
	if err := os.WriteFile(p, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWorkloadIdentityTakesNoCredentials(t *testing.T) {
	raw := []byte(`{"project":"p","auth":"workload_identity"}`)
	err := (&Vertex{}).Configure(context.Background(), &provider.Config{JSON: raw, Credentials: map[string]string{"api_key": "k"}})
	if err == nil || !strings.Contains(err.Error(), "takes no credentials") {
		t.Fatalf("Configure = %v", err)
	}
}
