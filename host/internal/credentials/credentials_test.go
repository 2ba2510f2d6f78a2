package credentials

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

func TestResolveOrder(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "key")
	os.WriteFile(secretFile, []byte("from-file\n"), 0o600)
	jsonFile := filepath.Join(dir, "creds.json")
	os.WriteFile(jsonFile, []byte(`{"api_key":"from-json"}`), 0o600)
	t.Setenv("LLMPROXY_TEST_SET", "from-env")

	tests := []struct {
		name    string
		sources []config.Source
		want    string
		wantErr string
	}{
		{"env first", []config.Source{{Kind: "env", Name: "LLMPROXY_TEST_SET"}, {Kind: "file", Path: secretFile}}, "from-env", ""},
		{"env missing, file next", []config.Source{{Kind: "env", Name: "LLMPROXY_TEST_UNSET"}, {Kind: "file", Path: secretFile}}, "from-file", ""},
		{"json field", []config.Source{{Kind: "file", Path: jsonFile, Field: "api_key"}}, "from-json", ""},
		{"missing file then value", []config.Source{{Kind: "file", Path: filepath.Join(dir, "nope")}, {Kind: "value", Value: "inline"}}, "inline", ""},
		{"nothing", []config.Source{{Kind: "env", Name: "LLMPROXY_TEST_UNSET"}}, "", "no source produced a value (tried env LLMPROXY_TEST_UNSET)"},
		{"broken json", []config.Source{{Kind: "file", Path: secretFile, Field: "x"}}, "", "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(context.Background(), []config.Credential{{Name: "api_key", Sources: tt.sources}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got["api_key"] != tt.want {
				t.Fatalf("got %q, %v; want %q", got["api_key"], err, tt.want)
			}
		})
	}
}

func TestResolveRequiredByPlugin(t *testing.T) {
	err := CheckRequired(nil, []schema.Credential{{Name: "api_key", Required: true}})
	if err == nil || !strings.Contains(err.Error(), `credential "api_key"`) {
		t.Fatalf("want a hint to configure api_key, got %v", err)
	}
}

func TestErrorsNeverHoldSecrets(t *testing.T) {
	t.Setenv("LLMPROXY_TEST_SECRET", "s3cr3t-value")
	_, err := Resolve(context.Background(), []config.Credential{
		{Name: "a", Sources: []config.Source{{Kind: "env", Name: "LLMPROXY_TEST_SECRET"}}},
		{Name: "b", Sources: []config.Source{{Kind: "env", Name: "LLMPROXY_TEST_UNSET"}}},
	})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error must name the failing source only: %v", err)
	}
}

func TestAbsentCredentials(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	env := func(name string) config.Source { return config.Source{Kind: "env", Name: name} }
	file := func(path string) config.Source { return config.Source{Kind: "file", Path: path} }
	tests := []struct {
		name     string
		creds    []config.Credential
		wantHint string // "" = the error is not an *AbsentError
	}{
		{"one variable", []config.Credential{{Name: "api_key", Sources: []config.Source{env("LLMPROXY_TEST_UNSET_A")}}},
			"set LLMPROXY_TEST_UNSET_A"},
		{"two credentials", []config.Credential{
			{Name: "access_key_id", Sources: []config.Source{env("LLMPROXY_TEST_UNSET_A")}},
			{Name: "secret_access_key", Sources: []config.Source{env("LLMPROXY_TEST_UNSET_B")}},
		}, "set LLMPROXY_TEST_UNSET_A and LLMPROXY_TEST_UNSET_B"},
		{"file only", []config.Credential{{Name: "api_key", Sources: []config.Source{file(filepath.Join(dir, "missing"))}}},
			"create " + filepath.Join(dir, "missing")},
		{"broken source", []config.Credential{{Name: "api_key", Sources: []config.Source{file(unreadable)}}}, ""},
		{"absent and broken", []config.Credential{
			{Name: "api_key", Sources: []config.Source{env("LLMPROXY_TEST_UNSET_A")}},
			{Name: "other", Sources: []config.Source{file(unreadable)}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), tt.creds)
			if err == nil {
				t.Fatal("no error")
			}
			var absent *AbsentError
			switch {
			case tt.wantHint == "" && errors.As(err, &absent):
				t.Fatalf("a broken source reported as absent: %v", err)
			case tt.wantHint != "" && !errors.As(err, &absent):
				t.Fatalf("want *AbsentError, got %T: %v", err, err)
			case tt.wantHint != "" && absent.Hint() != tt.wantHint:
				t.Errorf("Hint() = %q, want %q", absent.Hint(), tt.wantHint)
			}
		})
	}
}
