package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Version is the echo plugin's version.
const Version = "0.1.0"

// Echo is a provider that replies "You said: <last user message>". Its
// reply, id and usage depend only on the request, so tests can predict
// them; streams send the reply word by word.
type Echo struct {
	cfg atomic.Pointer[echoConfig]
	// sickUntil is when a fault-sick-* request's unhealthiness ends
	// (unix nanoseconds).
	sickUntil atomic.Int64
}

var (
	_ provider.Provider      = (*Echo)(nil)
	_ provider.Embedder      = (*Echo)(nil)
	_ provider.Passthrougher = (*Echo)(nil)
	_ provider.HealthChecker = (*Echo)(nil)
)

type echoConfig struct {
	// Prefix starts every reply.
	Prefix string `json:"prefix"`
	// ChunkDelay is a pause between streamed words, e.g. "20ms".
	ChunkDelay string `json:"chunk_delay"`
	delay      time.Duration
	// Faults turns on the fault models (see faults.go).
	Faults bool `json:"faults"`
}

// Describe implements provider.Provider.
func (e *Echo) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:    "echo",
		Version: Version,
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "prefix", Type: "string", Description: `Text every reply starts with (default "You said: ").`},
			{Name: "chunk_delay", Type: "string", Description: `Pause between streamed words, a Go duration such as "20ms".`},
			{Name: "faults", Type: "bool", Description: `Serve the fault-* models that panic, fail upstream auth, stay silent or send chunks with raw newlines (for testing the host).`},
		}},
		Models: []openai.Model{{ID: "echo", Object: openai.ObjectModel, OwnedBy: "llmproxy"}},
	}, nil
}

// Configure implements provider.Provider.
func (e *Echo) Configure(_ context.Context, cfg *provider.Config) error {
	c := &echoConfig{Prefix: "You said: "}
	if err := cfg.Decode(c); err != nil {
		return err
	}
	if c.ChunkDelay != "" {
		d, err := time.ParseDuration(c.ChunkDelay)
		if err != nil || d < 0 {
			return schema.Errorf([]string{"chunk_delay"}, "chunk_delay %q is not a duration such as \"20ms\"", c.ChunkDelay)
		}
		c.delay = d
	}
	e.cfg.Store(c)
	return nil
}

func (e *Echo) config() *echoConfig {
	if c := e.cfg.Load(); c != nil {
		return c
	}
	return &echoConfig{Prefix: "You said: "}
}

// reply is what the echo provider says to a chat request.
type reply struct {
	id     string
	model  string
	text   string
	usage  openai.Usage
	finish string
}

func (e *Echo) answer(req *provider.Request) (*reply, error) {
	chat, err := req.Chat()
	if err != nil {
		return nil, err
	}
	var last string
	for _, m := range chat.Messages {
		if m.Role == openai.RoleUser {
			last = m.Content.String()
		}
	}
	text := e.config().Prefix + last
	if docs := describeDocuments(chat, req); docs != "" {
		text += "\n" + docs
	}
	finish := openai.FinishStop
	words := strings.Fields(text)
	if max := chat.MaxOutputTokens(); max > 0 && len(words) > max {
		words = words[:max]
		text = strings.Join(words, " ")
		finish = openai.FinishLength
	}
	for _, stop := range chat.Stop {
		if i := strings.Index(text, stop); stop != "" && i >= 0 {
			text = text[:i]
			finish = openai.FinishStop
		}
	}
	prompt := 0
	for _, m := range chat.Messages {
		prompt += len(strings.Fields(m.Content.String())) + 3
	}
	completion := len(strings.Fields(text))
	sum := sha256.Sum256(req.Body)
	return &reply{
		id:     "chatcmpl-echo-" + hex.EncodeToString(sum[:8]),
		model:  chat.Model,
		text:   text,
		finish: finish,
		usage:  openai.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion},
	}, nil
}

// describeDocuments lists the documents a request carries, so that the
// document pipeline is visible end to end.
func describeDocuments(chat *openai.ChatRequest, req *provider.Request) string {
	var b strings.Builder
	for _, m := range chat.Messages {
		for _, p := range m.Content.Parts {
			if p.Type != openai.PartDocument || p.Document == nil {
				continue
			}
			d := req.Document(p.Document.ID)
			if d == nil {
				fmt.Fprintf(&b, "[document %s: missing]\n", p.Document.ID)
				continue
			}
			words := strings.Fields(d.Text)
			if len(words) > 12 {
				words = words[:12]
			}
			fmt.Fprintf(&b, "[document %q (%s, %d bytes): %s]\n", d.Name, d.MIMEType, len(d.Data), strings.Join(words, " "))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// created is fixed so that replies are reproducible.
const created = 1700000000

// ChatCompletion implements provider.Provider.
func (e *Echo) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if err := e.fault(ctx, req, false); err != nil {
		return nil, err
	}
	r, err := e.answer(req)
	if err != nil {
		return nil, err
	}
	text := r.text
	return provider.JSONResponse(&openai.ChatCompletion{
		ID:      r.id,
		Object:  openai.ObjectChatCompletion,
		Created: created,
		Model:   r.model,
		Choices: []openai.Choice{{
			Message:      openai.ResponseMessage{Role: openai.RoleAssistant, Content: &text},
			Logprobs:     json.RawMessage("null"),
			FinishReason: r.finish,
		}},
		Usage: &r.usage,
	})
}

// ChatCompletionStream implements provider.Provider.
func (e *Echo) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	if err := e.fault(ctx, req, true); err != nil {
		return err
	}
	r, err := e.answer(req)
	if err != nil {
		return err
	}
	chat, _ := req.Chat()
	delay := e.config().delay
	chunk := func(d openai.Delta, finish *string) *openai.ChatChunk {
		return &openai.ChatChunk{
			ID: r.id, Object: openai.ObjectChatChunk, Created: created, Model: r.model,
			Choices: []openai.ChunkChoice{{Delta: d, FinishReason: finish}},
		}
	}
	empty := ""
	if err := e.writeChunk(w, req, chunk(openai.Delta{Role: openai.RoleAssistant, Content: &empty}, nil)); err != nil {
		return err
	}
	words := strings.SplitAfter(r.text, " ")
	for _, word := range words {
		if word == "" {
			continue
		}
		if delay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		wd := word
		if err := e.writeChunk(w, req, chunk(openai.Delta{Content: &wd}, nil)); err != nil {
			return err
		}
	}
	finish := r.finish
	if err := e.writeChunk(w, req, chunk(openai.Delta{}, &finish)); err != nil {
		return err
	}
	if chat.IncludeUsage() {
		u := r.usage
		return e.writeChunk(w, req, &openai.ChatChunk{
			ID: r.id, Object: openai.ObjectChatChunk, Created: created, Model: r.model,
			Choices: []openai.ChunkChoice{}, Usage: &u,
		})
	}
	return nil
}

// Embeddings implements provider.Embedder with deterministic unit vectors
// of 8 dimensions derived from each input's hash.
func (e *Echo) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if err := e.fault(ctx, req, false); err != nil {
		return nil, err
	}
	var in openai.EmbeddingsRequest
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return nil, openai.InvalidRequest("", "invalid embeddings request: "+err.Error())
	}
	if len(in.Input.Texts) == 0 {
		return nil, openai.InvalidRequest("input", "input must be a string or a non-empty array of strings")
	}
	out := openai.EmbeddingsResponse{Object: openai.ObjectList, Model: in.Model}
	for i, text := range in.Input.Texts {
		sum := sha256.Sum256([]byte(text))
		vec := make([]float64, 8)
		var norm float64
		for j := range vec {
			v := float64(int16(binary.BigEndian.Uint16(sum[2*j:]))) / math.MaxInt16
			vec[j] = v
			norm += v * v
		}
		for j := range vec {
			vec[j] = math.Round(vec[j]/math.Sqrt(norm)*1e6) / 1e6
		}
		raw, _ := json.Marshal(vec)
		out.Data = append(out.Data, openai.Embedding{Object: openai.ObjectEmbedding, Index: i, Embedding: raw})
		n := len(strings.Fields(text))
		out.Usage.PromptTokens += n
		out.Usage.TotalTokens += n
	}
	return provider.JSONResponse(out)
}
