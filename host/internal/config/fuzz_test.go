package config

import (
	"slices"
	"testing"
)

// FuzzParse runs the HCL loader on arbitrary sources. It must never
// panic, and a file it accepts must hold only what validation promises:
// known storage operations, valid instance names, routes that target
// provider instances.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse(src, "fuzz.hcl", dir)
		if diags.HasErrors() {
			return
		}
		providers := map[string]bool{}
		for _, in := range cfg.Providers {
			if !validName(in.Name) {
				t.Fatalf("provider name %q accepted", in.Name)
			}
			providers[in.Name] = true
		}
		for _, in := range cfg.Storage {
			if !validName(in.Name) || in.MaxObjectBytes < 0 {
				t.Fatalf("storage %q accepted", in.Name)
			}
		}
		for _, k := range cfg.APIKeys {
			for _, op := range k.StorageOps {
				if op != "*" && !slices.Contains(StorageOps, op) {
					t.Fatalf("storage op %q accepted", op)
				}
			}
			if (k.Key == "") == (k.KeySHA256 == "") {
				t.Fatalf("api_key %q accepted with key %q and key_sha256 %q", k.Name, k.Key, k.KeySHA256)
			}
		}
		for _, r := range cfg.Routes {
			for _, tg := range r.Targets {
				if !providers[tg.Instance] {
					t.Fatalf("route %q to %q accepted", r.Model, tg.Instance)
				}
			}
		}
	})
}
