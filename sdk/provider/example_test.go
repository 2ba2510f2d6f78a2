package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// Shout is a complete provider: it answers every chat request with the
// last user message in capitals, followed by a configurable suffix.
type Shout struct {
	suffix atomic.Pointer[string]
}

// Describe says what the plugin is and what an instance's config block
// may hold.
func (s *Shout) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:    "shout",
		Version: "1.0.0",
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "suffix", Type: "string", Description: `Text appended to every reply (default "!").`},
		}},
		Models: []openai.Model{{ID: "shout", Object: openai.ObjectModel, OwnedBy: "example"}},
	}, nil
}

// Configure takes an instance's config; it may run again at any time.
func (s *Shout) Configure(_ context.Context, cfg *provider.Config) error {
	var c struct {
		Suffix *string `json:"suffix"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	suffix := "!"
	if c.Suffix != nil {
		suffix = *c.Suffix
	}
	s.suffix.Store(&suffix)
	return nil
}

// reply decodes the request and builds the answer.
func (s *Shout) reply(req *provider.Request) (*openai.ChatRequest, string, error) {
	chat, err := req.Chat() // a 400 for the client when the JSON is not a chat request
	if err != nil {
		return nil, "", err
	}
	var last string
	for _, m := range chat.Messages {
		if m.Role == openai.RoleUser {
			last = m.Content.String()
		}
	}
	suffix := "!"
	if p := s.suffix.Load(); p != nil {
		suffix = *p
	}
	return chat, strings.ToUpper(last) + suffix, nil
}

// ChatCompletion answers a chat request with one chat.completion.
func (s *Shout) ChatCompletion(_ context.Context, req *provider.Request) (*provider.Response, error) {
	chat, text, err := s.reply(req)
	if err != nil {
		return nil, err
	}
	return provider.JSONResponse(&openai.ChatCompletion{
		ID: "chatcmpl-shout", Object: openai.ObjectChatCompletion, Created: time.Now().Unix(), Model: chat.Model,
		Choices: []openai.Choice{{
			Message:      openai.ResponseMessage{Role: openai.RoleAssistant, Content: &text},
			Logprobs:     json.RawMessage("null"),
			FinishReason: openai.FinishStop,
		}},
		Usage: &openai.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2},
	})
}

// ChatCompletionStream writes the same answer word by word, then a
// finishing chunk and, when asked for, a usage chunk.
func (s *Shout) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	chat, text, err := s.reply(req)
	if err != nil {
		return err
	}
	created := time.Now().Unix() // the same in every chunk
	chunk := func(d openai.Delta, finish *string) *openai.ChatChunk {
		return &openai.ChatChunk{ID: "chatcmpl-shout", Object: openai.ObjectChatChunk, Created: created, Model: chat.Model,
			Choices: []openai.ChunkChoice{{Delta: d, FinishReason: finish}}}
	}
	for i, word := range strings.SplitAfter(text, " ") {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := openai.Delta{Content: &word}
		if i == 0 {
			d.Role = openai.RoleAssistant
		}
		if err := provider.WriteChunk(w, chunk(d, nil)); err != nil {
			return err
		}
	}
	stop := openai.FinishStop
	if err := provider.WriteChunk(w, chunk(openai.Delta{}, &stop)); err != nil {
		return err
	}
	if chat.IncludeUsage() {
		return provider.WriteChunk(w, &openai.ChatChunk{ID: "chatcmpl-shout", Object: openai.ObjectChatChunk, Created: created, Model: chat.Model,
			Choices: []openai.ChunkChoice{}, Usage: &openai.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}})
	}
	return nil
}

// The interface guard catches a missing method at compile time.
var _ provider.Provider = (*Shout)(nil)

// A plugin's main function is one call. Built as llmproxy-provider-shout
// and dropped into the host's plugins directory, it serves every instance
// configured with type = "shout".
func ExampleServe() {
	provider.Serve(&Shout{})
}

// The host calls Describe, then Configure with the instance's config
// block as JSON, then the chat methods; a plugin's own tests can call
// them directly too.
func Example_provider() {
	ctx := context.Background()
	s := &Shout{}
	d, _ := s.Describe(ctx)
	fmt.Println(d.Name, d.Version, d.ConfigSchema.Attributes[0].Name)

	if err := s.Configure(ctx, &provider.Config{Instance: "loud", JSON: []byte(`{"suffix":"!!!"}`)}); err != nil {
		fmt.Println(err)
	}
	resp, err := s.ChatCompletion(ctx, &provider.Request{
		Body: []byte(`{"model":"shout","messages":[{"role":"user","content":"hello there"}]}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var cc openai.ChatCompletion
	json.Unmarshal(resp.Body, &cc)
	fmt.Println(*cc.Choices[0].Message.Content, cc.Choices[0].FinishReason)

	_, err = s.ChatCompletion(ctx, &provider.Request{Body: []byte(`{"model":`)})
	var oe *openai.Error
	if errors.As(err, &oe) {
		fmt.Println(oe.Status, oe.Type)
	}
	// Output:
	// shout 1.0.0 suffix
	// HELLO THERE!!! stop
	// 400 invalid_request_error
}

// TestShoutConforms keeps the example honest: Shout passes the
// conformance suite every plugin runs.
func TestShoutConforms(t *testing.T) {
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:      &Shout{},
		Config:        &provider.Config{Instance: "loud", JSON: []byte(`{"suffix":"!"}`)},
		Model:         "shout",
		Deterministic: true,
	})
}
