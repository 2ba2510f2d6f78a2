package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreBlock(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, src string
		driver    string
		source    string
		err       string
	}{
		{"none", ``, "", "", ""},
		{"sqlite defaults", `store {}`, "sqlite", filepath.Join(dir, "llmproxy.db"), ""},
		{"sqlite relative", `store {
  driver = "sqlite"
  path   = "data/keys.db"
}`, "sqlite", filepath.Join(dir, "data", "keys.db"), ""},
		{"sqlite absolute", `store { path = "/var/lib/llmproxy.db" }`, "sqlite", "/var/lib/llmproxy.db", ""},
		{"postgres", `store {
  driver = "postgres"
  url    = "postgres://u@localhost/db"
}`, "postgres", "postgres://u@localhost/db", ""},
		{"postgres without url", `store { driver = "postgres" }`, "", "", "test.hcl:1:1: Invalid store.url"},
		{"postgres with path", `store {
  driver = "postgres"
  url    = "postgres://x"
  path   = "a.db"
}`, "", "", "Invalid store.path"},
		{"sqlite with url", `store { url = "postgres://x" }`, "", "", "Invalid store.url"},
		{"unknown driver", `store { driver = "mysql" }`, "", "", "test.hcl:1:18: Invalid store.driver"},
		{"negative buffer", `store { usage_buffer = -1 }`, "", "", "Invalid store.usage_buffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse([]byte(tt.src), "test.hcl", dir)
			if tt.err != "" {
				var got []string
				for _, d := range diags {
					got = append(got, Position(d)+": "+d.Summary)
				}
				if !diags.HasErrors() || !strings.Contains(strings.Join(got, "\n"), tt.err) {
					t.Fatalf("diagnostics %q, want %q", got, tt.err)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if tt.driver == "" {
				if f.Store != nil {
					t.Fatalf("store %+v without a block", f.Store)
				}
				return
			}
			if f.Store.Driver != tt.driver || f.Store.Source() != tt.source || f.Store.UsageBuffer != DefaultUsageBuffer {
				t.Fatalf("store %+v, want %s %s", f.Store, tt.driver, tt.source)
			}
		})
	}
}
