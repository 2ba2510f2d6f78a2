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
	"net"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/glob"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
)

// DevKey is the public development key of the embedded default config.
// The host accepts it only on a loopback listener (see CheckListener).
const DevKey = "sk-llmproxy-dev"

// Key is an authenticated client key and its rights. Every right fails
// closed: an empty list grants nothing, "*" grants everything.
type Key struct {
	Name string
	// Admin keys see instance details in /readyz.
	Admin bool
	// Group names the key_group whose budget the key also counts
	// against ("" for none); Budget is the key's own (nil for none).
	Group  string
	Budget *config.Budget
	// Limits are the key's own rate limits; nil for none.
	Limits *ratelimit.KeyLimits
	// Cache opts the key's chat requests into the exact response cache.
	Cache       bool
	digest      [32]byte
	models      []string
	passthrough []string
	instances   []string
	storageOps  map[string]bool
	// ID identifies a stored key ("key_..."); it is empty for keys of the
	// config file.
	ID string
}

// AllowsModel reports whether the key may use model in protocol mode.
func (k *Key) AllowsModel(model string) bool { return glob.Any(k.models, model) }

// AllowsPassthrough reports whether the key may use provider instance
// in transparent mode.
func (k *Key) AllowsPassthrough(instance string) bool { return glob.Any(k.passthrough, instance) }

// AllowsStorage reports whether the key may address storage instance at
// all; each operation also needs AllowsStorageOp.
func (k *Key) AllowsStorage(instance string) bool { return glob.Any(k.instances, instance) }

// AllowsStorageOp reports whether the key may perform a storage
// operation (put, get, head, list, delete, presign) on the storage
// instances it may address.
func (k *Key) AllowsStorageOp(op string) bool { return k.storageOps["*"] || k.storageOps[op] }

// Keys is the set of configured keys.
type Keys struct {
	byDigest map[[32]byte]*Key
}

// New builds the key set from config. Rights are copied as given: a key
// without models may use none.
func New(cfg []config.APIKey) (*Keys, error) {
	ks := &Keys{byDigest: make(map[[32]byte]*Key, len(cfg))}
	for _, c := range cfg {
		k := &Key{Name: c.Name, Admin: c.Admin, Group: c.Group, Budget: c.Budget, models: c.Models, passthrough: c.Passthrough,
			instances: c.Instances, storageOps: map[string]bool{}}
		k.Cache = c.Cache
		if !c.Limits.Empty() {
			k.Limits = c.Limits
		}
		for _, op := range c.StorageOps {
			if op != "*" && !slices.Contains(config.StorageOps, op) {
				return nil, fmt.Errorf("api_key %q: unknown storage operation %q", c.Name, op)
			}
			k.storageOps[op] = true
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

// CheckListener refuses to serve the development key anywhere but on a
// loopback address: the key is public, so a host reachable from other
// machines with it configured is open to anyone. listen is the
// listener's host:port.
func (ks *Keys) CheckListener(listen string) error {
	dev := ks.byDigest[sha256.Sum256([]byte(DevKey))]
	if dev == nil || Loopback(listen) {
		return nil
	}
	return fmt.Errorf("api_key %q is the public development key %s, which is accepted only on a loopback listener, "+
		"and %q is not one: set LLMPROXY_API_KEY (or the key's key/key_sha256) to a secret of your own, or listen on 127.0.0.1",
		dev.Name, DevKey, listen)
}

// Loopback reports whether the listen address host:port binds only a
// loopback interface ("localhost", 127.0.0.0/8 or ::1). An empty host
// binds every interface.
func Loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
