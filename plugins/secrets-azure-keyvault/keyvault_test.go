package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/secrets-azure-keyvault/kvfake"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

const (
	tenant       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID     = "5e2f7f5c-1111-4a6b-9c1d-llmproxy0001"
	clientSecret = "kv-client-secret-Q9w8e7"
	assertion    = "eyJhbGciOiJSUzI1NiJ9.federated-sa-token.sig"
	miHeader     = "mi-header-7c1f"
	apiKeyOne    = "sk-azure-kv-one-4c2d"
	apiKeyTwo    = "sk-azure-kv-two-9e8f"
)

// testSecrets are the values no error or log line may hold.
var testSecrets = []string{clientSecret, assertion, miHeader, apiKeyOne, apiKeyTwo}

func newFake(t *testing.T) (*kvfake.Server, string) {
	t.Helper()
	f := kvfake.New(kvfake.Identity{Tenant: tenant, ClientID: clientID, ClientSecret: clientSecret, Assertion: assertion, IdentityHeader: miHeader})
	t.Cleanup(f.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, f.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing from the machine's environment may pick the identity.
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "IMDS_ENDPOINT"} {
		t.Setenv(k, "")
	}
	return f, ca
}

func configure(t *testing.T, cfg map[string]any, creds map[string]string) (*KeyVault, error) {
	t.Helper()
	b, _ := json.Marshal(cfg)
	k := &KeyVault{}
	return k, k.Configure(context.Background(), &secrets.Config{JSON: b, Credentials: creds})
}

func baseConfig(f *kvfake.Server, ca string) map[string]any {
	return map[string]any{
		"vault_url": f.URL(), "tenant_id": tenant, "client_id": clientID,
		"authority_host": f.URL(), "ca_file": ca, "verify_challenge_resource": false,
	}
}

func noSecrets(t *testing.T, what string) {
	t.Helper()
	for _, s := range testSecrets {
		if strings.Contains(what, s) {
			t.Errorf("%q holds a test secret", what)
		}
	}
}

func TestResolve(t *testing.T) {
	f, ca := newFake(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	v1 := f.Set("openai-api-key", apiKeyOne, "", time.Time{})
	f.Set("openai-api-key", apiKeyTwo, "", exp)
	f.Set("bedrock", `{"access_key":"AKIA1","secret_key":"s3cr3t"}`, "application/json", time.Time{})
	f.Set("not-json", `{"a":`, "application/json", time.Time{})
	f.Set("old", "x", "", time.Now().Add(-time.Minute))
	f.Set("off", "x", "", time.Time{})
	f.Disable("off")
	k, err := configure(t, baseConfig(f, ca), map[string]string{CredentialClientSecret: clientSecret})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		ref         secrets.Reference
		want        map[string]string
		version     string
		expires     time.Time
		unavailable bool
		failed      string
	}{
		{name: "current version", ref: secrets.Reference{"secret": "openai-api-key"}, want: map[string]string{"value": apiKeyTwo}, expires: exp},
		{name: "pinned version", ref: secrets.Reference{"secret": "openai-api-key", "version": v1}, want: map[string]string{"value": apiKeyOne}, version: v1},
		{name: "json object", ref: secrets.Reference{"secret": "bedrock"}, want: map[string]string{"access_key": "AKIA1", "secret_key": "s3cr3t"}},
		{name: "json content type, not an object", ref: secrets.Reference{"secret": "not-json"}, want: map[string]string{"value": `{"a":`}},
		{name: "missing secret", ref: secrets.Reference{"secret": "nope"}, unavailable: true},
		{name: "missing version", ref: secrets.Reference{"secret": "openai-api-key", "version": strings.Repeat("ab", 16)}, unavailable: true},
		{name: "expired", ref: secrets.Reference{"secret": "old"}, failed: "expired"},
		{name: "disabled", ref: secrets.Reference{"secret": "off"}, failed: "HTTP 403 Forbidden"},
		{name: "no name", ref: secrets.Reference{}, failed: "needs secret"},
		{name: "bad name", ref: secrets.Reference{"secret": "../keys/x"}, failed: "needs secret"},
		{name: "bad version", ref: secrets.Reference{"secret": "openai-api-key", "version": "latest"}, failed: "version must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := k.Resolve(context.Background(), tt.ref)
			switch {
			case tt.unavailable:
				if !errors.Is(err, secrets.ErrUnavailable) {
					t.Fatalf("err = %v; want unavailable", err)
				}
				noSecrets(t, err.Error())
			case tt.failed != "":
				if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), tt.failed) {
					t.Fatalf("err = %v; want a failure saying %q", err, tt.failed)
				}
				noSecrets(t, err.Error())
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Values) != len(tt.want) || len(s.Version) != 32 {
					t.Fatalf("got %d values, version %q; want %d values and a version id", len(s.Values), s.Version, len(tt.want))
				}
				for key, v := range tt.want {
					if s.Values[key] != v {
						t.Errorf("value %s is not the one stored", key)
					}
				}
				if tt.version != "" && s.Version != tt.version {
					t.Errorf("version %s, want %s", s.Version, tt.version)
				}
				if !s.Expires.Equal(tt.expires) {
					t.Errorf("expires %v, want %v", s.Expires, tt.expires)
				}
				if tt.expires.IsZero() && s.RefreshAfter.IsZero() {
					t.Error("a secret without an expiry has no RefreshAfter: a new version would never be seen")
				}
			}
		})
	}
	if f.Grants("client_secret") != 1 {
		t.Errorf("%d client-secret grants; want the token cached after the first", f.Grants("client_secret"))
	}
	if err := k.Health(context.Background()); err != nil {
		t.Errorf("Health: %v", err)
	}
}

// TestAuth logs in each way against the fake Entra ID, then reads a
// secret with the token it got; the wrong secret, assertion or header
// is a failure (not "unavailable") that does not quote it.
func TestAuth(t *testing.T) {
	f, ca := newFake(t)
	f.Set("openai-api-key", apiKeyOne, "", time.Time{})
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	tests := []struct {
		name  string
		cfg   map[string]any
		creds map[string]string
		env   map[string]string
		file  string // federated token file content
		grant string
		ok    bool
	}{
		{name: "client secret", creds: map[string]string{CredentialClientSecret: clientSecret}, grant: "client_secret", ok: true},
		{name: "wrong client secret", creds: map[string]string{CredentialClientSecret: "kv-client-secret-wrong"}, grant: "client_secret"},
		{name: "workload identity", cfg: map[string]any{"auth": "workload_identity", "federated_token_file": tokenFile}, file: assertion, grant: "assertion", ok: true},
		{name: "workload identity from env", env: map[string]string{"AZURE_FEDERATED_TOKEN_FILE": tokenFile}, file: assertion, grant: "assertion", ok: true},
		{name: "workload identity, foreign token", cfg: map[string]any{"federated_token_file": tokenFile}, file: "eyJ.other-sa.sig", grant: "assertion"},
		// The managed identity library keeps one token cache per process:
		// the refused login comes first.
		{name: "managed identity, wrong header", cfg: map[string]any{"auth": "managed_identity"}, env: map[string]string{"IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": "mi-header-wrong"}, grant: "managed_identity"},
		{name: "managed identity", cfg: map[string]any{"auth": "managed_identity"}, env: map[string]string{"IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": miHeader}, grant: "managed_identity", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				if k == "IDENTITY_ENDPOINT" {
					v = f.URL() + "/msi/token"
				}
				t.Setenv(k, v)
			}
			if tt.file != "" {
				os.WriteFile(tokenFile, []byte(tt.file), 0o600)
			}
			cfg := baseConfig(f, ca)
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			before := f.Grants(tt.grant)
			k, err := configure(t, cfg, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			s, err := k.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key"})
			if !tt.ok {
				if err == nil || errors.Is(err, secrets.ErrUnavailable) {
					t.Fatalf("err = %v; want a failure", err)
				}
				noSecrets(t, err.Error())
				if tt.file != "" && strings.Contains(err.Error(), tt.file) {
					t.Errorf("the error quotes the federated token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Values["value"] != apiKeyOne {
				t.Error("wrong value")
			}
			if f.Grants(tt.grant) != before+1 {
				t.Errorf("%s grants went from %d to %d; want one more", tt.grant, before, f.Grants(tt.grant))
			}
		})
	}
	if f.Refused() != 0 {
		t.Errorf("the vault saw %d tokens it did not issue", f.Refused())
	}
}

// TestRotationAndOutage checks that a new version is seen at the next
// read, and that an outage is a failure, not "unavailable", so the host
// keeps the old value and marks the instance degraded.
func TestRotationAndOutage(t *testing.T) {
	f, ca := newFake(t)
	f.Set("openai-api-key", apiKeyOne, "", time.Time{})
	cfg := baseConfig(f, ca)
	cfg["poll_interval"] = "2s"
	k, err := configure(t, cfg, map[string]string{CredentialClientSecret: clientSecret})
	if err != nil {
		t.Fatal(err)
	}
	ref := secrets.Reference{"secret": "openai-api-key"}
	first, err := k.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(first.RefreshAfter); d <= 0 || d > 2*time.Second {
		t.Errorf("RefreshAfter in %v; want the 2s poll interval", d)
	}
	f.Set("openai-api-key", apiKeyTwo, "", time.Time{})
	second, err := k.Resolve(context.Background(), ref)
	if err != nil || second.Values["value"] != apiKeyTwo || second.Version == first.Version {
		t.Fatalf("after a new version: %v, same version %v; want the new value", err, second != nil && second.Version == first.Version)
	}
	f.SetDown(true)
	_, err = k.Resolve(context.Background(), ref)
	if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("during an outage: %v; want a failure with the status", err)
	}
	if k.Health(context.Background()) == nil {
		t.Error("Health during an outage: ok")
	}
	f.SetDown(false)
	if _, err := k.Resolve(context.Background(), ref); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

func TestConfigureRefuses(t *testing.T) {
	f, ca := newFake(t)
	tests := []struct {
		change map[string]any
		creds  map[string]string
		path   string
	}{
		{map[string]any{"vault_url": ""}, nil, "vault_url"},
		{map[string]any{"vault_url": "http://contoso.vault.azure.net"}, nil, "vault_url"},
		{map[string]any{"auth": "client_secret"}, nil, "auth"},
		{map[string]any{"auth": "client_secret", "tenant_id": ""}, map[string]string{CredentialClientSecret: "x"}, "auth"},
		{map[string]any{"auth": "workload_identity", "federated_token_file": "/nonexistent/token"}, nil, "federated_token_file"},
		{map[string]any{"auth": "password"}, nil, "auth"},
		{map[string]any{"timeout": "soon"}, nil, "timeout"},
		{map[string]any{"poll_interval": "-1s"}, nil, "poll_interval"},
		{map[string]any{"authority_host": "http://login.example"}, nil, "authority_host"},
		{map[string]any{"ca_file": "/nonexistent/ca.pem"}, nil, "ca_file"},
	}
	for _, tt := range tests {
		cfg := baseConfig(f, ca)
		for k, v := range tt.change {
			cfg[k] = v
		}
		_, err := configure(t, cfg, tt.creds)
		var diags schema.Diagnostics
		if !errors.As(err, &diags) || !diags.HasErrors() || strings.Join(diags[0].Path, ".") != tt.path {
			t.Errorf("%v: %v; want a diagnostic at %s", tt.change, err, tt.path)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	if _, err := (&KeyVault{}).Resolve(context.Background(), secrets.Reference{"secret": "x"}); err == nil {
		t.Fatal("Resolve before Configure: no error")
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		value, contentType string
		want               map[string]string
	}{
		{"sk-1", "", map[string]string{"value": "sk-1"}},
		{`{"a":"1","b":"2"}`, "application/json", map[string]string{"a": "1", "b": "2"}},
		{`{"a":"1"}`, "Application/JSON; charset=utf-8", map[string]string{"a": "1"}},
		{`{"a":"1"}`, "text/plain", map[string]string{"value": `{"a":"1"}`}},
		{`{"a":1}`, "application/json", map[string]string{"value": `{"a":1}`}},
		{`{}`, "application/json", map[string]string{"value": `{}`}},
		{`["a"]`, "application/json", map[string]string{"value": `["a"]`}},
	}
	for _, tt := range tests {
		got := Values(tt.value, tt.contentType)
		if len(got) != len(tt.want) {
			t.Errorf("Values(%q, %q) = %v, want %v", tt.value, tt.contentType, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("Values(%q, %q)[%s] = %q, want %q", tt.value, tt.contentType, k, got[k], v)
			}
		}
	}
}

// FuzzValues feeds secret values and content types as a vault could
// hold them: never a panic, never an empty result.
func FuzzValues(f *testing.F) {
	f.Add(`{"a":"1"}`, "application/json")
	f.Add(`{"a":{"b":1}}`, "application/json")
	f.Add("sk-1", "")
	f.Fuzz(func(t *testing.T, value, contentType string) {
		if len(Values(value, contentType)) == 0 {
			t.Fatal("no values")
		}
	})
}

func TestConformance(t *testing.T) {
	f, ca := newFake(t)
	f.Set("openai-api-key", apiKeyOne, "", time.Now().Add(time.Hour))
	cfg, _ := json.Marshal(baseConfig(f, ca))
	sdktest.RunSecrets(t, sdktest.SecretsSuite{
		Store:   &KeyVault{},
		Config:  &secrets.Config{JSON: cfg, Credentials: map[string]string{CredentialClientSecret: clientSecret}},
		Present: secrets.Reference{"secret": "openai-api-key"},
		Want:    map[string]string{ValueKey: apiKeyOne},
		Missing: secrets.Reference{"secret": "nope"},
		Update: func(t *testing.T) map[string]string {
			f.Set("openai-api-key", apiKeyTwo, "", time.Time{})
			return map[string]string{ValueKey: apiKeyTwo}
		},
		Secrets: testSecrets,
	})
}
