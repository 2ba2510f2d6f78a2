package budget

import "time"

// Policy is what the gateway enforces: the ledger, the budgets of key
// groups and how requests without a price or an output cap are treated.
type Policy struct {
	Ledger *Ledger
	// Groups are the key_group budgets by group name.
	Groups map[string]Account
	// AllowUnknownPrice serves requests of budgeted keys on models
	// without a price, uncounted; otherwise they are refused.
	AllowUnknownPrice bool
	// MaxTokens is the output cap reserved for, and sent with, chat
	// requests of budgeted keys that set none.
	MaxTokens int64
	// Timeout bounds each reservation and settlement.
	Timeout time.Duration
}

// Accounts returns the budgets a key counts against: its own (when usd
// is positive) and its group's (when the group has one).
func (p *Policy) Accounts(key string, usd float64, period, group string) []Account {
	var out []Account
	if usd > 0 {
		out = append(out, Account{Name: "key:" + key, USD: usd, Period: period})
	}
	if g, ok := p.Groups[group]; ok && group != "" {
		out = append(out, g)
	}
	return out
}
