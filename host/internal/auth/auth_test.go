package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

func TestLookup(t *testing.T) {
	sum := sha256.Sum256([]byte("sk-hashed"))
	ks, err := New([]config.APIKey{
		{Name: "dev", Key: "sk-dev", Models: []string{"echo", "gpt-*"}, Instances: []string{"dev"}},
		{Name: "ops", KeySHA256: hex.EncodeToString(sum[:])},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		secret, want string
	}{
		{"sk-dev", "dev"},
		{"sk-hashed", "ops"},
		{"sk-dev ", ""},
		{"", ""},
		{"sk-other", ""},
	}
	for _, tt := range tests {
		k := ks.Lookup([]byte(tt.secret))
		got := ""
		if k != nil {
			got = k.Name
		}
		if got != tt.want {
			t.Errorf("Lookup(%q) = %q, want %q", tt.secret, got, tt.want)
		}
	}
	dev := ks.Lookup([]byte("sk-dev"))
	if !dev.AllowsModel("gpt-4o") || dev.AllowsModel("claude-3") || !dev.AllowsInstance("dev") || dev.AllowsInstance("prod") {
		t.Error("dev key permissions wrong")
	}
	if ops := ks.Lookup([]byte("sk-hashed")); !ops.AllowsModel("anything") || ops.AllowsInstance("x") {
		t.Error("ops key: models default to all, instances to none")
	}
}

func TestSecret(t *testing.T) {
	tests := []struct {
		header, value, want string
	}{
		{"Authorization", "Bearer sk-1", "sk-1"},
		{"Authorization", "bearer  sk-1 ", "sk-1"},
		{"Authorization", "Basic abc", ""},
		{"X-API-Key", "sk-2", "sk-2"},
	}
	for _, tt := range tests {
		var h fasthttp.RequestHeader
		h.Set(tt.header, tt.value)
		if got := string(Secret(&h)); got != tt.want {
			t.Errorf("%s: %q → %q, want %q", tt.header, tt.value, got, tt.want)
		}
	}
}

func TestDuplicateSecretRejected(t *testing.T) {
	if _, err := New([]config.APIKey{{Name: "a", Key: "x"}, {Name: "b", Key: "x"}}); err == nil {
		t.Fatal("two keys with one secret must be refused")
	}
}
