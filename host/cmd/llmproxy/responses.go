package main

import (
	"fmt"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/inbound/responses"
	"github.com/llmproxy/llmproxy/host/internal/server"
)

// openResponses returns the store of the responses block and its
// retention; no block, no store.
func openResponses(cfg *config.File) (server.ResponseStore, time.Duration, error) {
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
	}
	return nil, 0, fmt.Errorf("responses.store %q is not a known store", rc.Store)
}
