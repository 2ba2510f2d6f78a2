package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/host/internal/inbound/responses"
)

// Responses is the responses block: how the responses of POST
// /v1/responses are kept for previous_response_id and GET
// /v1/responses/{id}. Without the block nothing is kept.
//
//	responses {
//	  store       = "memory"  # the default
//	  retention   = "24h"     # how long a response is kept; default 720h
//	  max_entries = 10000     # memory store only
//	  max_bytes   = 268435456 # memory store only
//	}
type Responses struct {
	Store      string `hcl:"store,optional"`
	Retention  string `hcl:"retention,optional"`
	MaxEntries int    `hcl:"max_entries,optional"`
	MaxBytes   int64  `hcl:"max_bytes,optional"`
}

// ResponseStores are the values of responses.store.
var ResponseStores = []string{"memory"}

// RetentionDuration returns retention, or its default.
func (r *Responses) RetentionDuration() (time.Duration, error) {
	if r.Retention == "" {
		return responses.DefaultRetention, nil
	}
	d, err := time.ParseDuration(r.Retention)
	if err != nil {
		return 0, fmt.Errorf("responses.retention: %w", err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("responses.retention must be positive, not %s", r.Retention)
	}
	return d, nil
}

// validateResponses checks the responses block.
func (f *File) validateResponses() hcl.Diagnostics {
	r := f.Responses
	if r == nil {
		return nil
	}
	var diags hcl.Diagnostics
	switch r.Store {
	case "", "memory":
	default:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid responses store",
			Detail:  fmt.Sprintf("responses.store must be one of %q, not %q", ResponseStores, r.Store),
			Subject: f.Range("responses.store")})
	}
	if _, err := r.RetentionDuration(); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid responses retention",
			Detail: err.Error(), Subject: f.Range("responses.retention")})
	}
	if r.MaxBytes < 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid responses max_bytes",
			Detail: "responses.max_bytes must not be negative", Subject: f.Range("responses.max_bytes")})
	}
	if r.MaxEntries < 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid responses max_entries",
			Detail: "responses.max_entries must not be negative", Subject: f.Range("responses.max_entries")})
	}
	return diags
}
