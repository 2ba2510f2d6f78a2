package rpc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckHealth(t *testing.T) {
	tests := []struct {
		name  string
		check func(context.Context) error
		want  string // "" for nil
	}{
		{"ok", func(context.Context) error { return nil }, ""},
		{"unhealthy", func(context.Context) error { return errors.New("upstream says 503") }, "upstream says 503"},
		{"slow", func(ctx context.Context) error { time.Sleep(time.Second); return nil }, "did not finish within 300ms"},
		{"panics", func(context.Context) error { panic("boom") }, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := CheckHealth(ctx, tt.check)
			if d := time.Since(start); d > 350*time.Millisecond {
				t.Errorf("answered after %v, past three quarters of the deadline", d)
			}
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
