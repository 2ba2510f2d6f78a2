package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/secrets-vault/vaultfake"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

const (
	rootToken = "hvs.root-test-token-0a1b"
	roleID    = "role-llmproxy"
	secretID  = "secret-id-7f3e9d"
	saJWT     = "eyJhbGciOiJSUzI1NiJ9.sa-token-one.sig"
)

// clock is a settable clock shared by the fake and the plugin.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startFake(t *testing.T, o vaultfake.Options) *vaultfake.Server {
	t.Helper()
	f := vaultfake.New(o)
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func configure(t *testing.T, clk *clock, cfg map[string]any, creds map[string]string) *Vault {
	t.Helper()
	v := New()
	if clk != nil {
		v.now = clk.Now
	}
	b, _ := json.Marshal(cfg)
	if err := v.Configure(context.Background(), &secrets.Config{Instance: "vault", JSON: b, Credentials: creds}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return v
}

func TestKVv2(t *testing.T) {
	f := startFake(t, vaultfake.Options{RootToken: rootToken})
	f.PutKV("secret", "llm/openai", map[string]any{"api_key": "sk-kv-one", "org": "acme", "limits": map[string]any{"rpm": 60}})
	f.PutKV("secret", "llm/openai", map[string]any{"api_key": "sk-kv-two"})
	v := configure(t, nil, map[string]any{"address": f.URL()}, map[string]string{CredentialToken: rootToken})
	ctx := context.Background()

	tests := []struct {
		name        string
		ref         secrets.Reference
		want        map[string]string
		version     string
		unavailable bool
	}{
		{name: "latest", ref: secrets.Reference{"path": "secret/data/llm/openai"}, want: map[string]string{"api_key": "sk-kv-two"}, version: "2"},
		{name: "pinned version, non-string as JSON", ref: secrets.Reference{"path": "secret/data/llm/openai", "version": "1"},
			want: map[string]string{"api_key": "sk-kv-one", "org": "acme", "limits": `{"rpm":60}`}, version: "1"},
		{name: "missing path", ref: secrets.Reference{"path": "secret/data/llm/nothing"}, unavailable: true},
		{name: "missing version", ref: secrets.Reference{"path": "secret/data/llm/openai", "version": "9"}, unavailable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := v.Resolve(ctx, tt.ref)
			if tt.unavailable {
				if !errors.Is(err, secrets.ErrUnavailable) {
					t.Fatalf("err = %v; want unavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Values) != len(tt.want) || s.Version != tt.version || !s.Expires.IsZero() || s.RefreshAfter.IsZero() {
				t.Fatalf("got %+v; want %v version %s, no expiry", s, tt.want, tt.version)
			}
			for k, w := range tt.want {
				if s.Values[k] != w {
					t.Errorf("%s = %q, want %q", k, s.Values[k], w)
				}
			}
		})
	}
}

func TestAuthFailuresAreFailures(t *testing.T) {
	f := startFake(t, vaultfake.Options{RootToken: rootToken, RoleID: roleID, SecretID: secretID, KubernetesRole: "llmproxy", ServiceAccountJWT: saJWT})
	f.PutKV("secret", "x", map[string]any{"k": "v"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("eyJ.wrong.sig\n"), 0o600)
	tests := []struct {
		name  string
		cfg   map[string]any
		creds map[string]string
		want  string
	}{
		{"wrong token", map[string]any{"address": f.URL()}, map[string]string{CredentialToken: "hvs.not-issued"}, "permission denied"},
		{"wrong secret id", map[string]any{"address": f.URL(), "auth": "approle", "role_id": roleID}, map[string]string{CredentialSecretID: "secret-id-wrong-11"}, "invalid role or secret ID"},
		{"wrong service account", map[string]any{"address": f.URL(), "auth": "kubernetes", "role": "llmproxy", "service_account_token_path": tokenFile}, nil, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := configure(t, nil, tt.cfg, tt.creds)
			_, err := v.Resolve(context.Background(), secrets.Reference{"path": "secret/data/x"})
			if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want a failure saying %q", err, tt.want)
			}
			for _, s := range []string{"hvs.not-issued", "secret-id-wrong-11", "eyJ.wrong.sig"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error holds a secret: %v", err)
				}
			}
		})
	}
}

func TestConfigureRefusesIncompleteAuth(t *testing.T) {
	tests := []struct {
		cfg   map[string]any
		creds map[string]string
		path  string
	}{
		{map[string]any{"address": "http://127.0.0.1:1"}, nil, "auth"},
		{map[string]any{"address": "http://127.0.0.1:1", "auth": "approle"}, map[string]string{CredentialSecretID: "x"}, "role_id"},
		{map[string]any{"address": "http://127.0.0.1:1", "auth": "kubernetes"}, nil, "role"},
		{map[string]any{"address": "http://127.0.0.1:1", "auth": "ldap"}, nil, "auth"},
		{map[string]any{"address": "http://127.0.0.1:1", "timeout": "soon"}, map[string]string{CredentialToken: "t"}, "timeout"},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(tt.cfg)
		err := New().Configure(context.Background(), &secrets.Config{JSON: b, Credentials: tt.creds})
		var diags schema.Diagnostics
		if !errors.As(err, &diags) || !diags.HasErrors() || strings.Join(diags[0].Path, ".") != tt.path {
			t.Errorf("%v: err = %v; want a diagnostic at %s", tt.cfg, err, tt.path)
		}
	}
}

// TestAppRoleTokenRenewal logs in with AppRole, renews the token at two
// thirds of its lifetime, and logs in again when Vault no longer knows
// the token.
func TestAppRoleTokenRenewal(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	f := startFake(t, vaultfake.Options{RoleID: roleID, SecretID: secretID, TokenTTL: 30 * time.Second, Now: clk.Now})
	f.PutKV("secret", "x", map[string]any{"k": "v"})
	v := configure(t, clk, map[string]any{"address": f.URL(), "auth": "approle", "role_id": roleID}, map[string]string{CredentialSecretID: secretID})
	ctx := context.Background()
	read := func() {
		t.Helper()
		if _, err := v.Resolve(ctx, secrets.Reference{"path": "secret/data/x"}); err != nil {
			t.Fatal(err)
		}
	}
	read()
	read()
	if f.Calls("approle") != 1 || f.Calls("renew-self") != 0 {
		t.Fatalf("after two reads: %d logins, %d renewals; want 1, 0", f.Calls("approle"), f.Calls("renew-self"))
	}
	clk.Add(21 * time.Second)
	read()
	if f.Calls("renew-self") != 1 || f.Calls("approle") != 1 {
		t.Fatalf("at 21s of 30s: %d renewals, %d logins; want 1, 1", f.Calls("renew-self"), f.Calls("approle"))
	}
	// Far beyond the token's life: renewal is refused, a new login works.
	clk.Add(time.Hour)
	read()
	if f.Calls("approle") != 2 {
		t.Fatalf("after the token expired: %d logins; want 2", f.Calls("approle"))
	}
}

// TestKubernetesLoginRereadsToken logs in with the service-account token
// from its file, and reads the file again at the next login, since the
// kubelet rotates projected tokens.
func TestKubernetesLoginRereadsToken(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	f := startFake(t, vaultfake.Options{KubernetesRole: "llmproxy", ServiceAccountJWT: saJWT, TokenTTL: 30 * time.Second, Now: clk.Now})
	f.PutKV("secret", "x", map[string]any{"k": "v"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(saJWT+"\n"), 0o600)
	v := configure(t, clk, map[string]any{"address": f.URL(), "auth": "kubernetes", "role": "llmproxy", "service_account_token_path": tokenFile}, nil)
	if _, err := v.Resolve(context.Background(), secrets.Reference{"path": "secret/data/x"}); err != nil {
		t.Fatal(err)
	}
	// The kubelet writes a token Vault does not accept; the next login
	// must use it (and fail), proving the file is read again.
	os.WriteFile(tokenFile, []byte("eyJ.rotated-unknown.sig\n"), 0o600)
	clk.Add(time.Hour)
	if _, err := v.Resolve(context.Background(), secrets.Reference{"path": "secret/data/x"}); err == nil || !strings.Contains(err.Error(), "kubernetes login") {
		t.Fatalf("err = %v; want the new token refused at login", err)
	}
	if f.Calls("kubernetes") != 2 {
		t.Errorf("%d logins; want 2", f.Calls("kubernetes"))
	}
}

// TestAWSEngine reads dynamic credentials: each read is a new key pair
// with a lease whose expiry comes from lease_duration; STS leases cannot
// be renewed; a revoked lease's keys stop working.
func TestAWSEngine(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	f := startFake(t, vaultfake.Options{RootToken: rootToken, AWSRole: "bedrock", LeaseTTL: 3 * time.Second, Now: clk.Now})
	v := configure(t, clk, map[string]any{"address": f.URL()}, map[string]string{CredentialToken: rootToken})
	ctx := context.Background()
	a, err := v.Resolve(ctx, secrets.Reference{"path": "aws/creds/bedrock"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.Resolve(ctx, secrets.Reference{"path": "aws/sts/bedrock"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Values["access_key"] == b.Values["access_key"] || a.Values["secret_key"] == "" || a.Values["security_token"] == "" {
		t.Fatalf("two reads: %v and %v; want two distinct complete key pairs", a.Values["access_key"], b.Values["access_key"])
	}
	if !a.Expires.Equal(clk.Now().Add(3*time.Second)) || a.LeaseID == "" || a.Renewable || a.Version != a.LeaseID {
		t.Fatalf("lease %+v; want a 3s non-renewable lease", a)
	}
	if secret, token, ok := f.Keys(a.Values["access_key"]); !ok || secret != a.Values["secret_key"] || token != a.Values["security_token"] {
		t.Fatal("the fake does not know the minted keys")
	}
	if _, err := v.Renew(ctx, a.LeaseID, time.Minute); err == nil || !strings.Contains(err.Error(), "not renewable") {
		t.Errorf("Renew of an STS lease: %v; want refused", err)
	}
	if err := v.Revoke(ctx, a.LeaseID); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Keys(a.Values["access_key"]); ok {
		t.Error("a revoked lease's keys still work")
	}
	clk.Add(4 * time.Second)
	if _, _, ok := f.Keys(b.Values["access_key"]); ok {
		t.Error("an expired lease's keys still work")
	}
	if _, err := v.Resolve(ctx, secrets.Reference{"path": "aws/creds/other"}); err == nil || errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("unknown role: %v; want a failure", err)
	}
}

func TestOutageIsFailureAndHealth(t *testing.T) {
	f := startFake(t, vaultfake.Options{RootToken: rootToken})
	f.PutKV("secret", "x", map[string]any{"k": "v"})
	v := configure(t, nil, map[string]any{"address": f.URL()}, map[string]string{CredentialToken: rootToken})
	ctx := context.Background()
	if err := v.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	f.SetDown(true)
	start := time.Now()
	_, err := v.Resolve(ctx, secrets.Reference{"path": "secret/data/x"})
	if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v; want a 503 failure", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("a failure took %v; the client must not retry by itself", time.Since(start))
	}
	if err := v.Health(ctx); err == nil {
		t.Error("Health while Vault is down: ok")
	}
	f.SetDown(false)
	if _, err := v.Resolve(ctx, secrets.Reference{"path": "secret/data/x"}); err != nil {
		t.Fatalf("after Vault came back: %v", err)
	}
}

func TestConformance(t *testing.T) {
	f := startFake(t, vaultfake.Options{RootToken: rootToken, AWSRole: "bedrock"})
	f.PutKV("secret", "llm/openai", map[string]any{"api_key": "sk-vault-conf-1"})
	cfg, _ := json.Marshal(map[string]any{"address": f.URL()})
	sdktest.RunSecrets(t, sdktest.SecretsSuite{
		Store:   New(),
		Config:  &secrets.Config{Instance: "vault", JSON: cfg, Credentials: map[string]string{CredentialToken: rootToken}},
		Present: secrets.Reference{"path": "secret/data/llm/openai"},
		Want:    map[string]string{"api_key": "sk-vault-conf-1"},
		Missing: secrets.Reference{"path": "secret/data/llm/nope"},
		Update: func(t *testing.T) map[string]string {
			f.PutKV("secret", "llm/openai", map[string]any{"api_key": "sk-vault-conf-2"})
			return map[string]string{"api_key": "sk-vault-conf-2"}
		},
		Secrets: []string{rootToken, "sk-vault-conf-1", "sk-vault-conf-2"},
	})
}
