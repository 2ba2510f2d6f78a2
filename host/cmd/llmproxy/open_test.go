package main

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
)

func TestLoopback(t *testing.T) {
	tests := []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.1.2.3:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"[::]:8080", false},
		{"10.0.0.5:8080", false},
		{"example.com:8080", false},
		{"127.0.0.1", false}, // not a listen address
	}
	for _, tt := range tests {
		if got := auth.Loopback(tt.listen); got != tt.want {
			t.Errorf("Loopback(%q) = %v, want %v", tt.listen, got, tt.want)
		}
	}
}

func TestLocalKey(t *testing.T) {
	if _, _, err := newLocalKey("0.0.0.0:8080"); err == nil || !strings.Contains(err.Error(), "api_key") {
		t.Fatalf("non-loopback listen: err = %v", err)
	}
	k, cfg, err := newLocalKey("127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := newLocalKey("127.0.0.1:8080")
	if k.secret == other.secret || len(k.secret) < 32 {
		t.Errorf("local keys must be random: %q, %q", k.secret, other.secret)
	}
	keys, err := auth.New([]config.APIKey{cfg})
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h := k.wrap(func(ctx *fasthttp.RequestCtx) {
		if key := keys.Lookup(auth.Secret(&ctx.Request.Header)); key != nil {
			seen = key.Name
		} else {
			seen = "(none)"
		}
	})
	for _, tt := range []struct{ header, want string }{
		{"", "local"},
		{"Bearer sk-someone-else", "(none)"},
	} {
		var ctx fasthttp.RequestCtx
		if tt.header != "" {
			ctx.Request.Header.Set("Authorization", tt.header)
		}
		h(&ctx)
		if seen != tt.want {
			t.Errorf("Authorization %q: authenticated as %q, want %q", tt.header, seen, tt.want)
		}
	}
}
