package access

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

func policy(t *testing.T) *Policy {
	p, err := NewPolicy(&config.Instance{
		AllowedBuckets: []string{"rag-docs", "team-*"},
		DeniedPrefixes: []string{"secret/", "internal/", "credentials/"},
		Presign:        &config.Presign{DefaultTTL: "1h", MinTTL: "60s", MaxTTL: "24h"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func status(err error) int {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.Status
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCheck(t *testing.T) {
	p := policy(t)
	tests := []struct {
		bucket, key string
		want        int
	}{
		{"rag-docs", "quantum.md", 0},
		{"team-a", "x/y", 0},
		{"private", "quantum.md", 403},
		{"rag-docs", "secret/plan.md", 403},
		{"rag-docs", "credentials/aws", 403},
		{"rag-docs", "secretive.md", 0},
	}
	for _, tt := range tests {
		if got := status(p.Check(tt.bucket, tt.key)); got != tt.want {
			t.Errorf("Check(%q, %q) = %d, want %d", tt.bucket, tt.key, got, tt.want)
		}
	}
	if p.Visible("secret/a") || !p.Visible("public/a") || p.Visible("internal/") {
		t.Error("Visible")
	}
}

func TestTTL(t *testing.T) {
	p := policy(t)
	tests := []struct {
		in   string
		want time.Duration
		code int
	}{
		{"", time.Hour, 0},
		{"3600", time.Hour, 0},
		{"90m", 90 * time.Minute, 0},
		{"59", 0, 400},
		{"86401", 0, 400},
		{"soon", 0, 400},
	}
	for _, tt := range tests {
		got, err := p.TTL(tt.in)
		if status(err) != tt.code || got != tt.want {
			t.Errorf("TTL(%q) = %v, %v; want %v, %d", tt.in, got, err, tt.want, tt.code)
		}
	}
	_, err := p.TTL("59")
	if !strings.Contains(err.Error(), "60") || !strings.Contains(err.Error(), "86400") {
		t.Errorf("out-of-range error must state the bounds: %v", err)
	}
}

func TestSplitObject(t *testing.T) {
	long := strings.Repeat("k", 1025)
	tests := []struct {
		raw, bucket, key string
		code             int
	}{
		{"rag-docs/quantum.md", "rag-docs", "quantum.md", 0},
		{"rag-docs/dir/a%20b+c%25.md", "rag-docs", "dir/a b+c%.md", 0},
		{"rag-docs/%E2%9C%93.md", "rag-docs", "✓.md", 0},
		{"rag-docs/../etc/passwd", "", "", 400},
		{"rag-docs/a/%2e%2e/b", "", "", 400},
		{"rag-docs/./a", "", "", 400},
		{"rag-docs//etc/passwd", "", "", 400},
		{"rag-docs/a%00b", "", "", 400},
		{"rag-docs/a%0Ab", "", "", 400},
		{"rag-docs/" + long, "", "", 400},
		{"rag-docs/", "", "", 400},
		{"rag-docs/%zz", "", "", 400},
	}
	for _, tt := range tests {
		b, k, err := SplitObject(tt.raw, true)
		if status(err) != tt.code || b != tt.bucket || k != tt.key {
			t.Errorf("SplitObject(%q) = %q %q %v; want %q %q %d", tt.raw, b, k, err, tt.bucket, tt.key, tt.code)
		}
	}
}
