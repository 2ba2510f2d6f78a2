package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// msgsBackend is one provider behind the host's /v1/messages, with how to
// script its fake.
type msgsBackend struct {
	name  string
	model string
	// native is set when the host forwards the Messages body as it is
	// (anthropic, Claude on Bedrock); tool ids are then the provider's.
	native bool
	// text scripts a plain answer of msgsAnswer.
	text func()
	// tools scripts two parallel tool calls (get_weather, get_time).
	tools func()
	// toolIDs are the ids the provider issued for those calls.
	toolIDs []string
	// results returns the upstream body of the last model call, for the
	// tool results of the second turn.
	lastBody func() []byte
	// fail429 makes the next model call fail with 429 and Retry-After: 7.
	fail429 func()
	// breakStream makes the next stream fail after it started.
	breakStream func()
	// slow makes the answers pause between chunks, longer than the
	// stream_keepalive of the slow-gpt route (openai only).
	slow func()
}

const msgsAnswer = "It is sunny in Paris today, with a light breeze and 21 degrees."

// msgsGateway starts an OpenAI fake (route gpt-*, translated), a Bedrock
// fake (routes anthropic.* for Claude, served natively through
// InvokeModel, and amazon.* translated through Converse) and an
// Anthropic fake (route claude-*, native) behind a host, and returns the
// backends and the Anthropic fake.
func msgsGateway(t *testing.T, extraHCL ...string) (*harness.Host, []msgsBackend, *anthropicfake.Server, *bedrockfake.Fake) {
	t.Helper()
	oai := spineFake(t)
	br := bedrockfake.New(bedrockfake.Options{AccessKeyID: provAWSKeyID, SecretAccessKey: provAWSSecret, Region: "us-east-1"})
	brSrv := httptest.NewServer(br)
	t.Cleanup(brSrv.Close)
	ant := anthropicfake.New(anthropicfake.Options{APIKey: provAnthropicKey})
	antSrv := httptest.NewServer(ant.Handler())
	t.Cleanup(antSrv.Close)
	hcl := harness.APIKeyBlock + spineOpenAIBlock("openai_prod", oai, true) + fmt.Sprintf(`
provider "bedrock_us1" {
  type = "bedrock"
  credential "access_key_id" {
    from "value" { value = %q }
  }
  credential "secret_access_key" {
    from "value" { value = %q }
  }
  config {
    region   = "us-east-1"
    endpoint = %q
  }
}
route "anthropic.*" {
  target "bedrock_us1" {}
}
route "amazon.*" {
  target "bedrock_us1" {}
}
provider "anthropic_direct" {
  type = "anthropic"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = %q
  }
}
route "claude-*" {
  target "anthropic_direct" {}
}
provider "anthropic_backup" {
  type = "anthropic"
  credential "api_key" {
    from "value" { value = %[4]q }
  }
  config {
    base_url = %[5]q
  }
}
route "claude-failover" {
  strategy = "failover"
  target "anthropic_direct" { model = "claude-sonnet-4-5" }
  target "anthropic_backup" { model = "claude-sonnet-4-5" }
}
middleware "pii" {
  type = "guardrail"
  config {
    deny_keywords = ["build a bomb"]
  }
}
route "claude-guarded" {
  middleware = ["pii"]
  target "anthropic_direct" { model = "claude-sonnet-4-5" }
}
route "claude-mixed" {
  strategy = "failover"
  target "anthropic_direct" { model = "claude-sonnet-4-5" }
  target "openai_prod" { model = "gpt-4o" }
}
route "slow-gpt" {
  target "openai_prod" {
    model            = "gpt-4o"
    stream_keepalive = "40ms"
  }
}
`, provAWSKeyID, provAWSSecret, brSrv.URL, provAnthropicKey, antSrv.URL) + strings.Join(extraHCL, "\n")
	h := harness.Start(t, hcl, harness.Options{WaitFor: []string{"openai_prod", "bedrock_us1", "anthropic_direct", "anthropic_backup", "pii"}})
	weather := openaifake.ToolCall{ID: "call_weather_1", Name: "get_weather", Arguments: `{"city":"Paris"}`}
	clock := openaifake.ToolCall{ID: "call_time_2", Name: "get_time", Arguments: `{"timezone":"Europe/Paris"}`}
	brText := func() {
		br.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: msgsAnswer}}, StopReason: "end_turn",
			Usage: bedrockfake.Usage{Input: 20, Output: 9, Cache: true, CacheRead: 6, CacheWrite: 3}, ChunkSize: 5})
	}
	brTools := func() {
		br.SetReply(bedrockfake.Reply{
			Blocks: []bedrockfake.Block{
				{Text: "Let me check both."},
				{ToolUse: &bedrockfake.ToolUse{ID: "tooluse_weather_01", Name: "get_weather", Input: `{"city": "Paris"}`}},
				{ToolUse: &bedrockfake.ToolUse{ID: "tooluse_time_02", Name: "get_time", Input: `{"timezone": "Europe/Paris"}`}},
			},
			StopReason: "tool_use", Usage: bedrockfake.Usage{Input: 20, Output: 9}, ChunkSize: 4, SplitFrames: true,
		})
	}
	brFail := func() {
		f := bedrockfake.Throttling
		f.RetryAfter = "7"
		br.FailNext(1, f)
	}
	brBreak := func() {
		br.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: msgsAnswer}}, StopReason: "end_turn",
			Usage: bedrockfake.Usage{Input: 20, Output: 9}, ChunkSize: 5, Exception: "throttlingException", ExceptionAfter: 4})
	}
	brLast := func() []byte { return br.LastRequest().Body }
	return h, []msgsBackend{
		{
			name:  "openai",
			model: "gpt-4o",
			text:  func() { oai.SetScenario(openaifake.Scenario{Reply: msgsAnswer, SplitEvents: true}) },
			tools: func() {
				oai.SetScenario(openaifake.Scenario{ToolCalls: []openaifake.ToolCall{weather, clock}, SplitEvents: true})
			},
			toolIDs:  []string{weather.ID, clock.ID},
			lastBody: func() []byte { return oai.LastRequest().Body },
			fail429: func() {
				oai.FailNext(1, openaifake.Failure{Status: http.StatusTooManyRequests, RetryAfter: "7", Code: "rate_limit_exceeded"})
			},
			breakStream: func() {
				oai.SetScenario(openaifake.Scenario{Reply: msgsAnswer, Break: openaifake.BreakError, BreakAfter: 3})
			},
			slow: func() {
				oai.SetScenario(openaifake.Scenario{Reply: "Sunny in Paris.", ChunkDelay: 120 * time.Millisecond})
			},
		},
		{
			name: "bedrock", model: provBedrockModel, native: true,
			text: brText, tools: brTools, toolIDs: []string{"tooluse_weather_01", "tooluse_time_02"},
			lastBody: brLast, fail429: brFail, breakStream: brBreak,
		},
		{
			name: "bedrock-converse", model: "amazon.nova-pro-v1:0",
			text: brText, tools: brTools, toolIDs: []string{"tooluse_weather_01", "tooluse_time_02"},
			lastBody: brLast, fail429: brFail, breakStream: brBreak,
		},
		{
			name: "anthropic", model: "claude-sonnet-4-5", native: true,
			text: func() {
				ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(msgsAnswer)},
					Usage: anthropicfake.Usage{InputTokens: 14, OutputTokens: 9, CacheReadInputTokens: 6, CacheCreationInputTokens: 3}, ChunkSize: 5, Pings: true})
			},
			tools: func() {
				ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{
					anthropicfake.Text("Let me check both."),
					anthropicfake.ToolUse("toolu_weather_01", "get_weather", map[string]any{"city": "Paris"}),
					anthropicfake.ToolUse("toolu_time_02", "get_time", map[string]any{"timezone": "Europe/Paris"}),
				}, ChunkSize: 4, SplitEvents: true})
			},
			toolIDs:  []string{"toolu_weather_01", "toolu_time_02"},
			lastBody: func() []byte { return ant.LastRequest().Body },
			fail429: func() {
				ant.FailNext(1, anthropicfake.Failure{Status: http.StatusTooManyRequests, RetryAfter: "7"})
			},
			breakStream: func() {
				ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(msgsAnswer)}, ChunkSize: 5, ErrorAfter: 3})
			},
		},
	}, ant, br
}

// msgsClient is the official Anthropic Go SDK pointed at the host,
// authenticating with x-api-key, without retries.
func msgsClient(h *harness.Host, key string) *anthropic.Client {
	c := anthropic.NewClient(option.WithBaseURL(h.URL), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

var msgsTools = []anthropic.ToolUnionParam{
	anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
		Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}, "get_weather"),
	anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
		Properties: map[string]any{"timezone": map[string]any{"type": "string"}}, Required: []string{"timezone"}}, "get_time"),
}

// msgsStream runs a streamed request and returns the event types in
// order and the message the SDK's accumulator folded from them.
func msgsStream(t *testing.T, c *anthropic.Client, p anthropic.MessageNewParams) ([]string, anthropic.Message) {
	t.Helper()
	st := c.Messages.NewStreaming(context.Background(), p)
	defer st.Close()
	var (
		types []string
		msg   anthropic.Message
	)
	for st.Next() {
		ev := st.Current()
		types = append(types, ev.Type)
		if err := msg.Accumulate(ev); err != nil {
			t.Fatalf("the SDK's accumulator refused event %s: %v", ev.Type, err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v (events so far %v)", err, types)
	}
	return types, msg
}

// checkSequence checks an event sequence against Anthropic's grammar:
// message_start, blocks opened, filled and closed one at
// a time, then message_delta and message_stop; it returns the sequence
// with repeated deltas folded (the Go SDK does not hand pings over), e.g. "start block(delta) delta stop".
func checkSequence(t *testing.T, types []string) string {
	t.Helper()
	var folded []string
	for _, ty := range types {
		if ty == "ping" {
			continue
		}
		if ty == "content_block_delta" && len(folded) > 0 && folded[len(folded)-1] == ty {
			continue
		}
		folded = append(folded, ty)
	}
	s := strings.Join(folded, " ")
	if !strings.HasPrefix(s, "message_start ") || !strings.HasSuffix(s, " message_delta message_stop") {
		t.Errorf("event sequence %v", types)
	}
	return s
}

// TestMessagesGoSDK drives /v1/messages with the official Anthropic Go
// SDK against an OpenAI-backed and a Bedrock-backed route: a message, a
// stream, parallel tool use with results in a second turn (streamed),
// and errors (429 with Retry-After, an invalid request, a wrong key).
func TestMessagesGoSDK(t *testing.T) {
	h, backends, _, _ := msgsGateway(t)
	c := msgsClient(h, harness.Key)
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("text", func(t *testing.T) {
				b.text()
				m, err := c.Messages.New(ctx, anthropic.MessageNewParams{
					Model: anthropic.Model(b.model), MaxTokens: 256,
					System:   []anthropic.TextBlockParam{{Text: "You are a concise assistant."}},
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather like in Paris?"))},
				})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(m.ID, "msg_") || m.Role != "assistant" || m.StopReason != anthropic.StopReasonEndTurn ||
					len(m.Content) != 1 || m.Content[0].Type != "text" || m.Content[0].Text != msgsAnswer || m.Usage.OutputTokens == 0 {
					t.Errorf("message %s", m.RawJSON())
				}
				if strings.HasPrefix(b.name, "bedrock") && (m.Usage.InputTokens != 20 || m.Usage.CacheReadInputTokens != 6 || m.Usage.CacheCreationInputTokens != 3 || m.Usage.OutputTokens != 9) {
					t.Errorf("usage %s, want input 20 (cache read 6, write 3), output 9", m.Usage.RawJSON())
				}
			})
			t.Run("stream", func(t *testing.T) {
				b.text()
				types, m := msgsStream(t, c, anthropic.MessageNewParams{
					Model: anthropic.Model(b.model), MaxTokens: 256,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather like in Paris?"))},
				})
				if got := checkSequence(t, types); got != "message_start content_block_start content_block_delta content_block_stop message_delta message_stop" {
					t.Errorf("folded sequence %q", got)
				}
				if n := strings.Count(strings.Join(types, " "), "content_block_delta"); n < 2 {
					t.Errorf("%d text deltas, want the answer in several", n)
				}
				if len(m.Content) != 1 || m.Content[0].Text != msgsAnswer || m.StopReason != anthropic.StopReasonEndTurn ||
					m.Usage.OutputTokens == 0 || m.Usage.InputTokens == 0 {
					t.Errorf("accumulated message %s", m.RawJSON())
				}
				if strings.HasPrefix(b.name, "bedrock") && (m.Usage.InputTokens != 20 || m.Usage.CacheReadInputTokens != 6 || m.Usage.CacheCreationInputTokens != 3 || m.Usage.OutputTokens != 9) {
					t.Errorf("streamed usage %s, want input 20 (cache read 6, write 3), output 9", m.Usage.RawJSON())
				}
			})
			t.Run("parallel tools with results", func(t *testing.T) {
				b.tools()
				first := anthropic.MessageNewParams{
					Model: anthropic.Model(b.model), MaxTokens: 256, Tools: msgsTools,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What are the weather and the local time in Paris?"))},
				}
				types, m := msgsStream(t, c, first)
				checkSequence(t, types)
				var uses []anthropic.ToolUseBlock
				for _, cb := range m.Content {
					if cb.Type == "tool_use" {
						uses = append(uses, cb.AsToolUse())
					}
				}
				if m.StopReason != anthropic.StopReasonToolUse || len(uses) != 2 {
					t.Fatalf("first turn %s", m.RawJSON())
				}
				wantInputs := []string{`{"city":"Paris"}`, `{"timezone":"Europe/Paris"}`}
				for i, u := range uses {
					var in any
					if err := json.Unmarshal(u.Input, &in); err != nil {
						t.Errorf("tool %d input %s: %v", i, u.Input, err)
					}
					compact, _ := json.Marshal(in)
					wantID := u.ID
					if b.native {
						wantID = b.toolIDs[i]
					}
					if !b.native && !strings.HasPrefix(u.ID, "toolu_") || u.ID != wantID || u.Name != []string{"get_weather", "get_time"}[i] || string(compact) != wantInputs[i] {
						t.Errorf("tool use %d: id %q name %q input %s", i, u.ID, u.Name, u.Input)
					}
				}
				// The same turn, not streamed, must give the same calls.
				b.tools()
				nm, err := c.Messages.New(ctx, first)
				if err != nil {
					t.Fatal(err)
				}
				if len(nm.Content) != len(m.Content) || nm.StopReason != anthropic.StopReasonToolUse {
					t.Errorf("non-streamed first turn %s, streamed %s", nm.RawJSON(), m.RawJSON())
				}
				b.text()
				second := first
				second.Messages = append(slices.Clone(first.Messages), m.ToParam(), anthropic.NewUserMessage(
					anthropic.NewToolResultBlock(uses[0].ID, "sunny, 21 degrees", false),
					anthropic.NewToolResultBlock(uses[1].ID, "14:05", false),
				))
				types, final := msgsStream(t, c, second)
				checkSequence(t, types)
				if len(final.Content) != 1 || final.Content[0].Text != msgsAnswer {
					t.Errorf("second turn %s", final.RawJSON())
				}
				// The provider got its own tool ids back with the results.
				up := string(b.lastBody())
				for _, id := range b.toolIDs {
					if strings.Count(up, `"`+id+`"`) < 2 {
						t.Errorf("upstream second turn does not carry tool id %q as call and result: %s", id, up)
					}
				}
				if !strings.Contains(up, "sunny, 21 degrees") || !strings.Contains(up, "14:05") {
					t.Errorf("upstream second turn lacks the tool results: %s", up)
				}
			})
			t.Run("429 with retry-after", func(t *testing.T) {
				b.text()
				b.fail429()
				_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
					Model: anthropic.Model(b.model), MaxTokens: 16,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
				})
				var ae *anthropic.Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %v, want an *anthropic.Error", err)
				}
				if ae.StatusCode != http.StatusTooManyRequests || ae.Response.Header.Get("Retry-After") != "7" ||
					ae.RequestID == "" || gjsonType(ae.RawJSON()) != "rate_limit_error" {
					t.Errorf("status %d retry-after %q request-id %q body %s", ae.StatusCode, ae.Response.Header.Get("Retry-After"), ae.RequestID, ae.RawJSON())
				}
			})
		})
	}
	t.Run("keepalive comments", func(t *testing.T) {
		backends[0].slow()
		types, m := msgsStream(t, c, anthropic.MessageNewParams{
			Model: "slow-gpt", MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather?"))},
		})
		checkSequence(t, types)
		if len(m.Content) != 1 || m.Content[0].Text != "Sunny in Paris." {
			t.Errorf("message %s", m.RawJSON())
		}
	})
	t.Run("invalid request", func(t *testing.T) {
		_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "gpt-4o", MaxTokens: 0,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var ae *anthropic.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || gjsonType(ae.RawJSON()) != "invalid_request_error" ||
			!strings.Contains(ae.RawJSON(), "max_tokens") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		_, err := msgsClient(h, "sk-not-a-key").Messages.New(ctx, anthropic.MessageNewParams{
			Model: "gpt-4o", MaxTokens: 10,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var ae *anthropic.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || gjsonType(ae.RawJSON()) != "authentication_error" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "no-such-model", MaxTokens: 10,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var ae *anthropic.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || gjsonType(ae.RawJSON()) != "not_found_error" {
			t.Fatalf("error %v", err)
		}
	})
}

// gjsonType returns error.type of an Anthropic error body.
func gjsonType(raw string) string {
	var b struct {
		Type  string `json:"type"`
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(raw), &b) != nil || b.Type != "error" {
		return ""
	}
	return b.Error.Type
}

// sseEvents splits an SSE body into its events' names and data, failing
// on anything that is not "event:" + "data:" (comments are skipped).
func sseEvents(t *testing.T, body []byte) (names []string, data []string) {
	t.Helper()
	for _, ev := range strings.Split(strings.TrimSpace(string(body)), "\n\n") {
		if strings.HasPrefix(ev, ":") {
			continue
		}
		lines := strings.Split(ev, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("malformed event %q in %s", ev, body)
		}
		names = append(names, strings.TrimPrefix(lines[0], "event: "))
		data = append(data, strings.TrimPrefix(lines[1], "data: "))
	}
	return names, data
}

// TestMessagesWire checks /v1/messages on the wire: the exact event
// sequence with its ping, the headers, both ways of presenting the key,
// the anthropic-version check, errors before routing and after a stream
// started, and count_tokens on a provider that cannot count.
func TestMessagesWire(t *testing.T) {
	h, backends, ant, br := msgsGateway(t)
	const body = `{"model":"gpt-4o","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`
	t.Run("stream events", func(t *testing.T) {
		backends[0].text()
		status, hdr, out := h.Do(t, "POST", "/v1/messages", body, "Authorization", "", "x-api-key", harness.Key, "anthropic-version", "2023-06-01")
		if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") || hdr.Get("request-id") == "" ||
			hdr.Get("request-id") != hdr.Get("X-Request-Id") {
			t.Fatalf("status %d headers %v body %s", status, hdr, out)
		}
		names, data := sseEvents(t, out)
		if len(names) < 7 || strings.Join(names[:4], " ") != "message_start ping content_block_start content_block_delta" ||
			strings.Join(names[len(names)-3:], " ") != "content_block_stop message_delta message_stop" {
			t.Fatalf("events %v", names)
		}
		var text strings.Builder
		for i, n := range names {
			var d struct {
				Type  string `json:"type"`
				Delta struct {
					Type, Text string
				} `json:"delta"`
			}
			if err := json.Unmarshal([]byte(data[i]), &d); err != nil || d.Type != n {
				t.Fatalf("event %s data %s", n, data[i])
			}
			if n == "content_block_delta" {
				text.WriteString(d.Delta.Text)
			}
		}
		if !strings.Contains(data[len(data)-2], `"stop_reason":"end_turn"`) || text.String() != msgsAnswer {
			t.Errorf("message_delta %s, text %q", data[len(data)-2], text.String())
		}
	})
	t.Run("fields dropped by the translation are named", func(t *testing.T) {
		const req = `{"model":%q,"max_tokens":16,"top_k":5,"messages":[{"role":"user","content":"Hello"}]}`
		backends[0].text()
		status, hdr, out := h.Do(t, "POST", "/v1/messages", fmt.Sprintf(req, "gpt-4o"))
		if status != 200 || hdr.Get("X-Llmproxy-Ignored") != "top_k" {
			t.Errorf("translated: status %d ignored %q body %s", status, hdr.Get("X-Llmproxy-Ignored"), out)
		}
		backends[3].text()
		status, hdr, out = h.Do(t, "POST", "/v1/messages", fmt.Sprintf(req, "claude-sonnet-4-5"))
		if status != 200 || hdr.Get("X-Llmproxy-Ignored") != "" || !strings.Contains(string(ant.LastRequest().Body), `"top_k":5`) {
			t.Errorf("native: status %d ignored %q body %s", status, hdr.Get("X-Llmproxy-Ignored"), out)
		}
	})
	t.Run("keepalive comments", func(t *testing.T) {
		backends[0].slow()
		status, _, out := h.Do(t, "POST", "/v1/messages", strings.Replace(body, "gpt-4o", "slow-gpt", 1))
		if status != 200 || !strings.HasPrefix(string(out), ": keepalive\n\n") {
			t.Fatalf("status %d body %q, want it to start with a keepalive comment", status, out)
		}
		names, _ := sseEvents(t, out)
		if names[0] != "message_start" || names[len(names)-1] != "message_stop" {
			t.Errorf("events %v", names)
		}
	})
	t.Run("bad anthropic-version", func(t *testing.T) {
		status, _, out := h.Do(t, "POST", "/v1/messages", body, "anthropic-version", "latest")
		if status != 400 || gjsonType(string(out)) != "invalid_request_error" || !strings.Contains(string(out), "anthropic-version") {
			t.Errorf("status %d body %s", status, out)
		}
	})
	t.Run("no key", func(t *testing.T) {
		status, hdr, out := h.Do(t, "POST", "/v1/messages", body, "Authorization", "")
		if status != 401 || gjsonType(string(out)) != "authentication_error" || hdr.Get("request-id") == "" ||
			!strings.Contains(string(out), `"request_id":"`+hdr.Get("request-id")+`"`) {
			t.Errorf("status %d headers %v body %s", status, hdr, out)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		status, _, out := h.Do(t, "GET", "/v1/messages", "")
		if status != 405 || gjsonType(string(out)) != "invalid_request_error" {
			t.Errorf("status %d body %s", status, out)
		}
	})
	for _, b := range backends {
		t.Run("error mid-stream/"+b.name, func(t *testing.T) {
			b.breakStream()
			status, _, out := h.Do(t, "POST", "/v1/messages", strings.Replace(body, "gpt-4o", b.model, 1))
			names, data := sseEvents(t, out)
			if status != 200 || len(names) < 3 || names[0] != "message_start" || names[len(names)-1] != "error" ||
				slices.Contains(names, "message_stop") || gjsonType(data[len(data)-1]) == "" {
				t.Errorf("status %d events %v last %s", status, names, data[len(data)-1])
			}
		})
	}
	for _, tc := range []struct {
		name, model string
		script      func()
	}{
		{"anthropic", "claude-sonnet-4-5", func() {
			ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(msgsAnswer)}, ChunkSize: 5, CutAfter: 4})
		}},
		{"bedrock", provBedrockModel, func() {
			br.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: msgsAnswer}}, StopReason: "end_turn", ChunkSize: 5, CutAfter: 4})
		}},
	} {
		t.Run("native stream cut/"+tc.name, func(t *testing.T) {
			tc.script()
			status, _, out := h.Do(t, "POST", "/v1/messages", strings.Replace(body, "gpt-4o", tc.model, 1))
			events := strings.Split(strings.TrimSpace(string(out)), "\n\n")
			last := events[len(events)-1]
			if status != 200 || !strings.HasPrefix(last, "event: error\ndata: ") || gjsonType(strings.TrimPrefix(last, "event: error\ndata: ")) != "api_error" ||
				strings.Contains(string(out), "event: message_stop") {
				t.Errorf("status %d body %q", status, out)
			}
		})
	}
	t.Run("count_tokens unavailable", func(t *testing.T) {
		status, _, out := h.Do(t, "POST", "/v1/messages/count_tokens", `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}`)
		if status != 404 || gjsonType(string(out)) != "not_found_error" || !strings.Contains(string(out), "count_tokens") {
			t.Errorf("status %d body %s", status, out)
		}
	})
}

// msgsNodeResult is what test/node/messages.mjs prints.
type msgsNodeResult struct {
	Message   *anthropic.Message `json:"message"`
	RequestID *string            `json:"request_id"`
	msgsNodeStream
	First, Second *msgsNodeStream
	Events        []string `json:"events"`
	Status        *int     `json:"status"`
	Type          string   `json:"type"`
	RetryAfter    *string  `json:"retry_after"`
	Class         string   `json:"class"`
}

type msgsNodeStream struct {
	Events []string           `json:"events"`
	Deltas []string           `json:"deltas"`
	Final  *anthropic.Message `json:"final"`
}

// runMessagesNode runs one scenario of test/node/messages.mjs with the
// official Anthropic Node SDK against the host.
func runMessagesNode(t *testing.T, h *harness.Host, scenario, model string) msgsNodeResult {
	t.Helper()
	return runNode[msgsNodeResult](t, h, "messages.mjs", scenario, model)
}

// TestMessagesNodeSDK drives /v1/messages with the official Anthropic
// Node SDK against an OpenAI-backed and a Bedrock-backed route: a
// message, a stream read through the SDK's MessageStream (every event in
// order, finalMessage()), parallel tool use with results in a second
// streamed turn, a 429 with Retry-After and an error after a stream
// started.
func TestMessagesNodeSDK(t *testing.T) {
	h, backends, ant, _ := msgsGateway(t)
	t.Run("native thinking with signature", func(t *testing.T) {
		const thought = "Paris weather: check the tool."
		ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Thinking(thought), anthropicfake.Text(msgsAnswer)}, ChunkSize: 8})
		res := runMessagesNode(t, h, "stream", "claude-sonnet-4-5")
		checkSequence(t, res.Events)
		if !slices.Contains(res.Deltas, "thinking_delta") || !slices.Contains(res.Deltas, "signature_delta") {
			t.Errorf("deltas %v", res.Deltas)
		}
		f := res.Final
		if f == nil || len(f.Content) != 2 || f.Content[0].Thinking != thought || f.Content[0].Signature != anthropicfake.Signature(thought) || f.Content[1].Text != msgsAnswer {
			t.Errorf("final message %+v", f)
		}
	})
	t.Run("keepalive comments", func(t *testing.T) {
		backends[0].slow()
		res := runMessagesNode(t, h, "stream", "slow-gpt")
		checkSequence(t, res.Events)
		if f := res.Final; f == nil || len(f.Content) != 1 || f.Content[0].Text != "Sunny in Paris." {
			t.Errorf("final message %+v", res.Final)
		}
	})
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("text", func(t *testing.T) {
				b.text()
				res := runMessagesNode(t, h, "text", b.model)
				m := res.Message
				if m == nil || !strings.HasPrefix(m.ID, "msg_") || len(m.Content) != 1 || m.Content[0].Text != msgsAnswer ||
					m.StopReason != anthropic.StopReasonEndTurn || res.RequestID == nil || *res.RequestID == "" {
					t.Errorf("result %+v", res)
				}
			})
			t.Run("stream", func(t *testing.T) {
				b.text()
				res := runMessagesNode(t, h, "stream", b.model)
				if got := checkSequence(t, res.Events); got != "message_start content_block_start content_block_delta content_block_stop message_delta message_stop" {
					t.Errorf("folded sequence %q", got)
				}
				if len(res.Deltas) < 2 || slices.ContainsFunc(res.Deltas, func(d string) bool { return d != "text_delta" }) {
					t.Errorf("deltas %v", res.Deltas)
				}
				if f := res.Final; f == nil || len(f.Content) != 1 || f.Content[0].Text != msgsAnswer || f.StopReason != anthropic.StopReasonEndTurn || f.Usage.OutputTokens == 0 {
					t.Errorf("final message %+v", res.Final)
				}
			})
			t.Run("parallel tools with results", func(t *testing.T) {
				b.tools()
				// The script runs both turns against the same scripted
				// answer; the second is checked by what reached the
				// provider: its own tool ids, as calls and as results.
				res := runMessagesNode(t, h, "tools", b.model)
				if res.First == nil || res.Second == nil {
					t.Fatalf("result %+v", res)
				}
				checkSequence(t, res.First.Events)
				checkSequence(t, res.Second.Events)
				var ids []string
				for _, cb := range res.First.Final.Content {
					if cb.Type == "tool_use" {
						ids = append(ids, cb.ID)
					}
				}
				if len(ids) != 2 || res.First.Final.StopReason != anthropic.StopReasonToolUse || !slices.Contains(res.First.Deltas, "input_json_delta") {
					t.Fatalf("first turn %+v", res.First)
				}
				up := string(b.lastBody())
				for _, id := range b.toolIDs {
					if strings.Count(up, `"`+id+`"`) < 2 {
						t.Errorf("upstream second turn does not carry tool id %q as call and result: %s", id, up)
					}
				}
				if !strings.Contains(up, "sunny, 21 degrees") || !strings.Contains(up, "14:05") {
					t.Errorf("upstream second turn lacks the tool results: %s", up)
				}
			})
			t.Run("429 with retry-after", func(t *testing.T) {
				b.text()
				b.fail429()
				res := runMessagesNode(t, h, "rate_limited", b.model)
				if res.Status == nil || *res.Status != 429 || res.Type != "rate_limit_error" || res.RetryAfter == nil || *res.RetryAfter != "7" ||
					res.Class != "RateLimitError" || res.RequestID == nil || *res.RequestID == "" {
					t.Errorf("result %+v", res)
				}
			})
			t.Run("error mid-stream", func(t *testing.T) {
				b.breakStream()
				res := runMessagesNode(t, h, "stream_error", b.model)
				if len(res.Events) == 0 || res.Events[0] != "message_start" || res.Type == "" || res.Class != "APIError" {
					t.Errorf("result %+v", res)
				}
			})
		})
	}
}

// TestMessagesNative checks what only the native path keeps: thinking
// blocks with their signatures (streamed as thinking_delta and
// signature_delta, and accepted back by the fake only with the signature
// it issued), cache_control and anthropic-beta reaching Anthropic, the
// Bedrock InvokeModel body (anthropic_version, anthropic_beta, no model),
// and count_tokens on an anthropic route.
func TestMessagesNative(t *testing.T) {
	h, _, ant, br := msgsGateway(t)
	c := msgsClient(h, harness.Key)
	ctx := context.Background()
	const thought = "The user asks about Paris; I should check the weather tool."
	t.Run("thinking signatures round trip", func(t *testing.T) {
		ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Thinking(thought), anthropicfake.Text(msgsAnswer)}, ChunkSize: 16})
		first := anthropic.MessageNewParams{
			Model: "claude-sonnet-4-5", MaxTokens: 4096,
			Thinking: anthropic.ThinkingConfigParamOfEnabled(2048),
			System:   []anthropic.TextBlockParam{{Text: "You are a concise assistant.", CacheControl: anthropic.NewCacheControlEphemeralParam()}},
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather like in Paris?"))},
		}
		types, m := msgsStream(t, c, first)
		checkSequence(t, types)
		if len(m.Content) != 2 || m.Content[0].Type != "thinking" || m.Content[0].Thinking != thought ||
			m.Content[0].Signature != anthropicfake.Signature(thought) || m.Content[1].Text != msgsAnswer {
			t.Fatalf("message %s", m.RawJSON())
		}
		up := ant.LastRequest()
		if !strings.Contains(string(up.Body), `"cache_control":{"type":"ephemeral"}`) || !strings.Contains(string(up.Body), `"budget_tokens":2048`) {
			t.Errorf("upstream body lost cache_control or thinking: %s", up.Body)
		}
		second := first
		second.Messages = append(slices.Clone(first.Messages), m.ToParam(),
			anthropic.NewUserMessage(anthropic.NewTextBlock("And tomorrow?")))
		if _, err := c.Messages.New(ctx, second, option.WithHeader("anthropic-beta", "interleaved-thinking-2025-05-14")); err != nil {
			t.Fatalf("second turn with the signed thinking block: %v", err)
		}
		up = ant.LastRequest()
		if up.Header.Get("anthropic-beta") != "interleaved-thinking-2025-05-14" || up.Header.Get("anthropic-version") == "" ||
			!strings.Contains(string(up.Body), anthropicfake.Signature(thought)) {
			t.Errorf("upstream headers %v body %s", up.Header, up.Body)
		}
		// A tampered signature is refused by the upstream, which shows
		// that it was checked there and not lost on the way.
		bad := second
		bad.Messages = slices.Clone(second.Messages)
		bad.Messages[1] = anthropic.NewAssistantMessage(anthropic.NewThinkingBlock("forged", thought), anthropic.NewTextBlock(msgsAnswer))
		_, err := c.Messages.New(ctx, bad)
		var ae *anthropic.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || !strings.Contains(ae.RawJSON(), "signature") {
			t.Errorf("forged signature: %v", err)
		}
	})
	t.Run("bedrock invoke body", func(t *testing.T) {
		br.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: msgsAnswer}}, StopReason: "end_turn", Usage: bedrockfake.Usage{Input: 5, Output: 3}})
		m, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: provBedrockModel, MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		}, option.WithHeader("anthropic-beta", "context-1m-2025-08-07"))
		if err != nil || m.Content[0].Text != msgsAnswer {
			t.Fatalf("message %v: %v", m, err)
		}
		last := br.LastRequest()
		var body map[string]json.RawMessage
		if err := json.Unmarshal(last.Body, &body); err != nil {
			t.Fatal(err)
		}
		if last.Operation != "invoke" || string(body["anthropic_version"]) != `"bedrock-2023-05-31"` ||
			string(body["anthropic_beta"]) != `["context-1m-2025-08-07"]` || body["model"] != nil || body["stream"] != nil {
			t.Errorf("operation %q body %s", last.Operation, last.Body)
		}
	})
	t.Run("a 529 is retried or failed over on the native path", func(t *testing.T) {
		ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Thinking(thought), anthropicfake.Text(msgsAnswer)}})
		ant.FailNext(1, anthropicfake.Failure{Status: 529})
		before := ant.Requests()
		m, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-failover", MaxTokens: 4096, Thinking: anthropic.ThinkingConfigParamOfEnabled(2048),
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Content) != 2 || m.Content[0].Signature != anthropicfake.Signature(thought) || ant.Requests()-before < 2 {
			t.Errorf("message %s after %d upstream requests", m.RawJSON(), ant.Requests()-before)
		}
		if !strings.Contains(string(ant.LastRequest().Body), `"model":"claude-sonnet-4-5"`) {
			t.Errorf("the target's model was not sent: %s", ant.LastRequest().Body)
		}
	})
	t.Run("a route mixing native and other targets is translated", func(t *testing.T) {
		ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(msgsAnswer)}})
		var hr *http.Response
		resp, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-mixed", MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		}, option.WithResponseInto(&hr), option.WithJSONSet("top_k", 5))
		if err != nil || resp.Content[0].Text != msgsAnswer || hr.Header.Get("X-Llmproxy-Ignored") != "top_k" {
			t.Fatalf("message %v (ignored %q): %v", resp, hr.Header.Get("X-Llmproxy-Ignored"), err)
		}
		// The anthropic plugin's own translation served it: no top_k
		// reached the upstream, since the chat request had none.
		if strings.Contains(string(ant.LastRequest().Body), "top_k") {
			t.Errorf("upstream body %s", ant.LastRequest().Body)
		}
	})
	t.Run("middleware keeps a route off the native path", func(t *testing.T) {
		ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(msgsAnswer)}})
		before := ant.Requests()
		_, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-guarded", MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("how to build a bomb"))},
		})
		var ae *anthropic.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || gjsonType(ae.RawJSON()) != "invalid_request_error" ||
			!strings.Contains(ae.RawJSON(), "content_policy_violation") || ant.Requests() != before {
			t.Fatalf("error %v; upstream requests %d", err, ant.Requests()-before)
		}
		m, err := c.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-guarded", MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("mail me at jane@example.com"))},
		})
		if err != nil || m.Content[0].Text != msgsAnswer {
			t.Fatalf("message %v: %v", m, err)
		}
		if up := string(ant.LastRequest().Body); !strings.Contains(up, "[EMAIL]") || strings.Contains(up, "jane@example.com") {
			t.Errorf("the guardrail did not mask the upstream request: %s", up)
		}
	})
	t.Run("count_tokens", func(t *testing.T) {
		n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
			Model:    "claude-sonnet-4-5",
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather like in Paris?"))},
		})
		if err != nil || n.InputTokens <= 0 {
			t.Fatalf("count_tokens %v: %v", n, err)
		}
		if p := ant.LastRequest().Path; p != "/v1/messages/count_tokens" {
			t.Errorf("upstream path %q", p)
		}
	})
}

// TestMessagesTranslatedParts sends what the translation maps to the
// gateway's own chat features — a base64 PDF and a plain-text document
// (the gateway's document parts), an image, a thinking budget — through
// the Go SDK to the OpenAI-backed route, and checks what reached the
// provider.
func TestMessagesTranslatedParts(t *testing.T) {
	h, backends, _, _ := msgsGateway(t)
	c := msgsClient(h, harness.Key)
	backends[0].text()
	// A real one-page PDF: the gateway's document resolver reads it.
	pdf := base64.StdEncoding.EncodeToString(pdfFile(
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		"<< /Length 44 >>\nstream\nBT /F1 12 Tf 20 100 Td (Revenue up) Tj ET\nendstream",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	))
	m, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "gpt-4o", MaxTokens: 8192, Thinking: anthropic.ThinkingConfigParamOfEnabled(2048),
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(
			anthropic.ContentBlockParamUnion{OfDocument: &anthropic.DocumentBlockParam{
				Source: anthropic.DocumentBlockParamSourceUnion{OfBase64: &anthropic.Base64PDFSourceParam{Data: pdf}},
				Title:  anthropic.String("report.pdf"),
			}},
			anthropic.NewDocumentBlock(anthropic.PlainTextSourceParam{Data: "Quarterly numbers: up 4%."}),
			anthropic.NewImageBlockBase64("image/png", "iVBORw0KGgo="),
			anthropic.NewTextBlock("Summarise the report."),
		)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Content) != 1 || m.Content[0].Text != msgsAnswer {
		t.Errorf("message %s", m.RawJSON())
	}
	up := string(backends[0].lastBody())
	for _, want := range []string{`"reasoning_effort":"low"`, `data:application/pdf;base64,` + pdf, `"filename":"report.pdf"`, `data:image/png;base64,iVBORw0KGgo=`, "Summarise the report.",
		// The plain-text document went through the gateway's document
		// resolver, which gives OpenAI its text.
		`Document document.txt:\n\nQuarterly numbers: up 4%.`} {
		if !strings.Contains(up, want) {
			t.Errorf("upstream body lacks %s: %s", want, up)
		}
	}
}

// TestMessagesNativeTokenLimits checks that the native path settles a
// key's token limit with the usage the answer reports, JSON and streamed,
// rather than keeping the reservation (prompt estimate + max_tokens).
func TestMessagesNativeTokenLimits(t *testing.T) {
	h, _, ant, _ := msgsGateway(t, `
limits {
  limit "per-key" {
    key = "*"
    tpm = 100000
  }
}
`)
	// The answer reports 14 + 6 + 3 input and 9 output tokens: 32.
	ant.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(msgsAnswer)},
		Usage: anthropicfake.Usage{InputTokens: 14, OutputTokens: 9, CacheReadInputTokens: 6, CacheCreationInputTokens: 3}})
	const maxTokens = 20000
	body := func(stream bool) string {
		return fmt.Sprintf(`{"model":"claude-sonnet-4-5","max_tokens":%d,"stream":%v,"messages":[{"role":"user","content":"Hello"}]}`, maxTokens, stream)
	}
	remaining := func(hdr http.Header) int {
		n, err := strconv.Atoi(hdr.Get("x-ratelimit-remaining-tokens"))
		if err != nil {
			t.Fatalf("x-ratelimit-remaining-tokens %q", hdr.Get("x-ratelimit-remaining-tokens"))
		}
		return n
	}
	// Each answer's own reservation shows in its header; what the
	// previous answers left behind shows in the next one's.
	for _, stream := range []bool{false, true} {
		status, hdr, out := h.Do(t, "POST", "/v1/messages", body(stream))
		if status != 200 {
			t.Fatalf("status %d: %s", status, out)
		}
		first := remaining(hdr)
		status, hdr, out = h.Do(t, "POST", "/v1/messages", body(false))
		if status != 200 {
			t.Fatalf("status %d: %s", status, out)
		}
		// Settled with the usage, the first request holds 32 tokens, not
		// its reservation of about maxTokens: the second request sees
		// all but those 32 (and what refilled meanwhile) minus its own
		// reservation, itself about what the first one saw.
		if second := remaining(hdr); second < first-100 {
			t.Errorf("stream=%v: remaining tokens %d then %d: the first request was not settled with its usage", stream, first, second)
		}
	}
}
