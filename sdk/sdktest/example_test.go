package sdktest_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// created is the fixed creation time of Parrot's answers.
const created = 1700000000

// Parrot repeats the last user message: the smallest provider that passes
// the conformance suite.
type Parrot struct{}

func (Parrot) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{Name: "parrot", Version: "1.0.0", ConfigSchema: schema.Schema{}}, nil
}

func (Parrot) Configure(_ context.Context, cfg *provider.Config) error {
	var c struct{}
	return cfg.Decode(&c) // a broken config block becomes diagnostics
}

func (Parrot) answer(req *provider.Request) (*openai.ChatRequest, string, error) {
	chat, err := req.Chat()
	if err != nil {
		return nil, "", err
	}
	return chat, chat.Messages[len(chat.Messages)-1].Content.String(), nil
}

func (p Parrot) ChatCompletion(_ context.Context, req *provider.Request) (*provider.Response, error) {
	chat, text, err := p.answer(req)
	if err != nil {
		return nil, err
	}
	return provider.JSONResponse(&openai.ChatCompletion{
		ID: "chatcmpl-parrot", Object: openai.ObjectChatCompletion, Created: created, Model: chat.Model,
		Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: openai.RoleAssistant, Content: &text},
			Logprobs: json.RawMessage("null"), FinishReason: openai.FinishStop}},
		Usage: &openai.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2},
	})
}

func (p Parrot) ChatCompletionStream(_ context.Context, req *provider.Request, w provider.ChunkWriter) error {
	chat, text, err := p.answer(req)
	if err != nil {
		return err
	}
	stop := openai.FinishStop
	chunks := []*openai.ChatChunk{{Choices: []openai.ChunkChoice{{Delta: openai.Delta{Role: openai.RoleAssistant, Content: &text}}}},
		{Choices: []openai.ChunkChoice{{FinishReason: &stop}}}}
	if chat.IncludeUsage() {
		chunks = append(chunks, &openai.ChatChunk{Choices: []openai.ChunkChoice{}, Usage: &openai.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}})
	}
	for _, c := range chunks {
		c.ID, c.Object, c.Created, c.Model = "chatcmpl-parrot", openai.ObjectChatChunk, created, chat.Model
		if err := provider.WriteChunk(w, c); err != nil {
			return err
		}
	}
	return nil
}

// A plugin proves itself from its own tests: RunProvider serves it over
// the same gRPC adapters the host uses and checks Describe, Configure,
// chat, streams (with and without usage), invalid requests, cancellation
// and health. Point Provider at a fake of the upstream's wire protocol.
func ExampleRunProvider() {
	// In the plugin's parrot_test.go:
	conformance := func(t *testing.T) {
		sdktest.RunProvider(t, sdktest.ProviderSuite{
			Provider:      Parrot{},
			Config:        &provider.Config{Instance: "parrot", JSON: []byte(`{}`)},
			Model:         "parrot",
			Deterministic: true, // the stream must fold to the JSON answer
		})
	}
	_ = conformance
}

// TestParrotConforms runs the example's suite, so that the example stays
// true.
func TestParrotConforms(t *testing.T) {
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:      Parrot{},
		Config:        &provider.Config{Instance: "parrot", JSON: []byte(`{}`)},
		Model:         "parrot",
		Deterministic: true,
	})
}
