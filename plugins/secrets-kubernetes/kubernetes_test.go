package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/secrets-kubernetes/kubefake"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

const saToken = "eyJhbGciOiJSUzI1NiJ9.llmproxy-sa.sig"

// setup starts the fake API server and writes the service-account files
// a pod would have; it returns the configured store and the token file.
func setup(t *testing.T, token string) (*kubefake.Server, *Kubernetes, string) {
	t.Helper()
	f := kubefake.New(saToken, "llm")
	t.Cleanup(f.Close)
	dir := t.TempDir()
	tokenPath, caPath := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	os.WriteFile(tokenPath, []byte(token), 0o600)
	os.WriteFile(caPath, f.CAPEM(), 0o600)
	cfg, _ := json.Marshal(map[string]any{"host": f.URL(), "namespace": "llm", "token_path": tokenPath, "ca_path": caPath})
	k := &Kubernetes{}
	if err := k.Configure(context.Background(), &secrets.Config{JSON: cfg}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return f, k, tokenPath
}

func TestResolve(t *testing.T) {
	f, k, _ := setup(t, saToken)
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-1", "org": "acme"})
	tests := []struct {
		name        string
		ref         secrets.Reference
		want        map[string]string
		unavailable bool
		failed      string
	}{
		{name: "one key", ref: secrets.Reference{"secret": "openai-api-key", "key": "api_key"}, want: map[string]string{"api_key": "sk-kube-1"}},
		{name: "every key", ref: secrets.Reference{"secret": "openai-api-key"}, want: map[string]string{"api_key": "sk-kube-1", "org": "acme"}},
		{name: "same namespace named", ref: secrets.Reference{"secret": "openai-api-key", "namespace": "llm", "key": "org"}, want: map[string]string{"org": "acme"}},
		{name: "missing secret", ref: secrets.Reference{"secret": "nope"}, unavailable: true},
		{name: "missing key", ref: secrets.Reference{"secret": "openai-api-key", "key": "nope"}, unavailable: true},
		{name: "other namespace", ref: secrets.Reference{"secret": "openai-api-key", "namespace": "kube-system"}, failed: "outside this store's namespace"},
		{name: "no name", ref: secrets.Reference{"key": "x"}, failed: "needs secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := k.Resolve(context.Background(), tt.ref)
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
				if len(s.Values) != len(tt.want) || s.Version == "" || !s.Expires.IsZero() || s.RefreshAfter.IsZero() {
					t.Fatalf("got %+v; want %v with a version", s, tt.want)
				}
				for key, v := range tt.want {
					if s.Values[key] != v {
						t.Errorf("%s = %q, want %q", key, s.Values[key], v)
					}
				}
			}
		})
	}

	first, _ := k.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key", "key": "api_key"})
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-2"})
	second, err := k.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key", "key": "api_key"})
	if err != nil || second.Values["api_key"] != "sk-kube-2" || second.Version == first.Version {
		t.Fatalf("after an update: %+v, %v; want the new value and a new resourceVersion (was %s)", second, err, first.Version)
	}
	if err := k.Health(context.Background()); err != nil {
		t.Errorf("Health: %v", err)
	}
}

// TestWrongTokenFails checks that the fake's bearer check is met by the
// token file's content, and that a token the API server refuses is a
// failure, not "unavailable", without the token in the error.
func TestWrongTokenFails(t *testing.T) {
	f, k, _ := setup(t, "eyJ.some-other-sa.sig")
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-1"})
	_, err := k.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key"})
	if err == nil || errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("err = %v; want Unauthorized as a failure", err)
	}
	if strings.Contains(err.Error(), "some-other-sa") {
		t.Errorf("the error holds the token: %v", err)
	}
	if err := k.Health(context.Background()); err == nil {
		t.Error("Health with a refused token: ok")
	}
	if f.Requests() < 2 {
		t.Errorf("%d requests reached the fake", f.Requests())
	}
}

func TestConfigureRefuses(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	tests := []struct {
		cfg  map[string]any
		path string
	}{
		{map[string]any{"namespace": "llm", "token_path": "/dev/null"}, "host"},
		{map[string]any{"host": "https://127.0.0.1:1", "namespace": "llm", "token_path": "/nonexistent/token"}, "token_path"},
		{map[string]any{"host": "https://127.0.0.1:1", "namespace": "llm", "token_path": "/dev/null", "timeout": "later"}, "timeout"},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(tt.cfg)
		err := (&Kubernetes{}).Configure(context.Background(), &secrets.Config{JSON: b})
		var diags schema.Diagnostics
		if !errors.As(err, &diags) || !diags.HasErrors() || strings.Join(diags[0].Path, ".") != tt.path {
			t.Errorf("%v: %v; want a diagnostic at %s", tt.cfg, err, tt.path)
		}
	}
}
