package price

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestDefaultsParse(t *testing.T) {
	if n := len(Default()); n < 20 {
		t.Fatalf("embedded prices.hcl has %d entries", n)
	}
}

func TestCost(t *testing.T) {
	tab := New(nil, nil)
	tests := []struct {
		model string
		u     Usage
		want  float64
	}{
		// 1000 prompt tokens at $0.15/M plus 500 completion at $0.60/M.
		{"gpt-4o-mini", Usage{Prompt: 1000, Completion: 500}, 1000*0.15e-6 + 500*0.60e-6},
		// 400 of 1000 prompt tokens read from the cache at half price.
		{"gpt-4o-mini-2024-07-18", Usage{Prompt: 1000, Cached: 400}, 600*0.15e-6 + 400*0.075e-6},
		// Anthropic: reads, writes and plain input priced apart.
		{"claude-sonnet-4-5", Usage{Prompt: 1000, Cached: 300, CacheWrite: 200, Completion: 10},
			500*3e-6 + 300*0.30e-6 + 200*3.75e-6 + 10*15e-6},
		// Bedrock's regional profile matches the leading "*" pattern.
		{"us.anthropic.claude-sonnet-4-20250514-v1:0", Usage{Prompt: 1_000_000}, 3},
		// Reasoning defaults to the output price.
		{"o4-mini", Usage{Prompt: 0, Completion: 100, Reasoning: 80}, 100 * 4.40e-6},
		// The longest pattern wins.
		{"gpt-4.1-nano", Usage{Prompt: 1_000_000}, 0.10},
		{"gpt-4.1-2025-04-14", Usage{Prompt: 1_000_000}, 2.00},
		// Inconsistent counts are clamped, never negative.
		{"gpt-4o-mini", Usage{Prompt: 10, Cached: 50, Completion: 5, Reasoning: 9}, 50*0.075e-6 + 5*0.60e-6},
	}
	for _, tc := range tests {
		got, ok := tab.Cost(tc.model, tc.u)
		if !ok || !near(got, tc.want) {
			t.Errorf("Cost(%q, %+v) = %v, %v; want %v", tc.model, tc.u, got, ok, tc.want)
		}
	}
	if _, ok := tab.Cost("no-such-model", Usage{Prompt: 1}); ok {
		t.Error("an unknown model has a price")
	}
	var none *Table
	if _, ok := none.Cost("gpt-4o", Usage{}); ok {
		t.Error("a nil table knows a price")
	}
}

func TestOverrides(t *testing.T) {
	file, diags := Parse([]byte(`
price "gpt-4o-mini" {
  input  = 1
  output = 2
}
price "house-*" {
  input     = 10
  output    = 20
  reasoning = 40
  unit      = "1K"
}
`), "prices.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	inline, diags := Parse([]byte(`price "house-large" {
  input = 1
  unit  = "1"
}`), "inline.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tab := New(inline, file)
	tests := []struct {
		model string
		u     Usage
		want  float64
	}{
		{"gpt-4o-mini", Usage{Prompt: 1_000_000, Completion: 1_000_000}, 3},                  // file beats defaults
		{"gpt-4o", Usage{Prompt: 1_000_000}, 2.5},                                            // defaults still there
		{"house-small", Usage{Prompt: 1000, Completion: 1000, Reasoning: 500}, 10 + 10 + 20}, // per 1K; reasoning
		{"house-large", Usage{Prompt: 3, Completion: 100}, 3},                                // inline beats file; output 0
	}
	for _, tc := range tests {
		got, ok := tab.Cost(tc.model, tc.u)
		if !ok || !near(got, tc.want) {
			t.Errorf("Cost(%q) = %v, %v; want %v", tc.model, got, ok, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "price \"a\" {\n  input = \n}\n", "prices.hcl:2,"},
		{"unknown attribute", "price \"a\" {\n  input = 1\n  outptu = 2\n}\n", "prices.hcl:3,"},
		{"missing input", "\n\nprice \"a\" {\n  output = 1\n}\n", "prices.hcl:3,"},
		{"bad unit", "price \"a\" {\n  input = 1\n}\n\nprice \"b\" {\n  input = 1\n  unit = \"1G\"\n}\n", "prices.hcl:5,1-10: Invalid price; price \"b\": unit \"1G\""},
		{"negative", "price \"a\" {\n  input = -1\n}\n", "prices.hcl:1,1-10: Invalid price; price \"a\": input must be a non-negative"},
		{"duplicate", "price \"a\" {\n  input = 1\n}\nprice \"a\" {\n  input = 2\n}\n", "prices.hcl:4,1-10: Duplicate price; price \"a\" is already defined at prices.hcl:1,1-10"},
		{"empty label", "price \"\" {\n  input = 1\n}\n", "prices.hcl:1,1-9: Invalid price"},
		{"other block", "prise \"a\" {\n  input = 1\n}\n", "prices.hcl:1,"},
		{"string price", "price \"a\" {\n  input = \"cheap\"\n}\n", "prices.hcl:2,"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse([]byte(tc.src), "prices.hcl")
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			if got := diags.Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, diags := Load("testdata/absent.hcl")
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "absent.hcl") {
		t.Fatalf("diags = %v", diags)
	}
}
