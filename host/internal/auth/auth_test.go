package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
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
}

// TestRightsFailClosed checks every right of a key: an empty list grants
// nothing, "*" grants everything, and storage, transparent mode and
// models are separate rights.
func TestRightsFailClosed(t *testing.T) {
	keys := map[string]config.APIKey{
		"empty": {Key: "sk-empty"},
		"explicit empty": {Key: "sk-explicit", Models: []string{}, Passthrough: []string{},
			Instances: []string{}, StorageOps: []string{}},
		"all": {Key: "sk-all", Models: []string{"*"}, Passthrough: []string{"*"}, Instances: []string{"*"},
			StorageOps: []string{"*"}},
		"scoped": {Key: "sk-scoped", Models: []string{"echo", "gpt-*"}, Passthrough: []string{"openai_prod"},
			Instances: []string{"dev"}, StorageOps: []string{"get", "list"}},
		"storage only": {Key: "sk-storage", Instances: []string{"*"}, StorageOps: []string{"get"}},
	}
	type want struct {
		model, gpt, passOpenAI, passDev, storageDev, storageProd, get, put, presign bool
	}
	tests := map[string]want{
		"empty":          {},
		"explicit empty": {},
		"all":            {true, true, true, true, true, true, true, true, true},
		"scoped":         {model: true, gpt: true, passOpenAI: true, storageDev: true, get: true},
		"storage only":   {storageDev: true, storageProd: true, get: true},
	}
	for name, tt := range tests {
		c := keys[name]
		c.Name = name
		ks, err := New([]config.APIKey{c})
		if err != nil {
			t.Fatal(err)
		}
		k := ks.Lookup([]byte(c.Key))
		got := want{k.AllowsModel("echo"), k.AllowsModel("gpt-4o"), k.AllowsPassthrough("openai_prod"),
			k.AllowsPassthrough("dev"), k.AllowsStorage("dev"), k.AllowsStorage("prod"),
			k.AllowsStorageOp("get"), k.AllowsStorageOp("put"), k.AllowsStorageOp("presign")}
		if got != tt {
			t.Errorf("%s: rights %+v, want %+v", name, got, tt)
		}
	}
}

func TestUnknownStorageOp(t *testing.T) {
	_, err := New([]config.APIKey{{Name: "x", Key: "sk-x", StorageOps: []string{"get", "rm"}}})
	if err == nil || !strings.Contains(err.Error(), `"rm"`) {
		t.Fatalf("err = %v, want the unknown op named", err)
	}
}

func TestCheckListener(t *testing.T) {
	devSum := sha256.Sum256([]byte(DevKey))
	tests := []struct {
		name   string
		key    config.APIKey
		listen string
		ok     bool
	}{
		{"dev key on loopback", config.APIKey{Key: DevKey}, "127.0.0.1:8080", true},
		{"dev key on localhost", config.APIKey{Key: DevKey}, "localhost:8080", true},
		{"dev key on ipv6 loopback", config.APIKey{Key: DevKey}, "[::1]:8080", true},
		{"dev key on all interfaces", config.APIKey{Key: DevKey}, "0.0.0.0:8080", false},
		{"dev key on empty host", config.APIKey{Key: DevKey}, ":8080", false},
		{"dev key on a lan address", config.APIKey{Key: DevKey}, "10.1.2.3:8080", false},
		{"dev key by digest", config.APIKey{KeySHA256: hex.EncodeToString(devSum[:])}, "0.0.0.0:8080", false},
		{"own key anywhere", config.APIKey{Key: "sk-own-secret"}, "0.0.0.0:8080", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.key.Name = "dev"
			ks, err := New([]config.APIKey{tt.key})
			if err != nil {
				t.Fatal(err)
			}
			err = ks.CheckListener(tt.listen)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckListener(%q) = %v, want ok=%v", tt.listen, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "loopback") {
				t.Errorf("error %q does not say why", err)
			}
		})
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
