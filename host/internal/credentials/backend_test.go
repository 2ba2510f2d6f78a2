package credentials

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// storeBackend is a Backend over a map that counts its reads.
type storeBackend struct {
	data  map[string]Secret
	reads int
}

func (s *storeBackend) Resolve(_ context.Context, ref map[string]string) (Secret, error) {
	s.reads++
	p := ref["path"]
	if strings.HasPrefix(p, "denied/") {
		return Secret{}, errors.New("permission denied")
	}
	sec, ok := s.data[p]
	if !ok {
		return Secret{}, fmt.Errorf("no secret at %s: %w", p, ErrNotFound)
	}
	return sec, nil
}

func TestResolverBackends(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	aws := Secret{Values: map[string]string{"access_key": "AKIA1", "secret_key": "s3cr3t-aws", "security_token": "tok"}, Version: "lease-1", Expires: exp}
	kv := Secret{Values: map[string]string{"api_key": "s3cr3t-kv"}, Version: "7", RefreshAfter: exp}
	t.Setenv("LLMPROXY_TEST_FALLBACK", "s3cr3t-env")
	from := func(path, field string) config.Source {
		return config.Source{Kind: "vault", Path: path, Field: field}
	}
	tests := []struct {
		name      string
		creds     []config.Credential
		want      map[string]string
		reads     int
		expires   time.Time
		states    []SourceState
		wantErr   string
		wantAbsnt bool
		rotation  Rotation
	}{
		{name: "one lease for three fields", creds: []config.Credential{
			{Name: "access_key_id", Sources: []config.Source{from("aws/creds/bedrock", "access_key")}},
			{Name: "secret_access_key", Sources: []config.Source{from("aws/creds/bedrock", "secret_key")}},
			{Name: "session_token", Sources: []config.Source{from("aws/creds/bedrock", "security_token")}},
		}, want: map[string]string{"access_key_id": "AKIA1", "secret_access_key": "s3cr3t-aws", "session_token": "tok"}, reads: 1, expires: exp,
			states: []SourceState{SourceUsed}, rotation: RotationLeased},
		{name: "single value without field", creds: []config.Credential{
			{Name: "api_key", Sources: []config.Source{from("secret/openai", "")}},
		}, want: map[string]string{"api_key": "s3cr3t-kv"}, reads: 1, states: []SourceState{SourceUsed}, rotation: RotationPolled},
		{name: "unavailable falls through to env", creds: []config.Credential{
			{Name: "api_key", Sources: []config.Source{from("secret/missing", "api_key"), {Kind: "env", Name: "LLMPROXY_TEST_FALLBACK"}}},
		}, want: map[string]string{"api_key": "s3cr3t-env"}, reads: 1, states: []SourceState{SourceUnavailable, SourceUsed}},
		{name: "missing field is unavailable", creds: []config.Credential{
			{Name: "api_key", Sources: []config.Source{from("secret/openai", "nope"), {Kind: "env", Name: "LLMPROXY_TEST_FALLBACK"}}},
		}, want: map[string]string{"api_key": "s3cr3t-env"}, reads: 1, states: []SourceState{SourceUnavailable, SourceUsed}},
		{name: "failed stops the chain", creds: []config.Credential{
			{Name: "api_key", Sources: []config.Source{from("denied/openai", "api_key"), {Kind: "env", Name: "LLMPROXY_TEST_FALLBACK"}}},
		}, reads: 1, states: []SourceState{SourceFailed}, wantErr: "permission denied"},
		{name: "several fields need a field", creds: []config.Credential{
			{Name: "k", Sources: []config.Source{from("aws/creds/bedrock", "")}},
		}, reads: 1, states: []SourceState{SourceFailed}, wantErr: "name one with field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &storeBackend{data: map[string]Secret{"aws/creds/bedrock": aws, "secret/openai": kv}}
			r := Resolver{Backends: func(name string) Backend {
				if name == "vault" {
					return b
				}
				return nil
			}}
			res, err := r.Resolve(context.Background(), tt.creds)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if res.Values[k] != v {
					t.Errorf("%s = %q, want %q", k, res.Values[k], v)
				}
			}
			if b.reads != tt.reads {
				t.Errorf("%d backend reads, want %d", b.reads, tt.reads)
			}
			if !res.Expires.Equal(tt.expires) {
				t.Errorf("expires %v, want %v", res.Expires, tt.expires)
			}
			var got []SourceState
			for _, s := range res.Statuses[0].Sources {
				got = append(got, s.State)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.states) {
				t.Errorf("states %v, want %v", got, tt.states)
			}
			if tt.rotation != "" && res.Statuses[0].Rotation != tt.rotation {
				t.Errorf("rotation %q, want %q", res.Statuses[0].Rotation, tt.rotation)
			}
			all := fmt.Sprintf("%v %+v", err, res.Statuses)
			for _, secret := range []string{"s3cr3t-aws", "s3cr3t-kv", "s3cr3t-env"} {
				if strings.Contains(all, secret) {
					t.Errorf("a status or error holds a value: %s", all)
				}
			}
		})
	}
}

func TestUnknownBackend(t *testing.T) {
	_, err := Resolve(context.Background(), []config.Credential{{Name: "k", Sources: []config.Source{{Kind: "vault", Path: "x"}}}})
	if err == nil || !strings.Contains(err.Error(), `unknown credential source "vault"`) {
		t.Fatalf("err = %v", err)
	}
}
