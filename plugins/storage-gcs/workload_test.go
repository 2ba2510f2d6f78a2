package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// TestWorkloadIdentity lists buckets (the health check) with auth =
// "workload_identity": the storage client's own credential detection gets
// a token from a GKE metadata server, and the JSON API endpoint accepts
// only tokens that server issued. (fake-gcs-server, the emulator of the
// other tests, checks no credentials.)
func TestWorkloadIdentity(t *testing.T) {
	for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("HOME", t.TempDir())
	id := identityfake.New(identityfake.Options{GoogleProject: "rag-project"})
	t.Cleanup(id.Close)
	t.Setenv("GCE_METADATA_HOST", id.Host())
	var accepted, refused atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !id.Issued(tok) {
			refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":401,"message":"Invalid Credentials"}}`))
			return
		}
		if r.URL.Path != "/storage/v1/b" || r.URL.Query().Get("project") != "rag-project" {
			http.NotFound(w, r)
			return
		}
		accepted.Add(1)
		_, _ = w.Write([]byte(`{"kind":"storage#buckets","items":[{"kind":"storage#bucket","name":"rag-docs"}]}`))
	}))
	t.Cleanup(api.Close)

	configure := func(auth string) *Store {
		raw, _ := json.Marshal(map[string]any{"endpoint": api.URL + "/storage/v1/", "project": "rag-project", "auth": auth})
		s := &Store{}
		if err := s.Configure(context.Background(), &storage.Config{Instance: "wi", JSON: raw}); err != nil {
			t.Fatalf("Configure: %v", err)
		}
		return s
	}
	if err := configure(authWorkloadIdentity).Health(context.Background()); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if accepted.Load() != 1 || id.Calls("gce") != 1 {
		t.Fatalf("API accepted %d, metadata server issued %d tokens; want 1 and 1", accepted.Load(), id.Calls("gce"))
	}
	// Without the metadata server there is no identity and no token.
	// (The metadata client retries until the deadline, as the host's
	// health timeout bounds it.)
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := configure(authWorkloadIdentity).Health(ctx); err == nil {
		t.Fatal("Health succeeded without a workload identity")
	}
	if accepted.Load() != 1 {
		t.Fatal("the API accepted a request without an issued token")
	}
}

func TestWorkloadIdentityTakesNoCredential(t *testing.T) {
	raw := []byte(`{"auth":"workload_identity"}`)
	err := (&Store{}).Configure(context.Background(), &storage.Config{JSON: raw, Credentials: map[string]string{credServiceAccount: "{}"}})
	if err == nil || !strings.Contains(err.Error(), "takes no credential") {
		t.Fatalf("Configure = %v", err)
	}
}
