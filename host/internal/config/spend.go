package config

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llmproxy/llmproxy/host/internal/budget"
	"github.com/llmproxy/llmproxy/host/internal/price"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// KeyGroup is a key_group block: a budget shared by every API key whose
// group names it.
//
//	key_group "research" {
//	  budget {
//	    usd    = 500
//	    period = "month"
//	  }
//	}
type KeyGroup struct {
	Name   string  `hcl:"name,label"`
	Budget *Budget `hcl:"budget,block"`

	DeclRange hcl.Range
}

// Prices is the prices block: where the price table comes from. Prices
// written here beat those of the file, which beat the embedded defaults.
//
//	prices {
//	  file = "prices.hcl"          # optional, relative to the config
//	  price "gpt-4o-mini" {
//	    input  = 0.15
//	    output = 0.60
//	    unit   = "1M"
//	  }
//	}
type Prices struct {
	File    string        `hcl:"file,optional"`
	Entries []price.Entry `hcl:"price,block"`

	DeclRange hcl.Range
	// fileEntries are the prices read from File.
	fileEntries []price.Entry
}

// Budgets is the budgets block: where budget counters are kept and how
// requests are costed before they run.
//
//	budgets {
//	  redis         = env("REDIS_URL") # optional: in memory when unset
//	  timeout       = "1s"             # the longest a reservation waits for Redis
//	  unknown_price = "refuse"         # or "allow": served without being counted
//	  max_tokens    = 4096             # output cap of requests that set none
//	}
type Budgets struct {
	Redis        string `hcl:"redis,optional"`
	Prefix       string `hcl:"prefix,optional"`
	Timeout      string `hcl:"timeout,optional"`
	UnknownPrice string `hcl:"unknown_price,optional"`
	MaxTokens    int64  `hcl:"max_tokens,optional"`

	DeclRange hcl.Range
}

// Budget defaults.
const (
	DefaultBudgetTimeout   = "1s"
	DefaultBudgetMaxTokens = 4096
	UnknownPriceRefuse     = "refuse"
	UnknownPriceAllow      = "allow"
)

// recordSpendRanges records where the blocks of this file start, for
// diagnostics.
func recordSpendRanges(body hcl.Body, f *File) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return
	}
	groups, prices := 0, 0
	for _, b := range sb.Blocks {
		switch b.Type {
		case "price":
			if prices < len(f.Price) {
				f.Price[prices].DeclRange = b.DefRange()
			}
			prices++
		case "key_group":
			if groups < len(f.KeyGroups) {
				f.KeyGroups[groups].DeclRange = b.DefRange()
			}
			groups++
		case "prices":
			if f.Prices == nil {
				continue
			}
			f.Prices.DeclRange = b.DefRange()
			n := 0
			for _, inner := range b.Body.Blocks {
				if inner.Type == "price" && n < len(f.Prices.Entries) {
					f.Prices.Entries[n].DeclRange = inner.DefRange()
					n++
				}
			}
		case "budgets":
			if f.Budgets != nil {
				f.Budgets.DeclRange = b.DefRange()
			}
		}
	}
}

// checkBudget validates one budget block of what names.
func checkBudget(b *Budget, what string, at *hcl.Range) hcl.Diagnostics {
	if b == nil {
		return nil
	}
	var diags hcl.Diagnostics
	if b.USD <= 0 || math.IsNaN(b.USD) || math.IsInf(b.USD, 0) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid budget",
			Detail: fmt.Sprintf("%s: budget usd must be a positive number of US dollars", what), Subject: at})
	}
	if !budget.ValidPeriod(b.Period) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid budget",
			Detail: fmt.Sprintf("%s: budget period %q is not one of \"day\", \"week\", \"month\" or \"total\"", what, b.Period), Subject: at})
	}
	return diags
}

// validateSpend checks the budget, key_group, prices and budgets blocks.
func (f *File) validateSpend() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i := range f.APIKeys {
		k := &f.APIKeys[i]
		diags = append(diags, checkBudget(k.Budget, fmt.Sprintf("api_key %q", k.Name), f.Range(fmt.Sprintf("api_key[%d]", i)))...)
		if k.Limits != nil {
			if err := k.Limits.Validate(); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid key limits",
					Detail: fmt.Sprintf("api_key %q: %v", k.Name, err), Subject: f.Range(fmt.Sprintf("api_key[%d]", i))})
			}
		}
	}
	seen := map[string]bool{}
	for i := range f.KeyGroups {
		g := &f.KeyGroups[i]
		at := g.DeclRange
		if seen[g.Name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate key_group",
				Detail: fmt.Sprintf("key_group %q is defined twice", g.Name), Subject: &at})
		}
		seen[g.Name] = true
		if g.Budget == nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid key_group",
				Detail: fmt.Sprintf("key_group %q needs a budget block", g.Name), Subject: &at})
		}
		diags = append(diags, checkBudget(g.Budget, fmt.Sprintf("key_group %q", g.Name), &at)...)
	}
	diags = append(diags, price.Check(f.inlinePrices())...)
	if b := f.Budgets; b != nil {
		at := b.DeclRange
		if d, err := Duration(b.Timeout, 0); err != nil || d < 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid budgets.timeout",
				Detail: "timeout must be a positive duration such as \"1s\"", Subject: &at})
		}
		if u := b.UnknownPrice; u != "" && u != UnknownPriceRefuse && u != UnknownPriceAllow {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid budgets.unknown_price",
				Detail: fmt.Sprintf("unknown_price %q is not \"refuse\" or \"allow\"", u), Subject: &at})
		}
		if b.Redis != "" {
			if c, err := ratelimit.ParseRedisURL(b.Redis); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid budgets.redis",
					Detail: err.Error(), Subject: &at})
			} else {
				c.Close()
			}
		}
		if b.MaxTokens < 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid budgets.max_tokens",
				Detail: "max_tokens may not be negative", Subject: &at})
		}
	}
	return diags
}

// loadPrices reads the price file the prices block names (relative to
// baseDir), reporting its errors at their own file:line:column.
func (f *File) loadPrices(baseDir string) hcl.Diagnostics {
	if f.Prices == nil || f.Prices.File == "" {
		return nil
	}
	path := f.Prices.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	entries, diags := price.Load(path)
	if diags.HasErrors() {
		for _, d := range diags {
			if d.Subject == nil {
				at := f.Prices.DeclRange
				d.Subject = &at
			}
		}
		return diags
	}
	f.Prices.fileEntries = entries
	return nil
}

// PriceTable returns the price table the configuration describes: the
// inline prices, then the price file, then the embedded defaults.
func (f *File) PriceTable() *price.Table {
	if f.Prices == nil {
		return price.New(f.inlinePrices(), nil)
	}
	return price.New(f.inlinePrices(), f.Prices.fileEntries)
}

// inlinePrices are the price blocks of the file itself: at the top level
// and inside the prices block.
func (f *File) inlinePrices() []price.Entry {
	out := append([]price.Entry(nil), f.Price...)
	if f.Prices != nil {
		out = append(out, f.Prices.Entries...)
	}
	return out
}
