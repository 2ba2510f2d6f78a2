package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
)

// redirect sends requests for the link-local IMDS address to the identity
// fake and everything else through next (which trusts the fake's TLS
// authority): the request azidentity builds is unchanged but for where it
// is delivered.
type redirect struct {
	imds *url.URL
	next *http.Client
}

func (r redirect) Do(req *http.Request) (*http.Response, error) {
	if req.URL.Host == "169.254.169.254" {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host = r.imds.Scheme, r.imds.Host
	}
	return r.next.Do(req)
}

// TestWorkloadIdentity runs a chat with auth = "workload_identity" through
// azidentity: the AKS federated token exchanged at a fake Entra authority
// (which checks the client assertion), the managed identity over IMDS (the
// fake checks the Metadata header) and over an App Service
// IDENTITY_ENDPOINT (the fake checks X-IDENTITY-HEADER). The Azure OpenAI
// fake accepts only the tokens the identity fake issued.
func TestWorkloadIdentity(t *testing.T) {
	const saToken = "eyJhbGciOiJSUzI1NiJ9.aks-federated.sig"
	const header = "app-service-identity-header"
	tests := []struct {
		name     string
		env      func(t *testing.T, id *identityfake.Fake)
		endpoint string
		wantErr  string
	}{
		{"aks federated token", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tokenFile(t, saToken))
			t.Setenv("AZURE_CLIENT_ID", testClientID)
			t.Setenv("AZURE_TENANT_ID", testTenant)
			t.Setenv("AZURE_AUTHORITY_HOST", id.TLSURL())
		}, "entra", ""},
		{"federated token not trusted", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tokenFile(t, "forged"))
			t.Setenv("AZURE_CLIENT_ID", testClientID)
			t.Setenv("AZURE_TENANT_ID", testTenant)
			t.Setenv("AZURE_AUTHORITY_HOST", id.TLSURL())
		}, "entra", "workload_identity_refused"},
		{"managed identity over imds", func(*testing.T, *identityfake.Fake) {}, "msi", ""},
		{"app service identity endpoint", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("IDENTITY_ENDPOINT", id.URL()+"/msi/token")
			t.Setenv("IDENTITY_HEADER", header)
		}, "msi", ""},
		{"app service wrong header", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("IDENTITY_ENDPOINT", id.URL()+"/msi/token")
			t.Setenv("IDENTITY_HEADER", "wrong")
		}, "msi", "workload_identity_refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST",
				"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			id := identityfake.New(identityfake.Options{WebIdentityToken: saToken, AzureTenant: testTenant, AzureClientID: testClientID, IdentityHeader: header})
			t.Cleanup(id.Close)
			tt.env(t, id)
			u, _ := url.Parse(id.URL())
			identityTransport = redirect{imds: u, next: id.TLSClient()}
			t.Cleanup(func() { identityTransport = nil })
			opts := fakeOptions()
			opts.AcceptToken = id.Issued
			f := startFake(t, opts)

			cfg := map[string]string{"endpoint": f.URL(), "auth": AuthWorkloadIdentity}
			if tt.endpoint == "msi" {
				// A user-assigned identity per case: MSAL caches
				// managed-identity tokens process-wide by identity.
				cfg["client_id"] = "mi-" + strings.ReplaceAll(tt.name, " ", "-")
			}
			raw, _ := json.Marshal(cfg)
			a := &Azure{}
			if err := a.Configure(context.Background(), &provider.Config{Instance: "wi", JSON: raw}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			_, err := a.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("chat error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), saToken) || strings.Contains(err.Error(), header) {
					t.Fatalf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if id.Calls(tt.endpoint) != 1 {
				t.Fatalf("%s accepted %d requests, want 1", tt.endpoint, id.Calls(tt.endpoint))
			}
			if got := id.Form(tt.endpoint); tt.endpoint == "entra" && !strings.Contains(got["scope"], DefaultScope) {
				t.Fatalf("Entra saw scope %q, want %q", got["scope"], DefaultScope)
			} else if tt.endpoint == "msi" && got["resource"] != strings.TrimSuffix(DefaultScope, "/.default") {
				t.Fatalf("managed identity saw resource %q", got["resource"])
			}
			// A second call is served from azidentity's cache.
			if _, err := a.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody)); err != nil {
				t.Fatal(err)
			}
			if id.Calls(tt.endpoint) != 1 {
				t.Fatalf("the token was fetched again: %d calls", id.Calls(tt.endpoint))
			}
		})
	}
}

func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWorkloadIdentityTakesNoCredentials(t *testing.T) {
	f := startFake(t, fakeOptions())
	raw, _ := json.Marshal(map[string]string{"endpoint": f.URL(), "auth": AuthWorkloadIdentity})
	err := (&Azure{}).Configure(context.Background(), &provider.Config{JSON: raw, Credentials: map[string]string{CredAPIKey: "k"}})
	if err == nil || !strings.Contains(err.Error(), "takes no credentials") {
		t.Fatalf("Configure = %v", err)
	}
	_ = azurefake.DefaultScope
}
