package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// Test credentials shared by the fake and the plugin.
const (
	testKeyID  = "AKIDLLMPROXYTEST"
	testSecret = "bedrock-fake-secret-key"
	testRegion = "us-east-1"
	testModel  = "anthropic.claude-3-5-sonnet-20240620-v1:0"
)

// startFake starts a fake that accepts the test key pair and API key.
func startFake(t *testing.T) *bedrockfake.Fake {
	t.Helper()
	f := bedrockfake.New(bedrockfake.Options{AccessKeyID: testKeyID, SecretAccessKey: testSecret, APIKey: "bedrock-api-key-test", Region: testRegion})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// testConfig points an instance at the fake with the given credentials.
func testConfig(f *bedrockfake.Fake, api string, creds map[string]string) *provider.Config {
	cfg := map[string]string{"region": testRegion, "endpoint": f.URL(), "timeout": "30s"}
	if api != "" {
		cfg["api"] = api
	}
	raw, _ := json.Marshal(cfg)
	return &provider.Config{Instance: "bedrock_test", JSON: raw, Credentials: creds}
}

func staticCreds(secret string) map[string]string {
	return map[string]string{credAccessKeyID: testKeyID, credSecretAccessKey: secret}
}

// configured returns a provider configured against f with a fixed clock.
func configured(t *testing.T, f *bedrockfake.Fake, api string, creds map[string]string) *Bedrock {
	t.Helper()
	b := New()
	b.now = func() time.Time { return time.Unix(1700000000, 0) }
	if err := b.Configure(context.Background(), testConfig(f, api, creds)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	for _, api := range []string{apiConverse, apiInvoke} {
		t.Run(api, func(t *testing.T) {
			f := startFake(t)
			sdktest.RunProvider(t, sdktest.ProviderSuite{
				Provider:       New(),
				Config:         testConfig(f, api, staticCreds(testSecret)),
				Model:          testModel,
				Deterministic:  true,
				EmbeddingModel: "amazon.titan-embed-text-v2:0",
			})
		})
	}
}

func chatRequest(body string) *provider.Request {
	return &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(body)}
}

const helloBody = `{"model":"claude","messages":[{"role":"user","content":"Hello"}]}`

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name       string
		creds      map[string]string
		wantStatus int
		wantCode   string
	}{
		{"right secret", staticCreds(testSecret), 0, ""},
		{"wrong secret", staticCreds("not-the-secret"), http.StatusUnauthorized, "InvalidSignatureException"},
		{"unknown key", map[string]string{credAccessKeyID: "AKIDUNKNOWN", credSecretAccessKey: testSecret}, http.StatusUnauthorized, "UnrecognizedClientException"},
		{"api key", map[string]string{credAPIKey: "bedrock-api-key-test"}, 0, ""},
		{"wrong api key", map[string]string{credAPIKey: "nope"}, http.StatusUnauthorized, "UnrecognizedClientException"},
	}
	f := startFake(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := configured(t, f, "", tt.creds)
			_, err := b.ChatCompletion(context.Background(), chatRequest(helloBody))
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("ChatCompletion: %v", err)
				}
				return
			}
			var oe *openai.Error
			if !errors.As(err, &oe) {
				t.Fatalf("want *openai.Error, got %v", err)
			}
			if oe.Status != tt.wantStatus || oe.Code != tt.wantCode {
				t.Errorf("got %d %s (%s), want %d %s", oe.Status, oe.Code, oe.Message, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestCredentialRotation(t *testing.T) {
	f := startFake(t)
	b := configured(t, f, "", staticCreds("stale-secret"))
	if _, err := b.ChatCompletion(context.Background(), chatRequest(helloBody)); err == nil {
		t.Fatal("stale secret accepted")
	}
	if err := b.Configure(context.Background(), testConfig(f, "", staticCreds(testSecret))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ChatCompletion(context.Background(), chatRequest(helloBody)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

func TestInvokeServesAnthropicOnly(t *testing.T) {
	f := startFake(t)
	b := configured(t, f, apiInvoke, staticCreds(testSecret))
	req := &provider.Request{Meta: provider.Meta{Model: "amazon.nova-lite-v1:0"}, Body: []byte(helloBody)}
	_, err := b.ChatCompletion(context.Background(), req)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || oe.Param != "model" {
		t.Fatalf("want a 400 about model, got %v", err)
	}
	if f.Requests() != 0 {
		t.Errorf("a request reached the upstream")
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := New().ChatCompletion(context.Background(), chatRequest(helloBody))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusServiceUnavailable {
		t.Fatalf("want 503 before Configure, got %v", err)
	}
}
