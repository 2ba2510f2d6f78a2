package main

import (
	"testing"
	"time"
)

func TestVerdict(t *testing.T) {
	o := options{rate: 1000, maxErrors: 0.001}
	tests := []struct {
		name     string
		rep      Report
		wantFail bool
	}{
		{"clean", Report{ErrorRate: 0, AchievedRate: 999}, false},
		{"errors at the limit", Report{ErrorRate: 0.001, AchievedRate: 1000}, false},
		{"errors above the limit", Report{ErrorRate: 0.0011, AchievedRate: 1000}, true},
		{"rate short by more than 1 %", Report{ErrorRate: 0, AchievedRate: 985}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rep.verdict(o) != ""; got != tt.wantFail {
				t.Errorf("verdict %q, want failing=%v", tt.rep.verdict(o), tt.wantFail)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1000; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p.Count != 1000 || p.P50 != 500 || p.P99 != 990 || p.Max != 1000 {
		t.Errorf("%+v", p)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Errorf("empty input")
	}
}
