package config

import (
	"strings"
	"testing"
)

func TestCacheBlocks(t *testing.T) {
	src := trafficBase + `
api_key "batch" {
  key    = "sk-2"
  models = ["*"]
  cache  = true
}
cache {
  backend     = "redis"
  redis       = "redis://127.0.0.1:6379/0"
  ttl         = "2m"
  max_entries = 50
  timeout     = "20ms"
}
route "m" {
  target "a" {}
  cache {
    ttl                = "1h"
    streams_with_tools = true
  }
}
route "n" {
  target "b" {}
}
`
	f, diags := Parse([]byte(src), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c := f.Cache; c == nil || c.Backend != "redis" || c.TTL != "2m" || c.MaxEntries != 50 || c.Timeout != "20ms" {
		t.Errorf("cache block: %+v", f.Cache)
	}
	if rc := f.Routes[0].Cache; rc == nil || rc.TTL != "1h" || !rc.StreamsWithTools {
		t.Errorf("route cache: %+v", rc)
	}
	if f.Routes[1].Cache != nil {
		t.Error("a route without a cache block has one")
	}
	if !f.APIKeys[1].Cache || f.APIKeys[0].Cache {
		t.Errorf("key cache flags: %v %v", f.APIKeys[0].Cache, f.APIKeys[1].Cache)
	}
}

func TestCacheBlockErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"backend", `cache { backend = "disk" }`, `backend must be "memory" or "redis"`},
		{"redis without url", `cache { backend = "redis" }`, `needs redis`},
		{"ttl", `cache { ttl = "soon" }`, `not a duration`},
		{"negative", `cache { max_bytes = -1 }`, `may not be negative`},
		{"route ttl", `route "m" {
  target "a" {}
  cache { ttl = "-1m" }
}`, `route "m": durations may not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]byte(trafficBase+tt.src), "test.hcl", t.TempDir())
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
				t.Errorf("diagnostics %v, want one containing %q", diags, tt.want)
			}
			if diags.HasErrors() && !strings.Contains(diags.Error(), "test.hcl:") {
				t.Errorf("diagnostics do not point into the file: %v", diags)
			}
		})
	}
}
