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

	"github.com/llmproxy/llmproxy/plugins/secrets-kubernetes/kubefake"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
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

// TestWatch follows one secret through updates, a deletion, a
// re-creation and a compaction that expires the watch's resourceVersion
// (410): every change is reported once, with its resourceVersion, and
// the watch outlives the per-call timeout.
func TestWatch(t *testing.T) {
	f, k, tokenPath := setup(t, saToken)
	cfg, _ := json.Marshal(map[string]any{"host": f.URL(), "namespace": "llm", "token_path": tokenPath, "ca_path": writeCA(t, f), "timeout": "1s"})
	if err := k.Configure(context.Background(), &secrets.Config{JSON: cfg}); err != nil {
		t.Fatal(err)
	}
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-1"})
	f.Put("other", map[string]string{"x": "y"})
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- k.Watch(ctx, secrets.Reference{"secret": "openai-api-key"}, func(v string) { events <- v })
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case v := <-events:
			return v
		case <-time.After(5 * time.Second):
			t.Fatalf("no event for %s", what)
			return ""
		}
	}
	waitWatching := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); f.Watches() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the plugin opened no watch")
			}
		}
	}
	if v := next("the start"); v != "1" {
		t.Errorf("the watch started from version %q; want 1", v)
	}
	waitWatching()
	// Longer than the 1s per-call timeout: the watch must still be up.
	time.Sleep(1500 * time.Millisecond)
	f.Put("other", map[string]string{"x": "z"})
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-2"})
	v2 := next("an update")
	s, err := k.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key"})
	if err != nil || s.Version != v2 {
		t.Fatalf("event version %s, Resolve %v %v; want the same version", v2, s, err)
	}
	f.Delete("openai-api-key")
	next("a deletion")
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-3"})
	next("a re-creation")

	f.Compact("openai-api-key", map[string]string{"api_key": "sk-kube-4"})
	v4 := next("an update hidden by a compaction")
	s, err = k.Resolve(context.Background(), secrets.Reference{"secret": "openai-api-key"})
	if err != nil || s.Version != v4 || s.Values["api_key"] != "sk-kube-4" {
		t.Fatalf("after the compaction: event %s, Resolve %v %v", v4, s, err)
	}
	waitWatching()
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-5"})
	next("an update after the compaction")
	select {
	case v := <-events:
		t.Errorf("an extra event %s", v)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}

	if err := k.Watch(context.Background(), secrets.Reference{"secret": "x", "namespace": "kube-system"}, func(string) {}); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("a watch in another namespace: %v", err)
	}
	f.SetToken("eyJ.rotated-away.sig")
	if err := k.Watch(context.Background(), secrets.Reference{"secret": "openai-api-key"}, func(string) {}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("a watch with a refused token: %v; want Unauthorized", err)
	}
}

func writeCA(t *testing.T, f *kubefake.Server) string {
	p := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(p, f.CAPEM(), 0o600)
	return p
}

func TestConformance(t *testing.T) {
	f, k, tokenPath := setup(t, saToken)
	f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-conf-1", "org": "acme"})
	cfg, _ := json.Marshal(map[string]any{"host": f.URL(), "namespace": "llm", "token_path": tokenPath, "ca_path": writeCA(t, f)})
	sdktest.RunSecrets(t, sdktest.SecretsSuite{
		Store:   k,
		Config:  &secrets.Config{JSON: cfg},
		Present: secrets.Reference{"secret": "openai-api-key"},
		Want:    map[string]string{"api_key": "sk-kube-conf-1", "org": "acme"},
		Missing: secrets.Reference{"secret": "nope"},
		Update: func(t *testing.T) map[string]string {
			f.Put("openai-api-key", map[string]string{"api_key": "sk-kube-conf-2"})
			return map[string]string{"api_key": "sk-kube-conf-2"}
		},
		Secrets: []string{saToken, "sk-kube-conf-1", "sk-kube-conf-2"},
	})
}
