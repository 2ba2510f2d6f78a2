// Package price turns the tokens a request used into US dollars. A Table
// holds prices per model name or pattern ("claude-sonnet-4*") and token
// kind, read from HCL: the embedded prices.hcl, overridden by a file the
// configuration names and by price blocks written inline.
//
//	price "gpt-4o-mini" {
//	  input        = 0.15   # USD per unit of prompt tokens
//	  output       = 0.60   # USD per unit of completion tokens
//	  cached_input = 0.075  # cache reads; defaults to input
//	  cache_write  = 0.1875 # cache writes; defaults to input
//	  reasoning    = 0.60   # reasoning tokens; defaults to output
//	  unit         = "1M"   # "1M" (default), "1K" or "1" tokens
//	}
package price

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/host/internal/glob"
)

// Entry is one price block: the prices of the models its label matches,
// in USD per Unit tokens.
type Entry struct {
	Model       string   `hcl:"model,label"`
	Input       float64  `hcl:"input"`
	Output      float64  `hcl:"output,optional"`
	CachedInput *float64 `hcl:"cached_input,optional"`
	CacheWrite  *float64 `hcl:"cache_write,optional"`
	Reasoning   *float64 `hcl:"reasoning,optional"`
	Unit        string   `hcl:"unit,optional"`

	// DeclRange is where the block starts, for diagnostics.
	DeclRange hcl.Range
}

// Rates are the USD prices of one token of each kind.
type Rates struct {
	Input, Output, CachedInput, CacheWrite, Reasoning float64
}

// Usage is what a request used, in OpenAI's terms: Prompt counts every
// input token, the cache reads (Cached) and writes (CacheWrite)
// included; Completion counts every output token, Reasoning included.
type Usage struct {
	Prompt, Completion, Cached, CacheWrite, Reasoning int64
}

// Cost returns the USD cost of u at these rates. Counts a provider
// reports inconsistently (more cached tokens than prompt tokens, say)
// are clamped, never charged twice or negative.
func (r Rates) Cost(u Usage) float64 {
	cached, write := max(u.Cached, 0), max(u.CacheWrite, 0)
	plain := max(u.Prompt-cached-write, 0)
	reasoning := min(max(u.Reasoning, 0), max(u.Completion, 0))
	output := max(u.Completion-reasoning, 0)
	return float64(plain)*r.Input + float64(cached)*r.CachedInput + float64(write)*r.CacheWrite +
		float64(output)*r.Output + float64(reasoning)*r.Reasoning
}

// units are the accepted values of unit, in tokens.
var units = map[string]float64{"": 1e6, "1M": 1e6, "1K": 1e3, "1": 1}

// rates converts the entry's per-unit prices to per-token rates.
func (e *Entry) rates() Rates {
	per := units[e.Unit]
	r := Rates{Input: e.Input / per, Output: e.Output / per, CachedInput: e.Input / per, CacheWrite: e.Input / per, Reasoning: e.Output / per}
	if e.CachedInput != nil {
		r.CachedInput = *e.CachedInput / per
	}
	if e.CacheWrite != nil {
		r.CacheWrite = *e.CacheWrite / per
	}
	if e.Reasoning != nil {
		r.Reasoning = *e.Reasoning / per
	}
	return r
}

// check validates the entry, reporting problems at its block.
func (e *Entry) check() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(detail string) {
		r := e.DeclRange
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid price",
			Detail: fmt.Sprintf("price %q: %s", e.Model, detail), Subject: &r})
	}
	if strings.TrimSpace(e.Model) == "" {
		bad("the label must name a model or a pattern such as \"gpt-4o*\"")
	}
	if _, ok := units[e.Unit]; !ok {
		bad(fmt.Sprintf("unit %q is not one of \"1M\", \"1K\" or \"1\"", e.Unit))
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"input", &e.Input}, {"output", &e.Output}, {"cached_input", e.CachedInput}, {"cache_write", e.CacheWrite}, {"reasoning", e.Reasoning}} {
		if f.v != nil && (*f.v < 0 || math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			bad(fmt.Sprintf("%s must be a non-negative number of USD", f.name))
		}
	}
	return diags
}

// layer is the prices of one source, exact names apart from patterns;
// patterns are kept most specific (longest) first.
type layer struct {
	exact    map[string]Rates
	patterns []pattern
}

type pattern struct {
	glob  string
	rates Rates
}

func newLayer(entries []Entry) layer {
	l := layer{exact: map[string]Rates{}}
	for i := range entries {
		e := &entries[i]
		if strings.Contains(e.Model, "*") {
			l.patterns = append(l.patterns, pattern{e.Model, e.rates()})
			continue
		}
		l.exact[e.Model] = e.rates()
	}
	sort.SliceStable(l.patterns, func(i, j int) bool { return len(l.patterns[i].glob) > len(l.patterns[j].glob) })
	return l
}

func (l *layer) lookup(model string) (Rates, bool) {
	if r, ok := l.exact[model]; ok {
		return r, true
	}
	for _, p := range l.patterns {
		if glob.Match(p.glob, model) {
			return p.rates, true
		}
	}
	return Rates{}, false
}

// Table prices models. The layers are searched in order (inline prices,
// then the price file, then the embedded defaults) and the first layer
// that knows a model decides; within a layer an exact name beats a
// pattern and a longer pattern beats a shorter one. A Table is immutable
// and safe for concurrent use.
type Table struct {
	layers []layer
}

// Rates returns the per-token rates of model, and false when no price
// names it.
func (t *Table) Rates(model string) (Rates, bool) {
	if t == nil {
		return Rates{}, false
	}
	for i := range t.layers {
		if r, ok := t.layers[i].lookup(model); ok {
			return r, true
		}
	}
	return Rates{}, false
}

// Cost returns the USD cost of u on model, and false when the table has
// no price for the model.
func (t *Table) Cost(model string, u Usage) (usd float64, known bool) {
	r, ok := t.Rates(model)
	if !ok {
		return 0, false
	}
	return r.Cost(u), true
}
