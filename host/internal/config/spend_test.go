package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/host/internal/price"
)

func TestSpendBlocks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prices.hcl"), []byte("price \"house-*\" {\n  input  = 1\n  output = 2\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `
api_key "alice" {
  key    = "sk-alice-0123456789"
  models = ["*"]
  group  = "research"
  budget {
    usd    = 0.01
    period = "day"
  }
}
key_group "research" {
  budget {
    usd = 5
  }
}
prices {
  file = "prices.hcl"
  price "gpt-4o-mini" {
    input  = 100
    output = 200
  }
}
price "house-large" {
  input = 7
}
budgets {
  unknown_price = "allow"
  max_tokens    = 512
}
`
	f, diags := Parse([]byte(src), filepath.Join(dir, "llmproxy.hcl"), dir)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	k := f.APIKeys[0]
	if k.Group != "research" || k.Budget == nil || k.Budget.USD != 0.01 || k.Budget.Period != "day" {
		t.Fatalf("key = %+v", k)
	}
	if len(f.KeyGroups) != 1 || f.KeyGroups[0].Budget.USD != 5 {
		t.Fatalf("groups = %+v", f.KeyGroups)
	}
	if f.Budgets.UnknownPrice != "allow" || f.Budgets.MaxTokens != 512 {
		t.Fatalf("budgets = %+v", f.Budgets)
	}
	tab := f.PriceTable()
	for model, want := range map[string]float64{"gpt-4o-mini": 300, "house-x": 3, "gpt-4o": 12.5, "house-large": 7} {
		got, ok := tab.Cost(model, price.Usage{Prompt: 1_000_000, Completion: 1_000_000})
		if !ok || got != want {
			t.Errorf("cost of %s = %v, %v; want %v", model, got, ok, want)
		}
	}
}

func TestSpendErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.hcl"), []byte("price \"a\" {\n  input = 1\n}\n\nprice \"b\" {\n  input = 1\n  unit = \"1G\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, src, want string }{
		{"key budget period", "api_key \"a\" {\n  key = \"sk-a-0123456789\"\n  budget {\n    usd = 1\n    period = \"year\"\n  }\n}\n", `c.hcl:1,1-12: Invalid budget; api_key "a": budget period "year"`},
		{"key budget usd", "api_key \"a\" {\n  key = \"sk-a-0123456789\"\n  budget {\n    usd = 0\n  }\n}\n", "budget usd must be a positive"},
		{"group without budget", "\nkey_group \"g\" {\n}\n", `c.hcl:2,1-14: Invalid key_group; key_group "g" needs a budget block`},
		{"duplicate group", "key_group \"g\" {\n  budget {\n    usd = 1\n  }\n}\nkey_group \"g\" {\n  budget {\n    usd = 1\n  }\n}\n", `c.hcl:6,1-14: Duplicate key_group`},
		{"inline price", "prices {\n  price \"a\" {\n    input = -1\n  }\n}\n", `c.hcl:2,3-12: Invalid price; price "a": input must be a non-negative`},
		{"price file", "prices {\n  file = \"bad.hcl\"\n}\n", `bad.hcl:5,1-10: Invalid price; price "b": unit "1G"`},
		{"missing price file", "prices {\n  file = \"absent.hcl\"\n}\n", `c.hcl:1,1-7: Cannot read price file`},
		{"top-level and inline price twice", "price \"a\" {\n  input = 1\n}\nprices {\n  price \"a\" {\n    input = 2\n  }\n}\n", `c.hcl:5,3-12: Duplicate price; price "a" is already defined at `},
		{"redis URL", "budgets {\n  redis = \"http://nowhere\"\n}\n", `c.hcl:1,1-8: Invalid budgets.redis`},
		{"unknown_price", "budgets {\n  unknown_price = \"maybe\"\n}\n", `c.hcl:1,1-8: Invalid budgets.unknown_price`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse([]byte(tc.src), filepath.Join(dir, "c.hcl"), dir)
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			if !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("%s\ndoes not contain %s", diags.Error(), tc.want)
			}
		})
	}
}
