package config

// Budget is a budget block: the most a key (or a key group) may spend,
// in USD, over a period whose windows are aligned to UTC.
//
//	budget {
//	  usd    = 25
//	  period = "month" # "day", "week", "month" (default) or "total"
//	}
type Budget struct {
	USD    float64 `hcl:"usd"`
	Period string  `hcl:"period,optional"`
}
