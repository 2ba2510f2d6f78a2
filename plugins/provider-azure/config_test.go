package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

func TestConfigureRejects(t *testing.T) {
	key := map[string]string{CredAPIKey: "k"}
	secret := map[string]string{CredClientSecret: "s"}
	tests := []struct {
		name     string
		json     string
		creds    map[string]string
		wantPath string
	}{
		{"missing endpoint", `{}`, key, "endpoint"},
		{"endpoint not a URL", `{"endpoint":"myres.openai.azure.com"}`, key, "endpoint"},
		{"endpoint with query", `{"endpoint":"https://x.openai.azure.com/?a=b"}`, key, "endpoint"},
		{"bad api version", `{"endpoint":"https://x.openai.azure.com","api_version":"latest"}`, key, "api_version"},
		{"bad deployment", `{"endpoint":"https://x.openai.azure.com","deployments":{"gpt-4o":"a/b"}}`, key, "deployments"},
		{"bad timeout", `{"endpoint":"https://x.openai.azure.com","timeout":"soon"}`, key, "timeout"},
		{"negative timeout", `{"endpoint":"https://x.openai.azure.com","timeout":"-1s"}`, key, "timeout"},
		{"unknown auth", `{"endpoint":"https://x.openai.azure.com","auth":"magic"}`, key, "auth"},
		{"api key missing", `{"endpoint":"https://x.openai.azure.com"}`, nil, "auth"},
		{"entra without credential", `{"endpoint":"https://x.openai.azure.com","auth":"entra","tenant_id":"t","client_id":"c"}`, key, "auth"},
		{"entra without tenant", `{"endpoint":"https://x.openai.azure.com","auth":"entra","client_id":"c"}`, secret, "tenant_id"},
		{"entra without client", `{"endpoint":"https://x.openai.azure.com","auth":"entra","tenant_id":"t"}`, secret, "client_id"},
		{"bad authority", `{"endpoint":"https://x.openai.azure.com","auth":"entra","tenant_id":"t","client_id":"c","authority_host":"ftp://login"}`, secret, "authority_host"},
		{"bad documents", `{"endpoint":"https://x.openai.azure.com","documents":"pdf"}`, key, "documents"},
		{"unknown attribute", `{"endpoint":"https://x.openai.azure.com","endpont":"x"}`, key, ""},
		{"broken json", `{"endpoint":`, key, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Azure{}).Configure(context.Background(), &provider.Config{JSON: []byte(tt.json), Credentials: tt.creds})
			var diags schema.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("want diagnostics, got %v", err)
			}
			if tt.wantPath == "" {
				return
			}
			for _, d := range diags {
				if strings.Join(d.Path, ".") == tt.wantPath {
					return
				}
			}
			t.Errorf("no diagnostic at %q: %v", tt.wantPath, diags)
		})
	}
}

func TestConfigureKeepsOldConfigOnError(t *testing.T) {
	f := startFake(t, fakeOptions())
	a := configured(t, apiKeyConfig(f, ""))
	if err := a.Configure(context.Background(), &provider.Config{JSON: []byte(`{}`)}); err == nil {
		t.Fatal("bad config accepted")
	}
	if _, err := a.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody)); err != nil {
		t.Fatalf("old config lost after a rejected Configure: %v", err)
	}
}

func TestConfigureDefaults(t *testing.T) {
	in, err := newInstance(&provider.Config{JSON: []byte(`{"endpoint":"https://x.openai.azure.com/","api_version":null,"deployments":null}`),
		Credentials: map[string]string{CredAPIKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.deploymentURL("gpt-4o", "chat/completions"); got != "https://x.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version="+DefaultAPIVersion {
		t.Errorf("deployment URL = %s", got)
	}
	if in.timeout != DefaultTimeout || in.documents != DocumentsNative {
		t.Errorf("defaults: timeout %v documents %q", in.timeout, in.documents)
	}
	e, err := newInstance(&provider.Config{JSON: []byte(`{"endpoint":"https://x.openai.azure.com","auth":"entra","tenant_id":"t","client_id":"c"}`),
		Credentials: map[string]string{CredClientSecret: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.auth.(*entraToken)
	if tok.tokenURL != DefaultAuthorityHost+"/t/oauth2/v2.0/token" || tok.form.Get("scope") != DefaultScope {
		t.Errorf("entra defaults: %s scope %s", tok.tokenURL, tok.form.Get("scope"))
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := (&Azure{}).ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody))
	if oe := asOpenAIError(t, err); oe.Status != 503 {
		t.Errorf("status = %d, want 503", oe.Status)
	}
}
