package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// TestWorkloadIdentity runs the health check (Get Account Information)
// with auth = "workload_identity" against a Blob endpoint that accepts only
// bearer tokens the identity fake issued for storage. Azurite, the
// emulator of the other tests, accepts OAuth only over HTTPS and does not
// check who issued a token, so the bearer check lives here.
func TestWorkloadIdentity(t *testing.T) {
	const saToken = "eyJhbGciOiJSUzI1NiJ9.aks.sig"
	const header = "identity-header"
	tests := []struct {
		name     string
		env      func(t *testing.T, id *identityfake.Fake)
		endpoint string
		clientID string
		wantOK   bool
	}{
		{"aks federated token", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AZURE_FEDERATED_TOKEN_FILE", writeToken(t, saToken))
			t.Setenv("AZURE_CLIENT_ID", "blob-app")
			t.Setenv("AZURE_TENANT_ID", "tenant-1")
			t.Setenv("AZURE_AUTHORITY_HOST", id.TLSURL())
		}, "entra", "", true},
		{"forged federated token", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("AZURE_FEDERATED_TOKEN_FILE", writeToken(t, "forged"))
			t.Setenv("AZURE_CLIENT_ID", "blob-app")
			t.Setenv("AZURE_TENANT_ID", "tenant-1")
			t.Setenv("AZURE_AUTHORITY_HOST", id.TLSURL())
		}, "entra", "", false},
		{"managed identity endpoint", func(t *testing.T, id *identityfake.Fake) {
			t.Setenv("IDENTITY_ENDPOINT", id.URL()+"/msi/token")
			t.Setenv("IDENTITY_HEADER", header)
		}, "msi", "mi-blob", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST",
				"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			id := identityfake.New(identityfake.Options{WebIdentityToken: saToken, AzureTenant: "tenant-1", AzureClientID: "blob-app", IdentityHeader: header})
			t.Cleanup(id.Close)
			tt.env(t, id)
			identityTransport = id.TLSClient()
			t.Cleanup(func() { identityTransport = nil })
			var accepted atomic.Int32
			blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !id.Issued(tok) {
					w.Header().Set("WWW-Authenticate", `Bearer authorization_uri=https://login.microsoftonline.com/tenant-1/oauth2/authorize resource_id=https://storage.azure.com`)
					w.Header().Set("x-ms-error-code", "InvalidAuthenticationInfo")
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				if r.URL.Query().Get("restype") != "account" || r.URL.Query().Get("comp") != "properties" {
					http.NotFound(w, r)
					return
				}
				accepted.Add(1)
				w.Header().Set("x-ms-sku-name", "Standard_LRS")
				w.Header().Set("x-ms-account-kind", "StorageV2")
				w.Header().Set("x-ms-version", r.Header.Get("x-ms-version"))
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(blob.Close)

			raw, _ := json.Marshal(map[string]any{"account_url": blob.URL + "/acct", "account_name": "acct", "auth": authWorkloadIdentity, "client_id": tt.clientID})
			s := &Store{}
			if err := s.Configure(context.Background(), &storage.Config{Instance: "wi", JSON: raw}); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			err := s.Health(context.Background())
			if !tt.wantOK {
				if err == nil || accepted.Load() != 0 {
					t.Fatalf("Health = %v with %d accepted requests, want a refusal", err, accepted.Load())
				}
				if strings.Contains(err.Error(), saToken) {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Health: %v", err)
			}
			if accepted.Load() != 1 || id.Calls(tt.endpoint) != 1 {
				t.Fatalf("blob accepted %d, %s issued %d; want 1 and 1", accepted.Load(), tt.endpoint, id.Calls(tt.endpoint))
			}
			if f := id.Form(tt.endpoint); !strings.Contains(f["scope"]+f["resource"], "https://storage.azure.com") {
				t.Fatalf("token asked for %v, want the storage audience", f)
			}
		})
	}
}

func writeToken(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWorkloadIdentityTakesNoCredentials(t *testing.T) {
	raw := []byte(`{"account_url":"https://acct.blob.core.windows.net","auth":"workload_identity"}`)
	err := (&Store{}).Configure(context.Background(), &storage.Config{JSON: raw, Credentials: map[string]string{credSASToken: "sv=x"}})
	if err == nil || !strings.Contains(err.Error(), "takes no credentials") {
		t.Fatalf("Configure = %v", err)
	}
}
