package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// spineFakeKey is the upstream key the openai instance presents to the fake.
const spineFakeKey = "sk-upstream-fake-key"

// spineFake starts an in-process OpenAI fake that stops when the test ends.
func spineFake(t *testing.T) *openaifake.Server {
	t.Helper()
	fake := openaifake.New(openaifake.Options{Key: spineFakeKey})
	fake.Start()
	t.Cleanup(fake.Close)
	return fake
}

// spineOpenAIBlock is an openai provider instance named name whose upstream is
// fake, serving the gpt-* and text-embedding-* routes when routes is true.
func spineOpenAIBlock(name string, fake *openaifake.Server, routes bool) string {
	b := fmt.Sprintf(`
provider %q {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = "%s/v1"
  }
}
`, name, spineFakeKey, fake.URL())
	if routes {
		b += fmt.Sprintf(`
route "gpt-*" {
  target %q {}
}
route "text-embedding-*" {
  target %q {}
}
`, name, name)
	}
	return b
}

// spineSDKGateway starts a host serving echo and an openai instance
// ("openai_prod") in front of a fresh fake.
func spineSDKGateway(t *testing.T) (*harness.Host, *openaifake.Server) {
	t.Helper()
	fake := spineFake(t)
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+spineOpenAIBlock("openai_prod", fake, true),
		harness.Options{WaitFor: []string{"echo", "openai_prod"}})
	return h, fake
}

// spineToolCall is one tool call as an SDK returned it.
type spineToolCall struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// spineResult is what one SDK call returned, in the shape test/node/sdk.mjs
// prints, so that both SDKs are held to the same expectations.
type spineResult struct {
	Object       string          `json:"object"`
	Model        string          `json:"model"`
	Content      *string         `json:"content"`
	FinishReason string          `json:"finish_reason"`
	TotalTokens  int64           `json:"total_tokens"`
	Chunks       int             `json:"chunks"`
	ToolCalls    []spineToolCall `json:"tool_calls"`
	Count        int             `json:"count"`
	Indexes      []int64         `json:"indexes"`
	Dimensions   []int           `json:"dimensions"`
	IDs          []string        `json:"ids"`

	// Set by the error scenario.
	Class      string  `json:"class"`
	NotFound   bool    `json:"not_found"`
	RateLimit  bool    `json:"rate_limit"`
	Status     int     `json:"status"`
	Code       *string `json:"code"`
	RetryAfter *string `json:"retry_after"`
}

// spineDriver runs one scenario of test/node/sdk.mjs with a given SDK.
type spineDriver func(t *testing.T, h *harness.Host, scenario, model, text string) spineResult

// spineNodeSDK runs test/node/sdk.mjs with the official OpenAI Node SDK.
func spineNodeSDK(t *testing.T, h *harness.Host, scenario, model, text string) spineResult {
	t.Helper()
	return runNode[spineResult](t, h, "sdk.mjs", scenario, model, text)
}

// spineTools are the tools offered in the tool scenarios.
var spineTools = []openai.ChatCompletionToolUnionParam{
	openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Current weather of a city."),
		Parameters: shared.FunctionParameters{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required":   []string{"city"},
		},
	}),
	openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        "get_time",
		Description: openai.String("Current time in a time zone."),
		Parameters: shared.FunctionParameters{
			"type":       "object",
			"properties": map[string]any{"tz": map[string]any{"type": "string"}},
			"required":   []string{"tz"},
		},
	}),
}

// spineGoSDK runs the same scenarios as sdk.mjs with github.com/openai/openai-go.
func spineGoSDK(t *testing.T, h *harness.Host, scenario, model, text string) spineResult {
	t.Helper()
	client := openai.NewClient(
		option.WithBaseURL(h.URL+"/v1/"),
		option.WithAPIKey(harness.Key),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(30*time.Second),
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	params := openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
	}
	var res spineResult
	switch scenario {
	case "chat":
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatalf("go sdk chat %s: %v", model, err)
		}
		content := c.Choices[0].Message.Content
		res = spineResult{Object: string(c.Object), Model: c.Model, Content: &content,
			FinishReason: c.Choices[0].FinishReason, TotalTokens: c.Usage.TotalTokens}
	case "stream", "tools-stream":
		if scenario == "stream" {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		} else {
			params.Tools = spineTools
			params.ParallelToolCalls = openai.Bool(true)
		}
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			res.Chunks++
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("go sdk %s: the accumulator refused chunk %d: %s", scenario, res.Chunks, stream.Current().RawJSON())
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("go sdk %s %s: %v", scenario, model, err)
		}
		if err := stream.Close(); err != nil {
			t.Fatalf("go sdk %s: close stream: %v", scenario, err)
		}
		if len(acc.Choices) == 0 {
			t.Fatalf("go sdk %s: the stream had no choices", scenario)
		}
		msg := acc.Choices[0].Message
		content := msg.Content
		res.Content = &content
		res.FinishReason = acc.Choices[0].FinishReason
		res.TotalTokens = acc.Usage.TotalTokens
		res.ToolCalls = spineGoToolCalls(msg.ToolCalls)
	case "tools":
		params.Tools = spineTools
		params.ParallelToolCalls = openai.Bool(true)
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatalf("go sdk tools %s: %v", model, err)
		}
		res.FinishReason = c.Choices[0].FinishReason
		res.ToolCalls = spineGoToolCalls(c.Choices[0].Message.ToolCalls)
	case "embeddings":
		e, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: model,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first input", "second input"}},
		})
		if err != nil {
			t.Fatalf("go sdk embeddings %s: %v", model, err)
		}
		res.Object, res.Count = string(e.Object), len(e.Data)
		for _, d := range e.Data {
			res.Indexes = append(res.Indexes, d.Index)
			res.Dimensions = append(res.Dimensions, len(d.Embedding))
		}
	case "models":
		pages := client.Models.ListAutoPaging(ctx)
		for pages.Next() {
			res.IDs = append(res.IDs, pages.Current().ID)
		}
		if err := pages.Err(); err != nil {
			t.Fatalf("go sdk models: %v", err)
		}
	case "error":
		_, err := client.Chat.Completions.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("go sdk chat %s: want an *openai.Error, got %v", model, err)
		}
		code := apiErr.Code
		res = spineResult{Class: fmt.Sprintf("%T", apiErr), Status: apiErr.StatusCode, Code: &code,
			NotFound: apiErr.StatusCode == 404, RateLimit: apiErr.StatusCode == 429}
		if apiErr.Response != nil {
			if ra := apiErr.Response.Header.Get("Retry-After"); ra != "" {
				res.RetryAfter = &ra
			}
		}
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
	return res
}

func spineGoToolCalls(calls []openai.ChatCompletionMessageToolCallUnion) []spineToolCall {
	var out []spineToolCall
	for _, tc := range calls {
		out = append(out, spineToolCall{ID: tc.ID, Type: string(tc.Type), Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	return out
}

// TestOfficialSDKs drives the gateway with the official OpenAI SDKs for
// Go and Node, through the echo plugin and through the openai plugin in
// front of the fake: both SDKs must see exactly what they would see from
// OpenAI itself.
func TestOfficialSDKs(t *testing.T) {
	h, fake := spineSDKGateway(t)
	weather := openaifake.ToolCall{ID: "call_weather_1", Name: "get_weather", Arguments: `{"city":"Paris"}`}
	clock := openaifake.ToolCall{ID: "call_time_2", Name: "get_time", Arguments: `{"tz":"Europe/Paris"}`}
	str := func(s string) *string { return &s }

	tests := []struct {
		name     string
		scenario string
		model    string
		text     string
		// upstream prepares the fake; nil leaves its default behaviour.
		upstream func(*openaifake.Server)
		want     spineResult
		// upstreamCalls is how many requests the fake must receive.
		upstreamCalls int64
		// sent is a substring the body that reached the fake must hold.
		sent string
	}{
		{
			name: "echo chat", scenario: "chat", model: "echo", text: "hello there",
			want: spineResult{Object: "chat.completion", Model: "echo", Content: str("You said: hello there"), FinishReason: "stop"},
		},
		{
			name: "echo stream", scenario: "stream", model: "echo", text: "one two three four",
			want: spineResult{Content: str("You said: one two three four"), FinishReason: "stop"},
		},
		{
			name: "echo embeddings", scenario: "embeddings", model: "echo-embed",
			want: spineResult{Object: "list", Count: 2, Indexes: []int64{0, 1}},
		},
		{
			name: "openai chat", scenario: "chat", model: "gpt-4o", text: "hello upstream",
			upstream:      func(f *openaifake.Server) { f.SetScenario(openaifake.Scenario{Reply: "Bonjour from upstream"}) },
			want:          spineResult{Object: "chat.completion", Model: "gpt-4o", Content: str("Bonjour from upstream"), FinishReason: "stop"},
			upstreamCalls: 1, sent: `"hello upstream"`,
		},
		{
			name: "openai stream", scenario: "stream", model: "gpt-4o-mini", text: "stream me",
			upstream: func(f *openaifake.Server) {
				f.SetScenario(openaifake.Scenario{Reply: "several words arrive one by one", SplitEvents: true})
			},
			want:          spineResult{Content: str("several words arrive one by one"), FinishReason: "stop"},
			upstreamCalls: 1, sent: `"include_usage":true`,
		},
		{
			name: "openai tool call", scenario: "tools", model: "gpt-4o", text: "weather in Paris?",
			upstream: func(f *openaifake.Server) {
				f.SetScenario(openaifake.Scenario{ToolCalls: []openaifake.ToolCall{weather}})
			},
			want: spineResult{FinishReason: "tool_calls", ToolCalls: []spineToolCall{
				{ID: weather.ID, Type: "function", Name: weather.Name, Arguments: weather.Arguments},
			}},
			upstreamCalls: 1, sent: `"get_weather"`,
		},
		{
			name: "openai parallel tool calls", scenario: "tools", model: "gpt-4o", text: "weather and time in Paris?",
			upstream: func(f *openaifake.Server) {
				f.SetScenario(openaifake.Scenario{ToolCalls: []openaifake.ToolCall{weather, clock}})
			},
			want: spineResult{FinishReason: "tool_calls", ToolCalls: []spineToolCall{
				{ID: weather.ID, Type: "function", Name: weather.Name, Arguments: weather.Arguments},
				{ID: clock.ID, Type: "function", Name: clock.Name, Arguments: clock.Arguments},
			}},
			upstreamCalls: 1, sent: `"parallel_tool_calls":true`,
		},
		{
			name: "openai parallel tool calls streamed", scenario: "tools-stream", model: "gpt-4o", text: "weather and time?",
			upstream: func(f *openaifake.Server) {
				f.SetScenario(openaifake.Scenario{ToolCalls: []openaifake.ToolCall{weather, clock}, SplitEvents: true})
			},
			want: spineResult{FinishReason: "tool_calls", ToolCalls: []spineToolCall{
				{ID: weather.ID, Type: "function", Name: weather.Name, Arguments: weather.Arguments},
				{ID: clock.ID, Type: "function", Name: clock.Name, Arguments: clock.Arguments},
			}},
			upstreamCalls: 1, sent: `"get_time"`,
		},
		{
			name: "openai embeddings", scenario: "embeddings", model: "text-embedding-3-small",
			want:          spineResult{Object: "list", Count: 2, Indexes: []int64{0, 1}},
			upstreamCalls: 1, sent: `"second input"`,
		},
		{
			name: "unknown model is not found", scenario: "error", model: "no-such-model",
			want: spineResult{NotFound: true, Status: 404, Code: str("model_not_found")},
		},
		{
			name: "upstream 429 reaches the client", scenario: "error", model: "gpt-4o",
			upstream: func(f *openaifake.Server) {
				f.FailNext(1, openaifake.Failure{Status: 429, RetryAfter: "7", Code: "rate_limit_exceeded"})
			},
			want:          spineResult{RateLimit: true, Status: 429, Code: str("rate_limit_exceeded"), RetryAfter: str("7")},
			upstreamCalls: 1,
		},
	}
	sdks := []struct {
		name string
		run  spineDriver
	}{
		{"go", spineGoSDK},
		{"node", spineNodeSDK},
	}
	for _, sdk := range sdks {
		for _, tt := range tests {
			t.Run(sdk.name+"/"+tt.name, func(t *testing.T) {
				fake.Reset()
				if tt.upstream != nil {
					tt.upstream(fake)
				}
				got := sdk.run(t, h, tt.scenario, tt.model, tt.text)
				spineCheckResult(t, tt.scenario, got, tt.want)
				if n := fake.Requests(); n != tt.upstreamCalls {
					t.Errorf("the fake received %d requests, want %d (retries must be off)", n, tt.upstreamCalls)
				}
				if tt.sent != "" {
					if body := fake.LastRequest().Body; !bytes.Contains(body, []byte(tt.sent)) {
						t.Errorf("the upstream request lacks %s: %s", tt.sent, body)
					}
				}
			})
		}
		t.Run(sdk.name+"/models", func(t *testing.T) {
			got := sdk.run(t, h, "models", "", "")
			for _, id := range []string{"echo", "echo-embed", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"} {
				if !slices.Contains(got.IDs, id) {
					t.Errorf("model list %v lacks %s", got.IDs, id)
				}
			}
			if slices.Contains(got.IDs, "no-such-model") || !slices.IsSorted(got.IDs) {
				t.Errorf("model list %v: want the served models, sorted", got.IDs)
			}
		})
	}
}

// spineCheckResult compares the fields that matter for scenario.
func spineCheckResult(t *testing.T, scenario string, got, want spineResult) {
	t.Helper()
	deref := func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		return *s
	}
	switch scenario {
	case "chat", "stream":
		if deref(got.Content) != deref(want.Content) || got.FinishReason != want.FinishReason {
			t.Errorf("content %q finish %q, want %q %q", deref(got.Content), got.FinishReason, deref(want.Content), want.FinishReason)
		}
		if got.TotalTokens <= 0 {
			t.Errorf("no usage: total_tokens = %d", got.TotalTokens)
		}
		if scenario == "chat" && (got.Object != want.Object || got.Model != want.Model) {
			t.Errorf("object %q model %q, want %q %q", got.Object, got.Model, want.Object, want.Model)
		}
		if scenario == "stream" && got.Chunks < 3 {
			t.Errorf("the SDK iterated %d chunks; a streamed reply has several", got.Chunks)
		}
	case "tools", "tools-stream":
		if got.FinishReason != want.FinishReason || !slices.Equal(got.ToolCalls, want.ToolCalls) {
			t.Errorf("finish %q tool calls %+v, want %q %+v", got.FinishReason, got.ToolCalls, want.FinishReason, want.ToolCalls)
		}
	case "embeddings":
		if got.Object != want.Object || got.Count != want.Count || !slices.Equal(got.Indexes, want.Indexes) {
			t.Errorf("embeddings %+v, want object %q count %d indexes %v", got, want.Object, want.Count, want.Indexes)
		}
		for i, d := range got.Dimensions {
			if d == 0 {
				t.Errorf("embedding %d is empty", i)
			}
		}
	case "error":
		if got.Status != want.Status || got.NotFound != want.NotFound || got.RateLimit != want.RateLimit ||
			deref(got.Code) != deref(want.Code) {
			t.Errorf("error %s status %d not_found %v rate_limit %v code %s, want status %d not_found %v rate_limit %v code %s",
				got.Class, got.Status, got.NotFound, got.RateLimit, deref(got.Code),
				want.Status, want.NotFound, want.RateLimit, deref(want.Code))
		}
		if want.RetryAfter != nil && deref(got.RetryAfter) != *want.RetryAfter {
			t.Errorf("Retry-After %s, want %s", deref(got.RetryAfter), *want.RetryAfter)
		}
	default:
		t.Fatalf("no check for scenario %q", scenario)
	}
}
