package plugins

import (
	"testing"
	"time"
)

func TestRefreshTime(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		expires  time.Time
		min, max time.Duration
		zero     bool
	}{
		{name: "no expiry", zero: true},
		{name: "3s lease", expires: now.Add(3 * time.Second), min: 1700 * time.Millisecond, max: 2 * time.Second},
		{name: "1h token", expires: now.Add(time.Hour), min: 34 * time.Minute, max: 40 * time.Minute},
		{name: "already expired", expires: now.Add(-time.Second), min: 0, max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Time]bool{}
			for range 50 {
				at := refreshTime(now, tt.expires)
				if tt.zero {
					if !at.IsZero() {
						t.Fatalf("refresh at %v; want none", at)
					}
					return
				}
				if d := at.Sub(now); d < tt.min || d > tt.max {
					t.Fatalf("refresh after %v; want within [%v, %v]", d, tt.min, tt.max)
				}
				seen[at] = true
			}
			if tt.max > 0 && len(seen) < 2 {
				t.Error("no jitter: every instance would refresh at the same moment")
			}
		})
	}
}
