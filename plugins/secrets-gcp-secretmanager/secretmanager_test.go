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

	"github.com/llmproxy/llmproxy/plugins/secrets-gcp-secretmanager/smfake"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

const (
	project   = "llmproxy-test"
	apiKeyOne = "sk-gcp-sm-one-71aa"
	apiKeyTwo = "sk-gcp-sm-two-03bc"
)

// newFake starts the fake and points Application Default Credentials at
// its metadata server only: no key file, no gcloud login.
func newFake(t *testing.T) (*smfake.Server, string) {
	t.Helper()
	f, err := smfake.New(project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, f.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GCE_METADATA_HOST", f.MetadataHost())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("GOOGLE_CLOUD_PROJECT", "")
	t.Setenv("HOME", dir)
	t.Setenv("CLOUDSDK_CONFIG", filepath.Join(dir, "gcloud"))
	return f, ca
}

func configure(t *testing.T, cfg map[string]any, creds map[string]string) (*SecretManager, error) {
	t.Helper()
	b, _ := json.Marshal(cfg)
	m := &SecretManager{}
	err := m.Configure(context.Background(), &secrets.Config{JSON: b, Credentials: creds})
	if err == nil {
		t.Cleanup(func() { m.cur.Load().client.Close() })
	}
	return m, err
}

func baseConfig(f *smfake.Server, ca string) map[string]any {
	return map[string]any{"project": project, "endpoint": f.Endpoint(), "ca_file": ca}
}

func TestResolve(t *testing.T) {
	f, ca := newFake(t)
	f.Add("openai-api-key", apiKeyOne)
	f.Add("openai-api-key", apiKeyTwo)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	f.Add("short", "s-1")
	f.SetExpire("short", exp)
	f.Add("gone", "g-1")
	f.SetExpire("gone", time.Now().Add(-time.Minute))
	m, err := configure(t, baseConfig(f, ca), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		ref         secrets.Reference
		want        string
		version     string
		expires     time.Time
		unavailable bool
		failed      string
	}{
		{name: "latest", ref: secrets.Reference{"secret": "openai-api-key"}, want: apiKeyTwo, version: "2"},
		{name: "latest named", ref: secrets.Reference{"secret": "openai-api-key", "version": "latest"}, want: apiKeyTwo, version: "2"},
		{name: "version 1", ref: secrets.Reference{"secret": "openai-api-key", "version": "1"}, want: apiKeyOne, version: "1"},
		{name: "full name", ref: secrets.Reference{"secret": "projects/" + project + "/secrets/openai-api-key"}, want: apiKeyTwo, version: "2"},
		{name: "project number in a full name", ref: secrets.Reference{"secret": "projects/123456789012/secrets/openai-api-key"}, want: apiKeyTwo, version: "2"},
		{name: "expire_time", ref: secrets.Reference{"secret": "short"}, want: "s-1", version: "1", expires: exp},
		{name: "missing secret", ref: secrets.Reference{"secret": "nope"}, unavailable: true},
		{name: "missing version", ref: secrets.Reference{"secret": "openai-api-key", "version": "9"}, unavailable: true},
		{name: "other project", ref: secrets.Reference{"secret": "projects/someone-else/secrets/openai-api-key"}, failed: "PermissionDenied"},
		{name: "expired", ref: secrets.Reference{"secret": "gone"}, failed: "expired"},
		{name: "no secret", ref: secrets.Reference{}, failed: "needs secret"},
		{name: "path in id", ref: secrets.Reference{"secret": "a/../b"}, failed: "needs secret"},
		{name: "bad version", ref: secrets.Reference{"secret": "openai-api-key", "version": "01"}, failed: "version must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := m.Resolve(context.Background(), tt.ref)
			switch {
			case tt.unavailable:
				if !errors.Is(err, secrets.ErrUnavailable) {
					t.Fatalf("err = %v; want unavailable", err)
				}
			case tt.failed != "":
				if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), tt.failed) {
					t.Fatalf("err = %v; want a failure saying %q", err, tt.failed)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Values) != 1 || s.Values[ValueKey] != tt.want || s.Version != tt.version || !s.Expires.Equal(tt.expires) {
					t.Fatalf("got version %q expiring %v, right value %v; want version %s expiring %v", s.Version, s.Expires, s.Values[ValueKey] == tt.want, tt.version, tt.expires)
				}
				if tt.expires.IsZero() && s.RefreshAfter.IsZero() {
					t.Error("no RefreshAfter: a new version would never be seen")
				}
			}
			if err != nil {
				noSecrets(t, err.Error())
			}
		})
	}
	st := f.Stats()
	if st.MetadataTokens != 1 || st.Refused != 0 {
		t.Errorf("stats %+v; want one metadata token, reused, and no refused call", st)
	}
	if err := m.Health(context.Background()); err != nil {
		t.Errorf("Health: %v", err)
	}
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, x := range []string{apiKeyOne, apiKeyTwo, "PRIVATE KEY"} {
		if strings.Contains(s, x) {
			t.Errorf("%q holds a test secret", s)
		}
	}
}

// TestAuth reads a secret with each kind of credential; a key the fake
// does not know is refused as a failure.
func TestAuth(t *testing.T) {
	f, ca := newFake(t)
	f.Add("openai-api-key", apiKeyOne)
	key, err := f.ServiceAccountJSON("llmproxy")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.json")
	os.WriteFile(keyFile, key, 0o600)
	subjectFile := filepath.Join(t.TempDir(), "subject-token")
	os.WriteFile(subjectFile, []byte("eyJhbGciOiJSUzI1NiJ9.kube-sa-subject.sig"), 0o600)
	federation, err := f.ExternalAccountJSON(subjectFile, "eyJhbGciOiJSUzI1NiJ9.kube-sa-subject.sig")
	if err != nil {
		t.Fatal(err)
	}
	federationFile := filepath.Join(t.TempDir(), "external-account.json")
	os.WriteFile(federationFile, federation, 0o600)
	foreignFile := filepath.Join(t.TempDir(), "foreign-account.json")
	foreign, _ := json.Marshal(map[string]any{"type": "external_account", "audience": "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/llmproxy/providers/kube",
		"subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": "http://" + f.MetadataHost() + "/v1/token",
		"credential_source": map[string]any{"file": federationFile}})
	os.WriteFile(foreignFile, foreign, 0o600)
	stranger, _ := smfake.New(project)
	strangerKey, _ := stranger.ServiceAccountJSON("llmproxy")
	stranger.Close()
	tests := []struct {
		name  string
		auth  string
		creds map[string]string
		adc   string // GOOGLE_APPLICATION_CREDENTIALS
		ok    bool
		stat  func(smfake.Stats) int
	}{
		{name: "metadata server", ok: true, stat: func(s smfake.Stats) int { return s.MetadataTokens }},
		{name: "key file through ADC", adc: keyFile, ok: true, stat: func(s smfake.Stats) int { return s.JWTs }},
		{name: "service account credential", auth: "service_account", creds: map[string]string{CredentialServiceAccount: string(key)}, ok: true, stat: func(s smfake.Stats) int { return s.JWTs }},
		{name: "workload identity federation through ADC", adc: federationFile, ok: true, stat: func(s smfake.Stats) int { return s.Exchanges }},
		{name: "federation with a foreign subject token", adc: foreignFile, stat: func(s smfake.Stats) int { return s.ExchangesRefused }},
		{name: "unknown service account", auth: "service_account", creds: map[string]string{CredentialServiceAccount: string(strangerKey)}, stat: func(s smfake.Stats) int { return s.Refused }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", tt.adc)
			cfg := baseConfig(f, ca)
			if tt.auth != "" {
				cfg["auth"] = tt.auth
			}
			before := tt.stat(f.Stats())
			m, err := configure(t, cfg, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			s, err := m.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key"})
			if tt.stat(f.Stats()) <= before {
				t.Errorf("the fake did not see this credential")
			}
			if !tt.ok {
				if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "Unauthenticated") {
					t.Fatalf("err = %v; want Unauthenticated as a failure", err)
				}
				noSecrets(t, err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Values[ValueKey] != apiKeyOne {
				t.Error("wrong value")
			}
		})
	}
}

// TestRotationAndOutage checks that a new version is seen at the next
// read and that an outage or a corrupt payload is a failure, not
// "unavailable".
func TestRotationAndOutage(t *testing.T) {
	f, ca := newFake(t)
	f.Add("openai-api-key", apiKeyOne)
	cfg := baseConfig(f, ca)
	cfg["poll_interval"] = "2s"
	cfg["timeout"] = "2s"
	m, err := configure(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := secrets.Reference{"secret": "openai-api-key"}
	first, err := m.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(first.RefreshAfter); d <= 0 || d > 2*time.Second {
		t.Errorf("RefreshAfter in %v; want the 2s poll interval", d)
	}
	f.Add("openai-api-key", apiKeyTwo)
	second, err := m.Resolve(context.Background(), ref)
	if err != nil || second.Values[ValueKey] != apiKeyTwo || second.Version != "2" {
		t.Fatalf("after a new version: %v; want version 2 and its value", err)
	}
	f.SetDown(true)
	_, err = m.Resolve(context.Background(), ref)
	if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("during an outage: %v; want Unavailable as a failure", err)
	}
	if m.Health(context.Background()) == nil {
		t.Error("Health during an outage: ok")
	}
	f.SetDown(false)
	f.SetCorrupt(true)
	if _, err := m.Resolve(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt payload: %v; want a checksum failure", err)
	}
	f.SetCorrupt(false)
	if _, err := m.Resolve(context.Background(), ref); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

func TestConfigureRefuses(t *testing.T) {
	f, ca := newFake(t)
	tests := []struct {
		change map[string]any
		path   string
	}{
		{map[string]any{"project": "Not A Project"}, "project"},
		{map[string]any{"auth": "service_account"}, "auth"},
		{map[string]any{"auth": "api_key"}, "auth"},
		{map[string]any{"endpoint": "https://secretmanager.googleapis.com/v1"}, "endpoint"},
		{map[string]any{"ca_file": "/nonexistent/ca.pem"}, "ca_file"},
		{map[string]any{"timeout": "soon"}, "timeout"},
		{map[string]any{"poll_interval": "0s"}, "poll_interval"},
	}
	for _, tt := range tests {
		cfg := baseConfig(f, ca)
		for k, v := range tt.change {
			cfg[k] = v
		}
		_, err := configure(t, cfg, nil)
		var diags schema.Diagnostics
		if !errors.As(err, &diags) || !diags.HasErrors() || strings.Join(diags[0].Path, ".") != tt.path {
			t.Errorf("%v: %v; want a diagnostic at %s", tt.change, err, tt.path)
		}
	}
}

func TestVersionName(t *testing.T) {
	tests := []struct {
		ref     secrets.Reference
		project string
		want    string
	}{
		{secrets.Reference{"secret": "k"}, "p-123456", "projects/p-123456/secrets/k/versions/latest"},
		{secrets.Reference{"secret": "k", "version": "7"}, "p-123456", "projects/p-123456/secrets/k/versions/7"},
		{secrets.Reference{"secret": "projects/other-1/secrets/k"}, "p-123456", "projects/other-1/secrets/k/versions/latest"},
		{secrets.Reference{"secret": "projects/42/secrets/Key_1"}, "", "projects/42/secrets/Key_1/versions/latest"},
		{secrets.Reference{"secret": "k"}, "", ""},
		{secrets.Reference{"secret": "projects/42/k"}, "", ""},
		{secrets.Reference{"secret": "k", "version": "-1"}, "p-123456", ""},
		{secrets.Reference{"secret": "k", "version": "1.0"}, "p-123456", ""},
		{secrets.Reference{"secret": "projects/42/secrets/k/versions/3"}, "", ""},
	}
	for _, tt := range tests {
		got, err := VersionName(tt.ref, tt.project)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("VersionName(%v, %q) = %q, %v; want %q", tt.ref, tt.project, got, err, tt.want)
		}
	}
}

// FuzzVersionName feeds references as a config could hold them: a name
// is either refused or a well-formed version name.
func FuzzVersionName(f *testing.F) {
	f.Add("k", "7", "p-123456")
	f.Add("projects/42/secrets/k", "latest", "")
	f.Add("projects//secrets/", "", "x")
	f.Fuzz(func(t *testing.T, secret, version, project string) {
		name, err := VersionName(secrets.Reference{"secret": secret, "version": version}, project)
		if err != nil {
			return
		}
		p := strings.Split(name, "/")
		if len(p) != 6 || p[0] != "projects" || p[2] != "secrets" || p[4] != "versions" || p[1] == "" || p[3] == "" || p[5] == "" {
			t.Fatalf("VersionName = %q", name)
		}
	})
}

func TestConformance(t *testing.T) {
	f, ca := newFake(t)
	f.Add("openai-api-key", apiKeyOne)
	f.SetExpire("openai-api-key", time.Now().Add(time.Hour))
	cfg, _ := json.Marshal(baseConfig(f, ca))
	store := &SecretManager{}
	t.Cleanup(func() {
		if s := store.cur.Load(); s != nil {
			s.client.Close()
		}
	})
	sdktest.RunSecrets(t, sdktest.SecretsSuite{
		Store:   store,
		Config:  &secrets.Config{JSON: cfg},
		Present: secrets.Reference{"secret": "openai-api-key"},
		Want:    map[string]string{ValueKey: apiKeyOne},
		Missing: secrets.Reference{"secret": "nope"},
		Update: func(t *testing.T) map[string]string {
			f.Add("openai-api-key", apiKeyTwo)
			return map[string]string{ValueKey: apiKeyTwo}
		},
		Secrets: []string{apiKeyOne, apiKeyTwo},
	})
}
