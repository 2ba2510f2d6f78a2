package config

import (
	"strings"
	"testing"
	"time"
)

const trafficBase = `
api_key "dev" { key = "sk-1" }
provider "a" { type = "echo" }
provider "b" { type = "echo" }
`

func TestTrafficBlocks(t *testing.T) {
	src := trafficBase + `
limits {
  redis   = "redis://127.0.0.1:6379/0"
  timeout = "3ms"
  limit "per-key" {
    key  = "*"
    rpm  = 600
    tpm  = 10000
    fail = "closed"
  }
  limit "east" {
    instance   = "a"
    concurrent = 4
  }
}
circuit_breaker {
  consecutive_failures = 3
  cooldown             = "2s"
}
route "m" {
  strategy      = "cost"
  sticky_header = "X-Session-Id"
  retry {
    attempts   = 4
    per_target = 2
    backoff    = "50ms"
  }
  target "a" { price = 2.5 }
  target "b" { price = 0.5 }
}
`
	f, diags := Parse([]byte(src), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lc, err := f.Limits.Ratelimit(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if lc.Timeout != 3*time.Millisecond || len(lc.Rules) != 2 || lc.Rules[0].Fail != "closed" || lc.Rules[1].Instance != "a" {
		t.Errorf("limits = %+v", lc)
	}
	bp, err := f.CircuitBreaker.Policy()
	if err != nil || !bp.Enabled || bp.ConsecutiveFailures != 3 || bp.Cooldown != 2*time.Second || bp.MaxCooldown != 5*time.Minute {
		t.Errorf("breaker = %+v, %v", bp, err)
	}
	rp, err := f.Routes[0].Retry.Policy()
	if err != nil || rp.Attempts != 4 || rp.PerTarget != 2 || rp.Backoff != 50*time.Millisecond || rp.Budget != DefaultRetryBudget {
		t.Errorf("retry = %+v, %v", rp, err)
	}
	if f.Routes[0].StickyHeader != "X-Session-Id" || f.Routes[0].Targets[1].Price != 0.5 {
		t.Errorf("route = %+v", f.Routes[0])
	}
}

func TestTrafficBlockErrors(t *testing.T) {
	for _, tt := range []struct {
		name, src, want string
	}{
		{"fail mode", `limits { 
  limit "x" {
    rpm  = 1
    fail = "sometimes"
  }
}`, "fail must be"},
		{"no limit", `limits { 
  limit "x" { key = "*" }
}`, "sets none"},
		{"bad redis", `limits { 
  redis = "memcached://x"
  limit "x" { rpm = 1 }
}`, "redis"},
		{"timeout", `limits {
  timeout = "5s"
  limit "x" { rpm = 1 }
}`, "between 0 and 1s"},
		{"breaker", `circuit_breaker { error_rate = 2 }`, "error_rate"},
		{"retry budget", `route "m" {
  retry { budget = 3 }
  target "a" {}
}`, "budget"},
		{"cost without prices", `route "m" {
  strategy = "cost"
  target "a" {}
}`, "needs a price"},
		{"strategy", `route "m" {
  strategy = "fastest"
  target "a" {}
}`, "least_busy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]byte(trafficBase+tt.src), "test.hcl", t.TempDir())
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
				t.Errorf("diags = %v, want %q", diags, tt.want)
			}
			if strings.Contains(diags.Error(), "test.hcl:") == false {
				t.Errorf("error without a position: %v", diags)
			}
		})
	}
}
