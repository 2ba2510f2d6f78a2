package main

import (
	"github.com/llmproxy/llmproxy/host/internal/budget"
	"github.com/llmproxy/llmproxy/host/internal/config"
)

// openBudgets builds the budget policy of the configuration: nil when no
// key and no key group has a budget. close releases its Redis client.
func openBudgets(cfg *config.File) (pol *budget.Policy, close func(), err error) {
	close = func() {}
	budgeted := len(cfg.KeyGroups) > 0
	for _, k := range cfg.APIKeys {
		budgeted = budgeted || k.Budget != nil
	}
	if !budgeted {
		return nil, close, nil
	}
	b := cfg.Budgets
	if b == nil {
		b = &config.Budgets{}
	}
	timeout, err := config.Duration(b.Timeout, 0)
	if err != nil {
		return nil, close, err
	}
	if timeout == 0 {
		timeout, _ = config.Duration(config.DefaultBudgetTimeout, 0)
	}
	prefix := b.Prefix
	if prefix == "" {
		prefix = budget.DefaultPrefix
	}
	var backend budget.Backend = budget.NewMemory()
	if b.Redis != "" {
		r, err := budget.NewRedis(b.Redis)
		if err != nil {
			return nil, close, err
		}
		backend, close = r, func() { r.Close() }
	}
	pol = &budget.Policy{
		Ledger:            budget.New(backend, prefix),
		Groups:            map[string]budget.Account{},
		AllowUnknownPrice: b.UnknownPrice == config.UnknownPriceAllow,
		MaxTokens:         b.MaxTokens,
		Timeout:           timeout,
	}
	if pol.MaxTokens == 0 {
		pol.MaxTokens = config.DefaultBudgetMaxTokens
	}
	for _, g := range cfg.KeyGroups {
		if g.Budget != nil {
			pol.Groups[g.Name] = budget.Account{Name: "group:" + g.Name, USD: g.Budget.USD, Period: g.Budget.Period}
		}
	}
	return pol, close, nil
}
