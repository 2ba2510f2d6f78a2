package config

// Budget is a spending limit of a key (or of its group) over a period.
type Budget struct {
	// USD is the most the key may spend in one period, in US dollars.
	USD float64 `hcl:"usd"`
	// Period is "day", "week", "month" (the default) or "total".
	Period string `hcl:"period,optional"`
}
