package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

const testKey = "sk-upstream-test"

// upstreamFake is an OpenAI-compatible chat endpoint: it checks the
// bearer token, answers with the last user message, and streams that
// answer as server-sent events ending in [DONE]. It records the last body
// it received.
func upstreamFake(t *testing.T, last *map[string]any) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
			http.Error(w, `{"error":{"message":"not found","type":"invalid_request_error"}}`, http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var req openai.ChatRequest
		if err := json.Unmarshal(raw, &req); err != nil || len(req.Messages) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"message":"bad body","type":"invalid_request_error"}}`)
			return
		}
		if last != nil {
			json.Unmarshal(raw, last)
		}
		text := "you said: " + req.Messages[len(req.Messages)-1].Content.String()
		usage := &openai.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(&openai.ChatCompletion{ID: "chatcmpl-1", Object: openai.ObjectChatCompletion, Created: 1700000000, Model: req.Model,
				Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: openai.RoleAssistant, Content: &text}, Logprobs: json.RawMessage("null"), FinishReason: openai.FinishStop}},
				Usage:   usage})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		stop := openai.FinishStop
		chunks := []openai.ChatChunk{
			{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Role: openai.RoleAssistant, Content: &text}}}},
			{Choices: []openai.ChunkChoice{{FinishReason: &stop}}},
		}
		if req.IncludeUsage() {
			chunks = append(chunks, openai.ChatChunk{Choices: []openai.ChunkChoice{}, Usage: usage})
		}
		for _, c := range chunks {
			c.ID, c.Object, c.Created, c.Model = "chatcmpl-1", openai.ObjectChatChunk, 1700000000, req.Model
			b, _ := json.Marshal(c)
			fmt.Fprintf(w, "data: %s\n\n", b)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func config(baseURL, key string) *provider.Config {
	return &provider.Config{Instance: "example", JSON: []byte(`{"base_url":"` + baseURL + `/v1"}`), Credentials: map[string]string{"api_key": key}}
}

// TestConformance runs the SDK's conformance suite against the plugin,
// served over gRPC as the host serves it, forwarding to the fake.
func TestConformance(t *testing.T) {
	up := upstreamFake(t, nil)
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:      &Forward{},
		Config:        config(up.URL, testKey),
		Model:         "gpt-test",
		Deterministic: true,
	})
}

// TestForward checks what the plugin sends and how it relays the
// upstream's failures.
func TestForward(t *testing.T) {
	var last map[string]any
	up := upstreamFake(t, &last)
	tests := []struct {
		name       string
		key, body  string
		wantStatus int // 0: success
	}{
		{name: "routed model and unknown fields", key: testKey, body: `{"model":"alias","messages":[{"role":"user","content":"hi"}],"x_vendor_field":{"a":1}}`},
		{name: "wrong key is the upstream's 401", key: "sk-wrong", body: `{"model":"alias","messages":[{"role":"user","content":"hi"}]}`, wantStatus: http.StatusUnauthorized},
		{name: "not a chat request", key: testKey, body: `{"model":"alias","messages":"hi"}`, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Forward{}
			if err := f.Configure(context.Background(), config(up.URL, tt.key)); err != nil {
				t.Fatal(err)
			}
			last = nil
			resp, err := f.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: "gpt-test"}, Body: []byte(tt.body)})
			if tt.wantStatus != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tt.wantStatus {
					t.Fatalf("err = %v, want an *openai.Error with status %d", err, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cc openai.ChatCompletion
			if err := json.Unmarshal(resp.Body, &cc); err != nil || *cc.Choices[0].Message.Content != "you said: hi" {
				t.Fatalf("response %s (%v)", resp.Body, err)
			}
			if last["model"] != "gpt-test" {
				t.Errorf("upstream saw model %v, want the routed gpt-test", last["model"])
			}
			if v, ok := last["x_vendor_field"].(map[string]any); !ok || v["a"] != 1.0 {
				t.Errorf("upstream saw x_vendor_field %v, want it as the client sent it", last["x_vendor_field"])
			}
		})
	}
}

// TestConfigureRejectsBrokenConfig: a config block that does not decode is
// reported as diagnostics, not a panic.
func TestConfigureRejectsBrokenConfig(t *testing.T) {
	err := (&Forward{}).Configure(context.Background(), &provider.Config{JSON: []byte(`{"base_url":42}`)})
	if err == nil {
		t.Fatal("Configure accepted a number as base_url")
	}
}
