package main

import (
	"fmt"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/inbound/responses"
	"github.com/llmproxy/llmproxy/host/internal/server"
)

// openResponses returns the store of the responses block and its
// retention; no block, no store. st is the database of the store block,
// which `responses { store = "store" }` keeps the responses in, so that
// every replica sharing it can continue a conversation.
func openResponses(cfg *config.File, st *stored) (server.ResponseStore, time.Duration, error) {
	rc := cfg.Responses
	if rc == nil {
		return nil, 0, nil
	}
	retention, err := rc.RetentionDuration()
	if err != nil {
		return nil, 0, err
	}
	switch rc.Store {
	case "", "memory":
		return responses.NewMemory(rc.MaxEntries, rc.MaxBytes), retention, nil
	case "store":
		if st == nil || st.st == nil {
			return nil, 0, fmt.Errorf(`responses.store = "store" needs a store block`)
		}
		return st.st, retention, nil
	}
	return nil, 0, fmt.Errorf("responses.store %q is not a known store", rc.Store)
}
