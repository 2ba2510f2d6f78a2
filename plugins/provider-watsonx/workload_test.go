package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// TestTrustedProfile runs a chat with auth = "workload_identity": the
// compute-resource token file is exchanged at the fake IAM with the
// cr-token grant for a trusted profile, and the fake watsonx.ai accepts
// only the bearer token IAM issued.
func TestTrustedProfile(t *testing.T) {
	const crToken = "eyJhbGciOiJSUzI1NiJ9.cr-token.sig"
	tests := []struct {
		name    string
		token   string
		profile map[string]string
		wantErr string
	}{
		{"profile id", crToken, map[string]string{"trusted_profile_id": "Profile-llm"}, ""},
		{"profile name", crToken, map[string]string{"trusted_profile_name": "llmproxy"}, ""},
		{"wrong cr token", "forged", map[string]string{"trusted_profile_id": "Profile-llm"}, "401"},
		{"profile not granted", crToken, map[string]string{"trusted_profile_id": "Profile-other"}, "401"},
		{"no token file", "", map[string]string{"trusted_profile_id": "Profile-llm"}, "workload_identity_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, watsonxfake.Options{CRToken: crToken, TrustedProfileID: "Profile-llm", TrustedProfileName: "llmproxy"})
			file := filepath.Join(t.TempDir(), "vault-token")
			if tt.token != "" {
				if err := os.WriteFile(file, []byte(tt.token+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := map[string]string{"url": f.URL(), "iam_url": f.URL(), "project_id": f.ProjectID(), "auth": "workload_identity", "cr_token_file": file}
			for k, v := range tt.profile {
				cfg[k] = v
			}
			raw, _ := json.Marshal(cfg)
			w := &Watsonx{}
			if err := w.Configure(context.Background(), &provider.Config{Instance: "wi", JSON: raw}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			_, err := w.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("chat error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), crToken) {
					t.Fatalf("error leaks the CR token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if f.CRExchanges() != 1 {
				t.Fatalf("IAM accepted %d cr-token grants, want 1", f.CRExchanges())
			}
		})
	}
}

func TestTrustedProfileConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   string
		creds map[string]string
		want  string
	}{
		{"api key given", `"auth":"workload_identity","trusted_profile_id":"p"`, map[string]string{"api_key": "k"}, "takes no api_key"},
		{"no profile", `"auth":"workload_identity"`, nil, "exactly one of trusted_profile_id"},
		{"both profiles", `"auth":"workload_identity","trusted_profile_id":"p","trusted_profile_name":"n"`, nil, "exactly one of trusted_profile_id"},
		{"unknown mode", `"auth":"magic"`, nil, `auth must be "api_key" or "workload_identity"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(`{"url":"https://us-south.ml.cloud.ibm.com","project_id":"p",` + tt.cfg + `}`)
			err := (&Watsonx{}).Configure(context.Background(), &provider.Config{JSON: raw, Credentials: tt.creds})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Configure = %v, want %q", err, tt.want)
			}
		})
	}
}
