package main

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/admin"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/store"
)

// openStore opens the database of the store block, or returns nil when
// the config has none. The store block is read at start only; a reload
// keeps the store it started with.
func openStore(cfg *config.File) (store.Store, error) {
	if cfg.Store == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return store.Open(ctx, cfg.Store.Driver, cfg.Store.Source())
}

// storeParts returns what the server needs of st: the lookup of stored
// keys (nil without a store) and the admin API.
func storeParts(st store.Store, logger hclog.Logger) (*auth.Stored, *admin.API) {
	api := admin.New(admin.Options{Store: st, Logger: logger.Named("admin")})
	if st == nil {
		return nil, api
	}
	return auth.NewStored(st), api
}
