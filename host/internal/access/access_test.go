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
		if got := status(p.Check(Object{tt.bucket, tt.key})); got != tt.want {
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

// TestParseObject covers the storage path parser: escaped or not, a
// key that could leave its bucket is refused.
func TestParseObject(t *testing.T) {
	long := strings.Repeat("k", 1025)
	tests := []struct {
		raw, bucket, key string
		code             int
	}{
		{"rag-docs/quantum.md", "rag-docs", "quantum.md", 0},
		{"rag-docs/dir/a%20b+c%25.md", "rag-docs", "dir/a b+c%.md", 0},
		{"rag-docs/%E2%9C%93.md", "rag-docs", "✓.md", 0},
		{"rag-docs/folder/", "rag-docs", "folder/", 0},
		{"rag-docs/../etc/passwd", "", "", 400},
		{"rag-docs/a/../secret/x", "", "", 400},
		{"rag-docs/a/%2e%2e/b", "", "", 400},
		{"rag-docs/a%2F..%2Fsecret%2Fx", "", "", 400},
		{"rag-docs/./a", "", "", 400},
		{"rag-docs/a/.", "", "", 400},
		{"rag-docs/..", "", "", 400},
		{"rag-docs//etc/passwd", "", "", 400},
		{"rag-docs/a//b", "", "", 400},
		{"rag-docs/a%5C..%5Cb", "", "", 400},
		{"rag-docs/a%00b", "", "", 400},
		{"rag-docs/a%0Ab", "", "", 400},
		{"rag-docs/a%7Fb", "", "", 400},
		{"rag-docs/a%FFb", "", "", 400},
		{"rag-docs/" + long, "", "", 400},
		{"rag-docs/", "", "", 400},
		{"rag-docs/%zz", "", "", 400},
		{"..%2Fother/x", "", "", 400},
		{"%2e%2e/x", "", "", 400},
		{"/x", "", "", 400},
	}
	for _, tt := range tests {
		o, err := ParseObject(tt.raw, true)
		if status(err) != tt.code || o.Bucket != tt.bucket || o.Key != tt.key {
			t.Errorf("ParseObject(%q) = %+v %v; want %q %q %d", tt.raw, o, err, tt.bucket, tt.key, tt.code)
		}
	}
	if o, err := ParseObject("rag-docs", false); err != nil || o != (Object{Bucket: "rag-docs"}) {
		t.Errorf("bucket only: %+v %v", o, err)
	}
}

// TestNewObject checks that unescaped references (document references,
// signed URLs) obey the same rules as storage paths.
func TestNewObject(t *testing.T) {
	tests := []struct {
		bucket, key string
		code        int
	}{
		{"rag-docs", "a/b.md", 0},
		{"rag-docs", "a/../secret/x", 400},
		{"rag-docs", "./x", 400},
		{"rag-docs", "/x", 400},
		{"rag-docs", "a//x", 400},
		{"rag-docs", "", 400},
		{"rag-docs", "a\x00", 400},
		{"rag-docs", `a\..\x`, 400},
		{"rag-docs", "a\x01b", 400},
		{"rag-docs", "tab\tin", 400},
		{"rag-docs", "a b/c+d%.md", 0},
		{"..", "x", 400},
		{"a/b", "x", 400},
	}
	for _, tt := range tests {
		if _, err := NewObject(tt.bucket, tt.key); status(err) != tt.code {
			t.Errorf("NewObject(%q, %q) = %v, want %d", tt.bucket, tt.key, err, tt.code)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for p, code := range map[string]int{"": 0, "a/": 0, "a/b": 0, "a/../secret/": 400, "../": 400, "/a": 400, "a//": 400, "a\x00": 400} {
		if got := status(CheckPrefix(p)); got != code {
			t.Errorf("CheckPrefix(%q) = %d, want %d", p, got, code)
		}
	}
}

func TestPageTokens(t *testing.T) {
	tokens, err := NewPageTokens("")
	if err != nil {
		t.Fatal(err)
	}
	scope := Scope("store", "rag-docs", "", "")
	sealed := tokens.Seal(scope, "secret/plans.md")
	if strings.Contains(sealed, "secret") || strings.Contains(sealed, "c2VjcmV0") {
		t.Fatalf("sealed token %q reveals the key", sealed)
	}
	if got, err := tokens.Open(scope, sealed); err != nil || got != "secret/plans.md" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if tokens.Seal(scope, "") != "" {
		t.Error("an empty token must stay empty")
	}
	other, _ := NewPageTokens("")
	flipped := []byte(sealed)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == '_' || flipped[len(flipped)/2] == '-' {
		flipped[len(flipped)/2] = 'A'
	}
	for name, tt := range map[string]struct{ scope, token string }{
		"tampered":        {scope, string(flipped)},
		"truncated":       {scope, sealed[:len(sealed)-2]},
		"readable key":    {scope, "c2VjcmV0L3BsYW5zLm1k"},
		"not base64":      {scope, "***"},
		"other listing":   {Scope("store", "rag-docs", "public/", ""), sealed},
		"other host":      {scope, other.Seal(scope, "secret/plans.md")},
		"other delimiter": {Scope("store", "rag-docs", "", "/"), sealed},
	} {
		if _, err := tokens.Open(tt.scope, tt.token); status(err) != 400 || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("%s: Open = %v, want 400 invalid_page_token", name, err)
		}
	}
}

// TestSharedPageTokenSecret checks that two sealers with one secret (two
// replicas) accept each other's tokens, and that short secrets are
// refused.
func TestSharedPageTokenSecret(t *testing.T) {
	a, err := NewPageTokens("a shared secret of some length")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewPageTokens("a shared secret of some length")
	scope := Scope("store", "b", "", "")
	if got, err := b.Open(scope, a.Seal(scope, "k/1")); err != nil || got != "k/1" {
		t.Errorf("replica b opened %q, %v", got, err)
	}
	c, _ := NewPageTokens("another secret of some length")
	if _, err := c.Open(scope, a.Seal(scope, "k/1")); err == nil {
		t.Error("a different secret opened the token")
	}
	if _, err := NewPageTokens("short"); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}
