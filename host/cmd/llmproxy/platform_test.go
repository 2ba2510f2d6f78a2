package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// TestDetectPlatformProbesOnlyWhenAsked checks when the host sends
// metadata probes: never with platform = "off", always with "probe", and
// with "auto" only for a config that uses workload identity and serves
// beyond loopback.
func TestDetectPlatformProbesOnlyWhenAsked(t *testing.T) {
	var probes atomic.Int32
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		w.Header().Set("Metadata-Flavor", "Google")
	}))
	t.Cleanup(md.Close)
	t.Setenv(envPlatformMetadata, md.URL)
	t.Setenv(envPlatformRoot, t.TempDir())
	const wi = `
provider "v" {
  type = "vertex"
  config { auth = "workload_identity" }
}
`
	tests := []struct {
		name, listen, platform, body string
		wantReport, wantProbe        bool
		wantWarning                  string
	}{
		{"off", "0.0.0.0:8080", "off", wi, false, false, ""},
		{"probe on loopback", "127.0.0.1:8080", "probe", "", true, true, ""},
		{"auto, workload identity, loopback", "127.0.0.1:8080", "", wi, true, false, ""},
		{"auto, workload identity, all interfaces", "0.0.0.0:8080", "", wi, true, true, ""},
		{"auto without workload identity", "0.0.0.0:8080", "auto", "", true, false, ""},
		{"no identity for an instance", "0.0.0.0:8080", "", `
provider "b" {
  type = "bedrock"
  config { auth = "workload_identity" }
}
`, true, true, "no aws workload identity here for this instance: instance=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probes.Store(0)
			src := `server {
  listen = "` + tt.listen + `"
  platform = "` + tt.platform + `"
}
` + tt.body
			cfg, diags := config.Parse([]byte(src), "t.hcl", t.TempDir())
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var logs strings.Builder
			r := detectPlatform(context.Background(), cfg, hclog.New(&hclog.LoggerOptions{Output: &logs}))
			if tt.wantWarning != "" && !strings.Contains(logs.String(), tt.wantWarning) {
				t.Errorf("log lacks %q:\n%s", tt.wantWarning, logs.String())
			}
			if tt.wantWarning == "" && strings.Contains(logs.String(), "[WARN]") {
				t.Errorf("unexpected warning:\n%s", logs.String())
			}
			if (r != nil) != tt.wantReport {
				t.Fatalf("report = %v, want one: %v", r, tt.wantReport)
			}
			if got := probes.Load() > 0; got != tt.wantProbe || (r != nil && r.Probed != tt.wantProbe) {
				t.Fatalf("probed = %v (%d requests), want %v", got, probes.Load(), tt.wantProbe)
			}
			if tt.wantProbe && !slices.Equal(r.Metadata, []string{"gcp"}) {
				t.Fatalf("metadata = %v, want [gcp]", r.Metadata)
			}
		})
	}
	if _, diags := config.Parse([]byte(`server { platform = "sometimes" }`), "t.hcl", t.TempDir()); !diags.HasErrors() {
		t.Fatal(`platform = "sometimes" was accepted`)
	}
}
