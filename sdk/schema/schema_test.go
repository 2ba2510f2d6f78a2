package schema

import (
	"testing"
	"time"
)

func TestDiagnosticsDuration(t *testing.T) {
	const def = 7 * time.Second
	for _, tc := range []struct {
		value string
		want  time.Duration
		bad   bool
	}{
		{"", def, false},
		{"30s", 30 * time.Second, false},
		{"1h5m", time.Hour + 5*time.Minute, false},
		{"0s", def, true},
		{"-1m", def, true},
		{"10", def, true},
		{"soon", def, true},
	} {
		var d Diagnostics
		got := d.Duration("poll_interval", tc.value, def)
		if got != tc.want {
			t.Errorf("%q: got %v, want %v", tc.value, got, tc.want)
		}
		if d.HasErrors() != tc.bad {
			t.Errorf("%q: diagnostics %v, want an error: %v", tc.value, d, tc.bad)
		}
		if tc.bad && (len(d) != 1 || d.Error() != "poll_interval: poll_interval must be a positive Go duration") {
			t.Errorf("%q: diagnostics %q", tc.value, d.Error())
		}
	}
}
