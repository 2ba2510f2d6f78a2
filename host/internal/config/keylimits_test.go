package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

func TestAPIKeyLimits(t *testing.T) {
	tests := []struct {
		name, block string
		want        *ratelimit.KeyLimits
		err         string
	}{
		{"none", ``, nil, ""},
		{"all", `limits {
    rpm        = 60
    rps        = 2
    tpm        = 10000
    concurrent = 3
  }`, &ratelimit.KeyLimits{RPM: 60, RPS: 2, TPM: 10000, Concurrent: 3}, ""},
		{"negative", `limits {
    rpm = -1
  }`, nil, "limits.rpm must be a whole number"},
		{"too large", `limits {
    tpm = 2000000000
  }`, nil, "limits.tpm must be a whole number"},
		{"unknown", `limits {
    rph = 1
  }`, nil, "rph"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := "api_key \"alice\" {\n  key    = \"sk-alice-0123456789\"\n  models = [\"*\"]\n  " + tc.block + "\n}\n"
			f, diags := Parse([]byte(src), filepath.Join(dir, "llmproxy.hcl"), dir)
			if tc.err != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.err) {
					t.Fatalf("diagnostics %v, want one saying %q", diags, tc.err)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got := f.APIKeys[0].Limits
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("limits = %+v, want %+v", got, tc.want)
			}
		})
	}
}
