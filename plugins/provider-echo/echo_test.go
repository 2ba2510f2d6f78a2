package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:       &Echo{},
		Config:         &provider.Config{Instance: "echo", JSON: []byte(`{}`)},
		Model:          "echo",
		Deterministic:  true,
		EmbeddingModel: "echo-embed",
	})
}

func TestReply(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantText   string
		wantFinish string
	}{
		{"last user message", `{"model":"echo","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":"hi there"}]}`, "You said: hi there", "stop"},
		{"array content", `{"model":"echo","messages":[{"role":"user","content":[{"type":"text","text":"a "},{"type":"text","text":"b"}]}]}`, "You said: a b", "stop"},
		{"max tokens", `{"model":"echo","max_tokens":3,"messages":[{"role":"user","content":"one two three four"}]}`, "You said: one", "length"},
		{"stop sequence", `{"model":"echo","stop":["three"],"messages":[{"role":"user","content":"one two three four"}]}`, "You said: one two ", "stop"},
	}
	e := &Echo{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.ChatCompletion(context.Background(), &provider.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			var cc openai.ChatCompletion
			if err := json.Unmarshal(resp.Body, &cc); err != nil {
				t.Fatal(err)
			}
			if got := *cc.Choices[0].Message.Content; got != tt.wantText {
				t.Errorf("text = %q, want %q", got, tt.wantText)
			}
			if cc.Choices[0].FinishReason != tt.wantFinish {
				t.Errorf("finish = %q, want %q", cc.Choices[0].FinishReason, tt.wantFinish)
			}
		})
	}
}

func TestDocumentsAreReported(t *testing.T) {
	body := `{"model":"echo","messages":[{"role":"user","content":[{"type":"text","text":"summarise"},{"type":"document","document":{"id":"doc_0"}}]}]}`
	req := &provider.Request{Body: []byte(body), Documents: []provider.Document{{
		ID: "doc_0", Name: "quantum.md", MIMEType: "text/markdown", Data: []byte("# Quantum\nQubits are fun."), Text: "Quantum Qubits are fun.",
	}}}
	resp, err := (&Echo{}).ChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Body), `[document \"quantum.md\" (text/markdown, 25 bytes): Quantum Qubits are fun.]`) {
		t.Errorf("reply does not report the document: %s", resp.Body)
	}
}

func TestConfigureRejectsBadDelay(t *testing.T) {
	err := (&Echo{}).Configure(context.Background(), &provider.Config{JSON: []byte(`{"chunk_delay":"soon"}`)})
	if err == nil || !strings.Contains(err.Error(), "chunk_delay") {
		t.Fatalf("want a chunk_delay diagnostic, got %v", err)
	}
}
