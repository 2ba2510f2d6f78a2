package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/provider"
)

const helloBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}`

func TestEntraTokenRefresh(t *testing.T) {
	opts := fakeOptions()
	opts.TokenTTL = time.Second
	f := startFake(t, opts)
	a := configured(t, entraConfig(f))
	ctx := context.Background()
	chat := func() {
		t.Helper()
		if _, err := a.ChatCompletion(ctx, chatRequest("gpt-4o", helloBody)); err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
	}

	chat()
	chat()
	if n := f.TokenRequests(); n != 1 {
		t.Fatalf("token requests after two calls = %d, want 1 (cached)", n)
	}
	if got := f.LastRequest().Header.Get("Authorization"); got == "" || f.LastRequest().Header.Get("api-key") != "" {
		t.Fatalf("want only a bearer token upstream, got Authorization %q api-key %q", got, f.LastRequest().Header.Get("api-key"))
	}
	first := f.LastRequest().Header.Get("Authorization")

	// Past the refresh point (4/5 of the lifetime) and the expiry.
	time.Sleep(1100 * time.Millisecond)
	chat()
	if n := f.TokenRequests(); n != 2 {
		t.Fatalf("token requests after expiry = %d, want 2", n)
	}
	if f.LastRequest().Header.Get("Authorization") == first {
		t.Fatal("expired token reused")
	}

	// Concurrent callers after expiry share one token request.
	time.Sleep(1100 * time.Millisecond)
	f.SetTokenDelay(100 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := a.ChatCompletion(ctx, chatRequest("gpt-4o", helloBody)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent ChatCompletion: %v", err)
	}
	if n := f.TokenRequests(); n != 3 {
		t.Fatalf("token requests after 16 concurrent calls = %d, want 3", n)
	}
}

func TestEntraTokenRevokedIsRefetched(t *testing.T) {
	f := startFake(t, fakeOptions())
	a := configured(t, entraConfig(f))
	ctx := context.Background()
	if _, err := a.ChatCompletion(ctx, chatRequest("gpt-4o", helloBody)); err != nil {
		t.Fatal(err)
	}
	f.ExpireTokens()
	_, err := a.ChatCompletion(ctx, chatRequest("gpt-4o", helloBody))
	if oe := asOpenAIError(t, err); oe.Status != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", oe.Status)
	}
	if _, err := a.ChatCompletion(ctx, chatRequest("gpt-4o", helloBody)); err != nil {
		t.Fatalf("call after a rejected token should fetch a new one: %v", err)
	}
	if n := f.TokenRequests(); n != 2 {
		t.Fatalf("token requests = %d, want 2", n)
	}
}

func TestEntraCallerCancelDoesNotFailOthers(t *testing.T) {
	f := startFake(t, fakeOptions())
	f.SetTokenDelay(200 * time.Millisecond)
	a := configured(t, entraConfig(f))
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody))
		done <- err
	}()
	if _, err := a.ChatCompletion(short, chatRequest("gpt-4o", helloBody)); err == nil {
		t.Fatal("call with a 20ms deadline succeeded despite a 200ms token endpoint")
	}
	if err := <-done; err != nil {
		t.Fatalf("patient caller failed: %v", err)
	}
	if n := f.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
}

func TestAuthFailures(t *testing.T) {
	f := startFake(t, fakeOptions())
	tests := []struct {
		name       string
		cfg        *provider.Config
		wantStatus int
		wantCode   string
	}{
		{"wrong api key", &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `"}`),
			Credentials: map[string]string{CredAPIKey: "bad-key-xyz"}}, http.StatusUnauthorized, ""},
		{"wrong client secret", &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `","auth":"entra","tenant_id":"` + testTenant + `","client_id":"` + testClientID + `","authority_host":"` + f.URL() + `"}`),
			Credentials: map[string]string{CredClientSecret: "bad-secret-xyz"}}, http.StatusUnauthorized, "entra_token_failed"},
		{"wrong scope", &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `","auth":"entra","tenant_id":"` + testTenant + `","client_id":"` + testClientID + `","authority_host":"` + f.URL() + `","scope":"https://example.invalid/.default"}`),
			Credentials: map[string]string{CredClientSecret: testSecret}}, http.StatusUnauthorized, "entra_token_failed"},
		{"unknown static bearer token", &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `","auth":"entra"}`),
			Credentials: map[string]string{CredBearerToken: "not-issued"}}, http.StatusUnauthorized, ""},
		{"authority down", &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `","auth":"entra","tenant_id":"t","client_id":"c","authority_host":"http://127.0.0.1:1"}`),
			Credentials: map[string]string{CredClientSecret: testSecret}}, http.StatusBadGateway, "entra_unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := configured(t, tt.cfg)
			_, err := a.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody))
			oe := asOpenAIError(t, err)
			if oe.Status != tt.wantStatus || oe.Code != tt.wantCode {
				t.Errorf("got %d %q (%v), want %d %q", oe.Status, oe.Code, oe, tt.wantStatus, tt.wantCode)
			}
			for _, secret := range []string{testSecret, "bad-secret-xyz", "bad-key-xyz", "not-issued"} {
				if strings.Contains(oe.Message, secret) {
					t.Errorf("error message leaks a credential: %q", oe.Message)
				}
			}
		})
	}
}

func TestStaticBearerToken(t *testing.T) {
	f := startFake(t, fakeOptions())
	// Get a token the fake issued, as an operator's own token source would.
	a := configured(t, entraConfig(f))
	if _, err := a.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody)); err != nil {
		t.Fatal(err)
	}
	token := f.LastRequest().Header.Get("Authorization")[len("Bearer "):]
	b := configured(t, &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `","auth":"entra"}`),
		Credentials: map[string]string{CredBearerToken: token}})
	if _, err := b.ChatCompletion(context.Background(), chatRequest("gpt-4o", helloBody)); err != nil {
		t.Fatalf("static bearer token: %v", err)
	}
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("static token caused token requests: %d", n)
	}
}
