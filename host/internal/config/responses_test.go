package config

import (
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/inbound/responses"
)

func TestResponsesBlock(t *testing.T) {
	tests := []struct {
		name, block string
		// want is the retention, or the error's text.
		retention time.Duration
		err       string
	}{
		{name: "absent"},
		{name: "defaults", block: "responses {}\n", retention: responses.DefaultRetention},
		{name: "memory", block: "responses {\n  store = \"memory\"\n  retention = \"24h\"\n  max_entries = 50\n}\n", retention: 24 * time.Hour},
		{name: "unknown store", block: "responses {\n  store = \"mongo\"\n}\n", err: `responses.store must be one of ["memory"], not "mongo"`},
		{name: "bad retention", block: "responses {\n  retention = \"a day\"\n}\n", err: "responses.retention"},
		{name: "zero retention", block: "responses {\n  retention = \"0s\"\n}\n", err: "responses.retention must be positive"},
		{name: "negative max_entries", block: "responses {\n  max_entries = -1\n}\n", err: "max_entries must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse([]byte(base+tt.block), "test.hcl", t.TempDir())
			if tt.err != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.err) {
					t.Fatalf("diagnostics %v, want %q", diags, tt.err)
				}
				if !strings.Contains(diags.Error(), "test.hcl:") {
					t.Errorf("the error does not point into the file: %v", diags)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if tt.block == "" {
				if f.Responses != nil {
					t.Errorf("responses %+v without a block", f.Responses)
				}
				return
			}
			if d, err := f.Responses.RetentionDuration(); err != nil || d != tt.retention {
				t.Errorf("retention %v %v, want %v", d, err, tt.retention)
			}
		})
	}
}
