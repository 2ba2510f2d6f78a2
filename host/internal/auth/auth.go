// Package auth authenticates clients by API key and says what each key
// may use.
//
// Keys are held only as SHA-256 digests. A presented key is hashed and
// looked up by digest, then compared in constant time, so neither the
// lookup nor the comparison reveals anything about a configured key.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/glob"
)

// Key is an authenticated client key and its permissions.
type Key struct {
	Name       string
	digest     [32]byte
	models     []string
	instances  []string
	storageOps map[string]bool
}

// AllowsModel reports whether the key may use model.
func (k *Key) AllowsModel(model string) bool { return glob.Any(k.models, model) }

// AllowsInstance reports whether the key may address instance directly.
func (k *Key) AllowsInstance(instance string) bool { return glob.Any(k.instances, instance) }

// AllowsStorageOp reports whether the key may perform a storage operation.
func (k *Key) AllowsStorageOp(op string) bool { return k.storageOps == nil || k.storageOps[op] }

// Keys is the set of configured keys.
type Keys struct {
	byDigest map[[32]byte]*Key
}

// New builds the key set from config.
func New(cfg []config.APIKey) (*Keys, error) {
	ks := &Keys{byDigest: make(map[[32]byte]*Key, len(cfg))}
	for _, c := range cfg {
		k := &Key{Name: c.Name, models: c.Models, instances: c.Instances}
		if k.models == nil {
			k.models = []string{"*"}
		}
		if len(c.StorageOps) > 0 {
			k.storageOps = map[string]bool{}
			for _, op := range c.StorageOps {
				k.storageOps[op] = true
			}
		}
		if c.Key != "" {
			k.digest = sha256.Sum256([]byte(c.Key))
		} else {
			b, err := hex.DecodeString(c.KeySHA256)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("api_key %q: key_sha256 must be 64 hex digits", c.Name)
			}
			copy(k.digest[:], b)
		}
		if _, dup := ks.byDigest[k.digest]; dup {
			return nil, fmt.Errorf("api_key %q has the same secret as another key", c.Name)
		}
		ks.byDigest[k.digest] = k
	}
	return ks, nil
}

// Lookup returns the key whose secret is presented, or nil.
func (ks *Keys) Lookup(secret []byte) *Key {
	if len(secret) == 0 {
		return nil
	}
	d := sha256.Sum256(secret)
	k := ks.byDigest[d]
	if k == nil || subtle.ConstantTimeCompare(k.digest[:], d[:]) != 1 {
		return nil
	}
	return k
}

// Secret extracts the presented key from Authorization: Bearer or
// X-API-Key.
func Secret(h *fasthttp.RequestHeader) []byte {
	if v := h.Peek("Authorization"); len(v) > 7 && strings.EqualFold(string(v[:7]), "bearer ") {
		return trimSpace(v[7:])
	}
	return trimSpace(h.Peek("X-API-Key"))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
