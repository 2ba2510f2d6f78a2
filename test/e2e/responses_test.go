package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The Responses API tests drive /v1/responses with the official OpenAI
// SDKs (Go here, Node in test/node/responses.mjs) through llmproxy to the
// Anthropic and Bedrock fakes, which answer in their own wire protocols.

// Scripted answers of the Responses tests.
const (
	respAnswer = "Paris is the capital of France."
	respFinal  = "It is 18 degrees in Paris."
	respCity   = `{"city":"Paris"}`
	// respOtherKey is a second API key: it must not see the first key's
	// stored responses.
	respOtherKey       = "sk-llmp-e2e-responses-other-key-0123456789"
	respAnthropicModel = "claude-sonnet-4-5"
	respBedrockModel   = "anthropic.claude-3-haiku-20240307-v1:0"
)

// respFakes are the Anthropic and Bedrock fakes of the Responses tests.
// Each answers according to mode and to the request: in "tools" mode a
// request without a tool result gets a get_weather call and one with a
// result gets respFinal, so that a whole round trip runs in one SDK
// session.
type respFakes struct {
	anthropic *anthropicfake.Server
	bedrock   *bedrockfake.Fake

	mu     sync.Mutex
	mode   string
	bodies map[string][]byte
}

func (f *respFakes) setMode(m string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
	f.bodies = map[string][]byte{}
}

// last returns the last request body backend received.
func (f *respFakes) last(backend string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[backend]
}

// serve wraps a fake: it records the request body and scripts the answer.
func (f *respFakes) serve(backend string, next http.Handler) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Method == http.MethodPost {
			f.mu.Lock()
			f.bodies[backend] = body
			mode := f.mode
			f.mu.Unlock()
			hasResult := bytes.Contains(body, []byte(`"tool_result"`)) || bytes.Contains(body, []byte(`"toolResult"`))
			f.script(backend, mode, hasResult)
		}
		next.ServeHTTP(w, r)
	}))
}

func (f *respFakes) script(backend, mode string, hasResult bool) {
	text, call, callName, stop := respAnswer, "", "", "end_turn"
	switch {
	case mode == "tools" && !hasResult:
		text, call, callName, stop = "", respCity, "get_weather", "tool_use"
	case mode == "tools":
		text = respFinal
	case mode == "json":
		// Each plugin asks for the JSON answer as a forced tool call: the
		// anthropic plugin names it json_response, bedrock after the
		// schema.
		text, call, callName, stop = "", respCity, "json_response", "tool_use"
		if backend == "bedrock" {
			callName = "city"
		}
	}
	switch backend {
	case "anthropic":
		sc := anthropicfake.Scenario{StopReason: stop, ChunkSize: 7,
			Usage: anthropicfake.Usage{InputTokens: 20, OutputTokens: 9, CacheReadInputTokens: 4}}
		if mode == "fail" {
			sc.ErrorAfter = 4
		}
		if mode == "slow" {
			// Longer than the target's stream_keepalive: the stream
			// starts with keepalive comments.
			sc.ResponseDelay = 350 * time.Millisecond
		}
		if text != "" {
			sc.Content = append(sc.Content, anthropicfake.Text(text))
		}
		if call != "" {
			var input map[string]any
			json.Unmarshal([]byte(call), &input)
			sc.Content = append(sc.Content, anthropicfake.ToolUse("toolu_weather_01", callName, input))
		}
		f.anthropic.SetScenario(sc)
	case "bedrock":
		rp := bedrockfake.Reply{StopReason: stop, ChunkSize: 7, Usage: bedrockfake.Usage{Input: 20, Output: 9, CacheRead: 4, Cache: true}}
		if mode == "fail" {
			rp.Exception, rp.ExceptionAfter = "throttlingException", 4
		}
		if text != "" {
			rp.Blocks = append(rp.Blocks, bedrockfake.Block{Text: text})
		}
		if call != "" {
			rp.Blocks = append(rp.Blocks, bedrockfake.Block{ToolUse: &bedrockfake.ToolUse{ID: "tooluse_weather_01", Name: callName, Input: call}})
		}
		f.bedrock.SetReply(rp)
	}
}

// startRespGateway starts the fakes and a host with the memory response
// store in front of them: claude-* on anthropic, anthropic.* on bedrock.
func startRespGateway(t *testing.T) (*harness.Host, *respFakes) {
	t.Helper()
	f := &respFakes{
		anthropic: anthropicfake.New(anthropicfake.Options{APIKey: provAnthropicKey}),
		bedrock:   bedrockfake.New(bedrockfake.Options{AccessKeyID: provAWSKeyID, SecretAccessKey: provAWSSecret, Region: "us-east-1"}),
		bodies:    map[string][]byte{},
	}
	anth := f.serve("anthropic", f.anthropic.Handler())
	t.Cleanup(anth.Close)
	bed := f.serve("bedrock", f.bedrock)
	t.Cleanup(bed.Close)
	hcl := harness.APIKeyBlock + fmt.Sprintf(`
api_key "other" {
  key    = %q
  models = ["*"]
}

responses {
  store     = "memory"
  retention = "1h"
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

route "claude-*" {
  target "anthropic_direct" { stream_keepalive = "100ms" }
}

route "anthropic.*" {
  target "bedrock_us1" {}
}
`, respOtherKey, provAnthropicKey, anth.URL, provAWSKeyID, provAWSSecret, bed.URL)
	h := harness.Start(t, hcl, harness.Options{WaitFor: []string{"anthropic_direct", "bedrock_us1"}})
	return h, f
}

// respBackends are the backends every Responses scenario runs against.
var respBackends = []struct{ name, model string }{
	{"anthropic", respAnthropicModel},
	{"bedrock", respBedrockModel},
}

// respClient is an openai-go client of the host with key.
func respClient(h *harness.Host, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(h.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// respWeatherTool is the function tool of the round trips.
func respWeatherTool() []responses.ToolUnionParam {
	return []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{
		Name:        "get_weather",
		Description: openai.String("Current weather in a city."),
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required": []string{"city"}},
	}}}
}

// respFunctionCall returns the one function call of r.
func respFunctionCall(t *testing.T, r *responses.Response) responses.ResponseFunctionToolCall {
	t.Helper()
	var calls []responses.ResponseFunctionToolCall
	for _, it := range r.Output {
		if it.Type == "function_call" {
			calls = append(calls, it.AsFunctionCall())
		}
	}
	if len(calls) != 1 {
		t.Fatalf("%d function calls in %s", len(calls), r.RawJSON())
	}
	c := calls[0]
	if c.CallID == "" || c.Name != "get_weather" || !jsonEqual(c.Arguments, respCity) {
		t.Fatalf("function call %+v", c)
	}
	return c
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// respCheckUsage checks the usage the fakes report: 20 input tokens of
// which 4 cache reads (some providers count those apart), 9 output.
func respCheckUsage(t *testing.T, u responses.ResponseUsage) {
	t.Helper()
	if u.OutputTokens != 9 || u.InputTokens < 20 || u.InputTokensDetails.CachedTokens != 4 || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Errorf("usage %+v", u)
	}
}

func TestResponsesGoSDK(t *testing.T) {
	h, f := startRespGateway(t)
	client := respClient(h, harness.Key)
	ctx := context.Background()
	for _, b := range respBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("text", func(t *testing.T) {
				f.setMode("text")
				r, err := client.Responses.New(ctx, responses.ResponseNewParams{
					Model:           b.model,
					Instructions:    openai.String("Answer in one sentence."),
					Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("What is the capital of France?")},
					MaxOutputTokens: openai.Int(200),
				})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.Status != "completed" {
					t.Errorf("response %s", r.RawJSON())
				}
				if got := r.OutputText(); got != respAnswer {
					t.Errorf("output_text %q", got)
				}
				respCheckUsage(t, r.Usage)
				up := string(f.last(b.name))
				if !strings.Contains(up, "Answer in one sentence.") || !strings.Contains(up, "What is the capital of France?") {
					t.Errorf("upstream request lacks the instructions or the input: %s", up)
				}
			})

			t.Run("stream", func(t *testing.T) {
				f.setMode("text")
				stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
					Model: b.model,
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is the capital of France?")},
				})
				var types []string
				var text string
				var completed *responses.Response
				for i := int64(0); stream.Next(); i++ {
					ev := stream.Current()
					if ev.SequenceNumber != i {
						t.Errorf("event %d (%s) has sequence_number %d", i, ev.Type, ev.SequenceNumber)
					}
					if len(types) == 0 || types[len(types)-1] != ev.Type {
						types = append(types, ev.Type)
					}
					switch ev.Type {
					case "response.output_text.delta":
						text += ev.AsResponseOutputTextDelta().Delta
					case "response.completed":
						r := ev.AsResponseCompleted().Response
						completed = &r
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
					"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done",
					"response.completed"}
				if !slices.Equal(types, want) {
					t.Errorf("event types\n%v\nwant\n%v", types, want)
				}
				if text != respAnswer || completed == nil || completed.OutputText() != respAnswer {
					t.Fatalf("deltas %q, completed %+v", text, completed)
				}
				respCheckUsage(t, completed.Usage)
			})

			if b.name == "anthropic" {
				t.Run("keepalive comments", func(t *testing.T) {
					f.setMode("slow")
					status, _, raw := h.Do(t, http.MethodPost, "/v1/responses",
						`{"model":"`+b.model+`","input":"What is the capital of France?","stream":true}`)
					if status != http.StatusOK || !bytes.HasPrefix(raw, []byte(": keepalive\n\n")) || !bytes.Contains(raw, []byte("event: response.completed")) {
						t.Fatalf("status %d, stream %q", status, raw)
					}
					stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
						Model: b.model,
						Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is the capital of France?")},
					})
					var types []string
					for stream.Next() {
						types = append(types, stream.Current().Type)
					}
					if err := stream.Err(); err != nil || len(types) < 3 || types[0] != "response.created" || types[len(types)-1] != "response.completed" {
						t.Errorf("the SDK read %v, %v", types, err)
					}
				})
			}

			t.Run("error mid-stream", func(t *testing.T) {
				f.setMode("fail")
				stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
					Model: b.model,
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is the capital of France?")},
				})
				var types []string
				var failure responses.ResponseErrorEvent
				var failed *responses.Response
				for stream.Next() {
					ev := stream.Current()
					types = append(types, ev.Type)
					switch ev.Type {
					case "error":
						failure = ev.AsError()
					case "response.failed":
						r := ev.AsResponseFailed().Response
						failed = &r
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				t.Logf("events %v, error %s: %s", types, failure.Code, failure.Message)
				n := len(types)
				if n < 4 || types[0] != "response.created" || types[n-2] != "error" || types[n-1] != "response.failed" {
					t.Fatalf("events %v", types)
				}
				if failure.Code == "" || failure.Message == "" || failed == nil || failed.Status != "failed" || string(failed.Error.Code) != failure.Code {
					t.Errorf("error event %+v, failed response %+v", failure, failed)
				}
			})

			t.Run("function call round trip with input items", func(t *testing.T) {
				f.setMode("tools")
				first, err := client.Responses.New(ctx, responses.ResponseNewParams{
					Model: b.model, Tools: respWeatherTool(), Store: openai.Bool(false),
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris?")},
				})
				if err != nil {
					t.Fatal(err)
				}
				call := respFunctionCall(t, first)
				if respStored(first) {
					t.Error("store: false came back as true")
				}
				out := responses.ResponseInputItemParamOfFunctionCallOutput[string]("18 degrees, sunny")
				out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
				final, err := client.Responses.New(ctx, responses.ResponseNewParams{
					Model: b.model, Tools: respWeatherTool(),
					Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
						responses.ResponseInputItemParamOfMessage("Weather in Paris?", responses.EasyInputMessageRoleUser),
						{OfFunctionCall: ptr(call.ToParam())},
						out,
					}},
				})
				if err != nil {
					t.Fatal(err)
				}
				if got := final.OutputText(); got != respFinal {
					t.Errorf("final answer %q", got)
				}
				respCheckResult(t, f.last(b.name), call.CallID)
			})

			t.Run("function call round trip with previous_response_id", func(t *testing.T) {
				f.setMode("tools")
				first, err := client.Responses.New(ctx, responses.ResponseNewParams{
					Model: b.model, Tools: respWeatherTool(),
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris?")},
				})
				if err != nil {
					t.Fatal(err)
				}
				if !respStored(first) {
					t.Error("a stored response says store: false")
				}
				call := respFunctionCall(t, first)
				out := responses.ResponseInputItemParamOfFunctionCallOutput[string]("18 degrees, sunny")
				out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
				final, err := client.Responses.New(ctx, responses.ResponseNewParams{
					Model: b.model, Tools: respWeatherTool(), PreviousResponseID: openai.String(first.ID),
					Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}},
				})
				if err != nil {
					t.Fatal(err)
				}
				if got := final.OutputText(); got != respFinal || final.PreviousResponseID != first.ID {
					t.Errorf("final answer %q, previous_response_id %q", got, final.PreviousResponseID)
				}
				up := f.last(b.name)
				if !bytes.Contains(up, []byte("Weather in Paris?")) {
					t.Errorf("the stored input was not replayed: %s", up)
				}
				respCheckResult(t, up, call.CallID)

				// The stored response reads back for its key only.
				got, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
				if err != nil || got.ID != first.ID || respFunctionCall(t, got).CallID != call.CallID {
					t.Fatalf("GET %s: %v", first.ID, err)
				}
				var apiErr *openai.Error
				other := respClient(h, respOtherKey)
				_, err = other.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
				if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
					t.Errorf("another key read the response: %v", err)
				}
				_, err = other.Responses.New(ctx, responses.ResponseNewParams{
					Model: b.model, PreviousResponseID: openai.String(first.ID),
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("and now?")},
				})
				if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Param != "previous_response_id" {
					t.Errorf("another key chained on the response: %v", err)
				}
				if err := client.Responses.Delete(ctx, first.ID); err != nil {
					t.Fatalf("DELETE: %v", err)
				}
				if _, err := client.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
					t.Errorf("a deleted response was read: %v", err)
				}
			})

			t.Run("streamed function call", func(t *testing.T) {
				f.setMode("tools")
				stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
					Model: b.model, Tools: respWeatherTool(),
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Weather in Paris?")},
				})
				var args, done string
				var completed *responses.Response
				for stream.Next() {
					ev := stream.Current()
					switch ev.Type {
					case "response.function_call_arguments.delta":
						args += ev.Delta
					case "response.function_call_arguments.done":
						done = ev.AsResponseFunctionCallArgumentsDone().Arguments
					case "response.completed":
						r := ev.AsResponseCompleted().Response
						completed = &r
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				if !jsonEqual(args, respCity) || args != done || completed == nil {
					t.Fatalf("argument deltas %q, done %q, completed %v", args, done, completed != nil)
				}
				if c := respFunctionCall(t, completed); c.Arguments != args {
					t.Errorf("completed call %+v", c)
				}
			})

			t.Run("json_schema", func(t *testing.T) {
				f.setMode("json")
				r, err := client.Responses.New(ctx, responses.ResponseNewParams{
					Model: b.model,
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Which city is the capital of France?")},
					Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
						OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{
							Name: "city", Strict: openai.Bool(true),
							Schema: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
								"required": []string{"city"}, "additionalProperties": false},
						}}},
				})
				if err != nil {
					t.Fatal(err)
				}
				if !jsonEqual(r.OutputText(), respCity) || r.Text.Format.Type != "json_schema" {
					t.Errorf("output_text %q, text.format %s", r.OutputText(), r.Text.Format.Type)
				}
				if up := f.last(b.name); !bytes.Contains(up, []byte(`"additionalProperties":false`)) {
					t.Errorf("the schema did not reach the provider: %s", up)
				}
			})
		})
	}
}

// respCheckResult checks that the upstream request carries the tool
// result for callID, in the provider's own shape.
func respCheckResult(t *testing.T, up []byte, callID string) {
	t.Helper()
	if !bytes.Contains(up, []byte(callID)) || !bytes.Contains(up, []byte("18 degrees, sunny")) {
		t.Errorf("upstream request lacks the tool result for %s: %s", callID, up)
	}
}

// respStored reads the response's store field, which the SDK's type
// does not carry.
func respStored(r *responses.Response) bool {
	var v struct {
		Store bool `json:"store"`
	}
	json.Unmarshal([]byte(r.RawJSON()), &v)
	return v.Store
}

func ptr[T any](v T) *T { return &v }

// TestResponsesWithoutStore runs /v1/responses on a gateway without a
// responses block: store (true by default) is accepted and reported as
// false, previous_response_id and GET are refused clearly, and hosted
// tools are refused naming the tool.
func TestResponsesWithoutStore(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock, harness.Options{WaitFor: []string{"echo"}})
	client := respClient(h, harness.Key)
	ctx := context.Background()
	r, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model: "echo", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if respStored(r) || r.Status != "completed" || r.OutputText() == "" {
		t.Errorf("response %s", r.RawJSON())
	}
	var apiErr *openai.Error
	_, err = client.Responses.New(ctx, responses.ResponseNewParams{
		Model: "echo", PreviousResponseID: openai.String(r.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("again")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "storage_disabled" ||
		!strings.Contains(apiErr.Message, "storage is disabled") {
		t.Errorf("previous_response_id without a store: %v", err)
	}
	if _, err := client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("GET without a store: %v", err)
	}
	_, err = client.Responses.New(ctx, responses.ResponseNewParams{
		Model: "echo", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("search")},
		Tools: []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: responses.WebSearchToolTypeWebSearch}}},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, `"web_search"`) ||
		apiErr.Param != "tools[0].type" {
		t.Errorf("web_search tool: %v", err)
	}
	// A routing error keeps the OpenAI error shape on this path.
	_, err = client.Responses.New(ctx, responses.ResponseNewParams{
		Model: "no-such-model", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("x")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
}

// respNodeResult is what test/node/responses.mjs prints.
type respNodeResult struct {
	Scenario   string          `json:"scenario"`
	ID         string          `json:"id"`
	Status     string          `json:"status"`
	OutputText string          `json:"output_text"`
	Events     []string        `json:"events"`
	Sequence   bool            `json:"sequence_ok"`
	Deltas     string          `json:"deltas"`
	Call       json.RawMessage `json:"call"`
	Usage      *struct {
		InputTokens        int64 `json:"input_tokens"`
		OutputTokens       int64 `json:"output_tokens"`
		TotalTokens        int64 `json:"total_tokens"`
		InputTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"input_tokens_details"`
	} `json:"usage"`
	Previous string `json:"previous_response_id"`
	// Error is the stream's error event as the SDK raised it.
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
}

// runRespNode runs one scenario of test/node/responses.mjs.
func runRespNode(t *testing.T, h *harness.Host, scenario, model string) respNodeResult {
	t.Helper()
	return runNode[respNodeResult](t, h, "responses.mjs", scenario, model)
}

func TestResponsesNodeSDK(t *testing.T) {
	h, f := startRespGateway(t)
	for _, b := range respBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("text", func(t *testing.T) {
				f.setMode("text")
				r := runRespNode(t, h, "text", b.model)
				if r.OutputText != respAnswer || r.Status != "completed" || !strings.HasPrefix(r.ID, "resp_") {
					t.Errorf("%+v", r)
				}
				if r.Usage == nil || r.Usage.OutputTokens != 9 || r.Usage.InputTokensDetails.CachedTokens != 4 {
					t.Errorf("usage %+v", r.Usage)
				}
			})
			t.Run("stream", func(t *testing.T) {
				f.setMode("text")
				r := runRespNode(t, h, "stream", b.model)
				want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
					"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done",
					"response.completed"}
				if !slices.Equal(r.Events, want) || !r.Sequence {
					t.Errorf("events %v (sequence ok %v)\nwant %v", r.Events, r.Sequence, want)
				}
				if r.Deltas != respAnswer || r.OutputText != respAnswer || r.Usage == nil || r.Usage.OutputTokens != 9 {
					t.Errorf("deltas %q, final output_text %q, usage %+v", r.Deltas, r.OutputText, r.Usage)
				}
			})
			if b.name == "anthropic" {
				// The route's stream_keepalive is shorter than the fake's
				// delay: the stream starts with comments the SDK skips.
				t.Run("stream after keepalive comments", func(t *testing.T) {
					f.setMode("slow")
					r := runRespNode(t, h, "stream", b.model)
					if len(r.Events) == 0 || r.Events[0] != "response.created" || !r.Sequence || r.OutputText != respAnswer {
						t.Errorf("events %v (sequence ok %v), output_text %q", r.Events, r.Sequence, r.OutputText)
					}
				})
			}
			t.Run("stream_error", func(t *testing.T) {
				f.setMode("fail")
				r := runRespNode(t, h, "stream_error", b.model)
				t.Logf("events %v, raised %+v", r.Events, r.Error)
				// The SDK raises the error event itself.
				if len(r.Events) < 3 || r.Events[0] != "response.created" || !slices.Contains(r.Events, "response.output_text.delta") ||
					!slices.Contains(r.Events, "error") || !r.Sequence {
					t.Fatalf("events %v (sequence ok %v)", r.Events, r.Sequence)
				}
				if r.Error == nil || r.Error.Code == "" || r.Error.Message == "" {
					t.Errorf("raised %+v", r.Error)
				}
				if r.Deltas == "" || !strings.HasPrefix(respAnswer, r.Deltas) {
					t.Errorf("text before the failure %q", r.Deltas)
				}
			})
			for _, sc := range []string{"tools_items", "tools_previous", "tools_stream"} {
				t.Run(sc, func(t *testing.T) {
					f.setMode("tools")
					r := runRespNode(t, h, sc, b.model)
					if r.OutputText != respFinal || r.Status != "completed" {
						t.Errorf("%+v", r)
					}
					var call struct {
						CallID    string `json:"call_id"`
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					}
					json.Unmarshal(r.Call, &call)
					if call.Name != "get_weather" || !jsonEqual(call.Arguments, respCity) {
						t.Errorf("call %s", r.Call)
					}
					if sc == "tools_previous" && !strings.HasPrefix(r.Previous, "resp_") {
						t.Errorf("previous_response_id %q", r.Previous)
					}
					respCheckResult(t, f.last(b.name), call.CallID)
				})
			}
			t.Run("json_schema", func(t *testing.T) {
				f.setMode("json")
				r := runRespNode(t, h, "json_schema", b.model)
				if !jsonEqual(r.OutputText, respCity) {
					t.Errorf("output_text %q", r.OutputText)
				}
			})
		})
	}
}
