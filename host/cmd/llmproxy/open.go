package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
)

// A configuration without any api_key block is served without
// authentication, but only on a loopback address: the smallest useful
// config is one provider and one route, and it must not open a gateway to
// the network by accident.

// localKey is the implicit key of a configuration without api_key blocks:
// a random secret, valid for every model and instance, that the host
// presents on behalf of each request that carries no key of its own.
type localKey struct {
	secret string
}

// newLocalKey checks that the host listens on loopback only and returns
// the implicit key's config.
func newLocalKey(listen string) (*localKey, config.APIKey, error) {
	if !auth.Loopback(listen) {
		return nil, config.APIKey{}, fmt.Errorf("no api_key block is configured and the host would listen on %s: "+
			"without a key the host only listens on a loopback address (127.0.0.1, ::1); add an api_key block", listen)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, config.APIKey{}, fmt.Errorf("make the local key: %w", err)
	}
	k := &localKey{secret: "local-" + hex.EncodeToString(b[:])}
	return k, k.key(), nil
}

// key is the api_key entry of the local key: everything allowed.
func (k *localKey) key() config.APIKey {
	return config.APIKey{Name: "local", Key: k.secret, Models: []string{"*"}, Instances: []string{"*"},
		Passthrough: []string{"*"}, StorageOps: []string{"*"}, Admin: true}
}

// wrap authenticates requests that present no key as the local key.
func (k *localKey) wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	bearer := "Bearer " + k.secret
	return func(ctx *fasthttp.RequestCtx) {
		if len(auth.Secret(&ctx.Request.Header)) == 0 {
			ctx.Request.Header.Set("Authorization", bearer)
		}
		next(ctx)
	}
}
