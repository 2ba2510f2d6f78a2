package price

import "testing"

// FuzzParse feeds arbitrary price files to Parse: errors are diagnostics,
// never panics, and every accepted entry yields finite, non-negative
// costs.
func FuzzParse(f *testing.F) {
	f.Add([]byte(defaults))
	f.Add([]byte("price \"a*\" {\n  input = 1\n  output = 2\n  unit = \"1K\"\n}\n"))
	f.Add([]byte("price \"a\" {\n  input = 1e308\n  output = -0\n  reasoning = 1e-300\n}\n"))
	f.Add([]byte("price \"\" { input = 0 }"))
	f.Fuzz(func(t *testing.T, src []byte) {
		entries, diags := Parse(src, "fuzz.hcl")
		if diags.HasErrors() {
			return
		}
		tab := New(entries, nil)
		for _, e := range entries {
			usd, ok := tab.Cost(e.Model, Usage{Prompt: 1000, Completion: 1000, Cached: 10, CacheWrite: 10, Reasoning: 10})
			if !ok || usd < 0 || usd != usd {
				t.Fatalf("cost of %q = %v, %v", e.Model, usd, ok)
			}
		}
	})
}
