package price

import (
	_ "embed"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// defaults is the embedded price list: list prices of common models of
// the providers llmproxy serves, in USD per million tokens.
//
//go:embed prices.hcl
var defaults []byte

// Default returns the embedded price list, parsed.
func Default() []Entry {
	entries, diags := Parse(defaults, "<embedded prices.hcl>")
	if diags.HasErrors() {
		panic("price: the embedded prices.hcl is invalid: " + diags.Error())
	}
	return entries
}

// file is the shape of a price file: price blocks and nothing else.
type file struct {
	Prices []Entry `hcl:"price,block"`
}

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "price", LabelNames: []string{"model"}}}}

// Parse decodes a price file; filename names it in diagnostics, each of
// which points at file:line:column.
func Parse(src []byte, filename string) ([]Entry, hcl.Diagnostics) {
	f, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	content, diags := f.Body.Content(fileSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	var out file
	if diags := gohcl.DecodeBody(f.Body, nil, &out); diags.HasErrors() {
		return nil, diags
	}
	for i := range out.Prices {
		out.Prices[i].DeclRange = content.Blocks[i].DefRange
	}
	return out.Prices, Check(out.Prices)
}

// Check validates entries: known units, non-negative prices and one
// block per model name or pattern.
func Check(entries []Entry) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]hcl.Range{}
	for i := range entries {
		e := &entries[i]
		diags = append(diags, e.check()...)
		if first, dup := seen[e.Model]; dup {
			r := e.DeclRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate price",
				Detail: fmt.Sprintf("price %q is already defined at %s", e.Model, first), Subject: &r})
			continue
		}
		seen[e.Model] = e.DeclRange
	}
	return diags
}

// Load reads and parses the price file at path.
func Load(path string) ([]Entry, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read price file", Detail: err.Error()}}
	}
	return Parse(src, path)
}

// New returns a table searching inline first, then file, then the
// embedded defaults (each may be empty).
func New(inline, file []Entry) *Table {
	return &Table{layers: []layer{newLayer(inline), newLayer(file), newLayer(Default())}}
}
