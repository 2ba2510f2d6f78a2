package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goopenai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmproxy/llmproxy/plugins/provider-oci/ocifake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The OCI models the oracle_ai routes serve: one per chat format.
const (
	ociGenericModel = "meta.llama-3.3-70b-instruct"
	ociCohereModel  = "cohere.command-r-plus-08-2024"
)

var (
	ociKeyOnce sync.Once
	ociKey     *ocifake.Key
	ociKeyErr  error
)

// ociTestKey is the API signing key the oracle_ai instance presents; RSA
// key generation is slow, so the tests share one.
func ociTestKey(t *testing.T) *ocifake.Key {
	t.Helper()
	ociKeyOnce.Do(func() { ociKey, ociKeyErr = ocifake.GenerateKey() })
	if ociKeyErr != nil {
		t.Fatal(ociKeyErr)
	}
	return ociKey
}

// ociHCL describes oracle_ai in front of the fake (through rec), signing
// with privatePEM, and the seed routes cohere.* and meta.*.
func ociHCL(f *ocifake.Server, rec *provRecorder, privatePEM string) string {
	c := f.Credentials()
	return harness.APIKeyBlock + fmt.Sprintf(`
provider "oracle_ai" {
  type = "oci"
  credential "tenancy_ocid" {
    from "value" { value = %q }
  }
  credential "user_ocid" {
    from "value" { value = %q }
  }
  credential "fingerprint" {
    from "value" { value = %q }
  }
  credential "private_key" {
    from "value" { value = %q }
  }
  config {
    region            = "us-chicago-1"
    endpoint          = %q
    compartment_id    = %q
    stream_usage_wait = "3s"
  }
}

route "cohere.*" {
  target "oracle_ai" {}
}

route "meta.*" {
  target "oracle_ai" {}
}
`, c["tenancy_ocid"], c["user_ocid"], c["fingerprint"], privatePEM, rec.URL(), f.Compartment())
}

// startOCIGateway starts the OCI fake behind a recorder and a host in
// front of it, signing with the key the fake trusts unless privatePEM is
// set.
func startOCIGateway(t *testing.T, privatePEM string) (*harness.Host, *ocifake.Server, *provRecorder) {
	t.Helper()
	f := ocifake.New(ocifake.Options{Key: ociTestKey(t)})
	t.Cleanup(func() { f.Close() })
	rec := newProvRecorder(t, f.Handler())
	if privatePEM == "" {
		privatePEM = f.Key().PrivatePEM
	}
	h := harness.Start(t, ociHCL(f, rec, privatePEM), harness.Options{WaitFor: []string{"oracle_ai"}})
	return h, f, rec
}

// ociFormat is one chat format of the fake, with its scripted answers.
// Every stream is held open by the fake after its last event, as OCI
// may do: the tests only pass if the plugin ends streams on their final
// events.
type ociFormat struct {
	name, model string
	// ids are the tool-call ids the fake sends; nil for COHERE, which
	// has none (the plugin makes them up).
	ids []string
}

func ociFormats() []ociFormat {
	return []ociFormat{
		{name: "generic", model: ociGenericModel, ids: []string{"call_weather_01", "call_time_02"}},
		{name: "cohere", model: ociCohereModel},
	}
}

func (of ociFormat) text() ocifake.Scenario {
	return ocifake.Scenario{Text: provAnswer, Usage: ocifake.Usage{Prompt: 20, Completion: 9}, ChunkSize: 5, KeepOpen: true, SingleNewline: true}
}

func (of ociFormat) tools() ocifake.Scenario {
	sc := ocifake.Scenario{Text: provToolText, Usage: ocifake.Usage{Prompt: 20, Completion: 9}, ChunkSize: 4, SplitWrites: true, KeepOpen: true, Pad: true}
	for i, w := range provWantCalls {
		args, _ := json.Marshal(w.args)
		call := ocifake.ToolCall{Name: w.name, Arguments: string(args)}
		if of.ids != nil {
			call.ID = of.ids[i]
		}
		sc.ToolCalls = append(sc.ToolCalls, call)
	}
	return sc
}

// ociChatRequest is the part of an upstream chat body the tests check.
type ociChatRequest struct {
	ServingMode struct {
		ServingType string `json:"servingType"`
		ModelID     string `json:"modelId"`
	} `json:"servingMode"`
	ChatRequest struct {
		APIFormat string `json:"apiFormat"`
		MaxTokens *int   `json:"maxTokens"`
		Messages  []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"toolCallId"`
		} `json:"messages"`
		ToolResults []struct {
			Call struct {
				Name       string         `json:"name"`
				Parameters map[string]any `json:"parameters"`
			} `json:"call"`
		} `json:"toolResults"`
	} `json:"chatRequest"`
}

func ociUpstream(t *testing.T, rec provRecord) ociChatRequest {
	t.Helper()
	var r ociChatRequest
	if err := json.Unmarshal(rec.Body, &r); err != nil {
		t.Fatalf("upstream body: %v: %s", err, rec.Body)
	}
	if !strings.HasPrefix(rec.Header.Get("Authorization"), `Signature version="1",headers="date (request-target) host content-length content-type x-content-sha256"`) {
		t.Errorf("upstream request is not OCI-signed: %q", rec.Header.Get("Authorization"))
	}
	return r
}

// TestOCINodeSDK drives oracle_ai with the official OpenAI Node SDK for
// the GENERIC (meta.*) and COHERE (cohere.*) formats: chat, stream, a
// parallel tool call (plain and streamed), the follow-up turn with both
// tool results (plain and streamed), a 429 with Retry-After and a
// mid-stream upstream error.
func TestOCINodeSDK(t *testing.T) {
	h, f, rec := startOCIGateway(t, "")
	usage := &openai.Usage{PromptTokens: 20, CompletionTokens: 9, TotalTokens: 29}
	for _, of := range ociFormats() {
		t.Run(of.name, func(t *testing.T) {
			pc := provCase{name: of.name, model: of.model, toolText: provToolText, toolIDs: of.ids, usage: usage}
			f.Reset()
			rec.Reset()

			f.SetScenario(of.text())
			chat := runProvidersNode(t, h, "chat", of.model)
			checkProvCompletion(t, pc, chat, provAnswer, "stop", nil)
			up := ociUpstream(t, rec.LastPost(t))
			wantFormat := map[string]string{"generic": "GENERIC", "cohere": "COHERE"}[of.name]
			if up.ServingMode.ServingType != "ON_DEMAND" || up.ServingMode.ModelID != of.model || up.ChatRequest.APIFormat != wantFormat ||
				up.ChatRequest.MaxTokens == nil || *up.ChatRequest.MaxTokens != 256 {
				t.Errorf("upstream request %s", rec.LastPost(t).Body)
			}

			start := time.Now()
			stream := runProvidersNode(t, h, "stream", of.model)
			checkProvStream(t, pc, stream, chat)
			if got := stream.Content; got == nil || *got != provAnswer {
				t.Errorf("streamed content %v, want %q", provStr(got), provAnswer)
			}
			if !slices.Equal(stream.FinishReasons, []string{"stop"}) {
				t.Errorf("stream finish reasons %v, want [stop]", stream.FinishReasons)
			}
			t.Logf("%s stream held open by the fake ended after %v", of.name, time.Since(start))

			f.SetScenario(of.tools())
			tools := runProvidersNode(t, h, "tools", of.model)
			checkProvCompletion(t, pc, tools, provToolText, "tool_calls", of.ids)
			toolsStream := runProvidersNode(t, h, "tools_stream", of.model)
			checkProvStream(t, pc, toolsStream, tools)
			checkProvToolFragments(t, toolsStream, tools)

			for _, scenario := range []string{"tool_followup", "tool_followup_stream"} {
				f.QueueScenarios(of.tools(), of.text())
				res := runProvidersNode(t, h, scenario, of.model)
				if res.Content == nil || *res.Content != provAnswer || res.FinishReason != "stop" && !slices.Equal(res.FinishReasons, []string{"stop"}) {
					t.Errorf("%s: second turn content %v finish %q %v", scenario, provStr(res.Content), res.FinishReason, res.FinishReasons)
				}
				second := ociUpstream(t, rec.LastPost(t))
				checkOCIToolResults(t, scenario, of, second)
			}

			f.FailNext(1, ocifake.Failure{Status: 429, RetryAfter: "7"})
			rl := ociRunNode(t, h, "rate_limited", of.model)
			if rl["status"] != float64(http.StatusTooManyRequests) || rl["class"] != "RateLimitError" || rl["retry_after"] != "7" {
				t.Errorf("Node SDK rate limited: status %v class %v retry_after %v", rl["status"], rl["class"], rl["retry_after"])
			}
			if ra := rlRetryAfter(t, h, of.model, f); ra != "7" {
				t.Errorf("Go SDK Retry-After %q, want 7", ra)
			}

			sc := of.text()
			sc.ErrorAfter = 3
			f.SetScenario(sc)
			se := ociRunNode(t, h, "stream_error", of.model)
			if n, _ := se["chunks_before_error"].(float64); n < 1 || se["class"] == nil || !strings.Contains(fmt.Sprint(se["message"]), "failed") {
				t.Errorf("mid-stream error not raised by the SDK as an API error after the first chunks: %v", se)
			}
		})
	}
}

// ociRunNode runs a scenario of test/node/providers.mjs and returns what
// it printed as a map, with the fields provNodeResult leaves out.
func ociRunNode(t *testing.T, h *harness.Host, scenario, model string) map[string]any {
	t.Helper()
	return runNode[map[string]any](t, h, "providers.mjs", scenario, model)
}

// rlRetryAfter makes one more rate-limited call with the Go SDK and
// returns the Retry-After header it saw.
func rlRetryAfter(t *testing.T, h *harness.Host, model string, f *ocifake.Server) string {
	t.Helper()
	f.FailNext(1, ocifake.Failure{Status: 429, RetryAfter: "7"})
	client := ociGoClient(h)
	_, err := client.Chat.Completions.New(context.Background(), goopenai.ChatCompletionNewParams{
		Model: model, Messages: []goopenai.ChatCompletionMessageParamUnion{goopenai.UserMessage("hi")}})
	var apiErr *goopenai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Response == nil {
		t.Fatalf("go sdk: want a 429 *openai.Error, got %v", err)
	}
	return apiErr.Response.Header.Get("Retry-After")
}

// checkOCIToolResults checks that the follow-up turn carried both tool
// results in the format's native shape.
func checkOCIToolResults(t *testing.T, scenario string, of ociFormat, up ociChatRequest) {
	t.Helper()
	if of.name == "cohere" {
		var names []string
		for _, r := range up.ChatRequest.ToolResults {
			names = append(names, r.Call.Name)
			want := provWantCalls[len(names)-1]
			if fmt.Sprint(r.Call.Parameters) != fmt.Sprint(want.args) {
				t.Errorf("%s: COHERE tool result call parameters %v, want %v", scenario, r.Call.Parameters, want.args)
			}
		}
		if !slices.Equal(names, []string{"get_weather", "get_time"}) {
			t.Errorf("%s: COHERE toolResults name %v", scenario, names)
		}
		return
	}
	var ids []string
	for _, m := range up.ChatRequest.Messages {
		if m.Role == "TOOL" {
			ids = append(ids, m.ToolCallID)
		}
	}
	if !slices.Equal(ids, of.ids) {
		t.Errorf("%s: GENERIC TOOL messages answer %v, want %v", scenario, ids, of.ids)
	}
}

func ociGoClient(h *harness.Host) goopenai.Client {
	return goopenai.NewClient(option.WithBaseURL(h.URL+"/v1/"), option.WithAPIKey(harness.Key),
		option.WithMaxRetries(0), option.WithRequestTimeout(30*time.Second))
}

// TestOCIGoSDK drives oracle_ai with openai-go: chat, stream and a
// streamed parallel tool call, for both chat formats.
func TestOCIGoSDK(t *testing.T) {
	h, f, _ := startOCIGateway(t, "")
	client := ociGoClient(h)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, of := range ociFormats() {
		t.Run(of.name, func(t *testing.T) {
			f.Reset()
			f.SetScenario(of.text())
			params := goopenai.ChatCompletionNewParams{Model: of.model,
				Messages: []goopenai.ChatCompletionMessageParamUnion{goopenai.UserMessage("What is the weather like in Paris?")}}
			c, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if c.Choices[0].Message.Content != provAnswer || c.Choices[0].FinishReason != "stop" || c.Usage.TotalTokens != 29 {
				t.Errorf("chat: %q %q %d", c.Choices[0].Message.Content, c.Choices[0].FinishReason, c.Usage.TotalTokens)
			}

			sp := params
			sp.StreamOptions = goopenai.ChatCompletionStreamOptionsParam{IncludeUsage: goopenai.Bool(true)}
			acc := ociGoStream(t, ctx, client, sp)
			if acc.Choices[0].Message.Content != provAnswer || acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens != 29 {
				t.Errorf("stream: %q %q %d", acc.Choices[0].Message.Content, acc.Choices[0].FinishReason, acc.Usage.TotalTokens)
			}

			f.SetScenario(of.tools())
			tp := params
			tp.Messages = []goopenai.ChatCompletionMessageParamUnion{goopenai.UserMessage("What are the weather and the local time in Paris?")}
			tp.ParallelToolCalls = goopenai.Bool(true)
			for _, w := range provWantCalls {
				prop := map[string]any{"city": map[string]any{"type": "string"}}
				if w.name == "get_time" {
					prop = map[string]any{"timezone": map[string]any{"type": "string"}}
				}
				tp.Tools = append(tp.Tools, goopenai.ChatCompletionFunctionTool(goopenai.FunctionDefinitionParam{Name: w.name,
					Parameters: goopenai.FunctionParameters{"type": "object", "properties": prop}}))
			}
			acc = ociGoStream(t, ctx, client, tp)
			msg := acc.Choices[0].Message
			if acc.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 2 {
				t.Fatalf("streamed tool call: finish %q, calls %+v", acc.Choices[0].FinishReason, msg.ToolCalls)
			}
			seen := map[string]bool{}
			for i, tc := range msg.ToolCalls {
				var args map[string]any
				if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil || fmt.Sprint(args) != fmt.Sprint(provWantCalls[i].args) {
					t.Errorf("call %d arguments %q", i, tc.Function.Arguments)
				}
				if tc.Function.Name != provWantCalls[i].name || tc.ID == "" || seen[tc.ID] || (of.ids != nil && tc.ID != of.ids[i]) {
					t.Errorf("call %d: %s %s", i, tc.ID, tc.Function.Name)
				}
				seen[tc.ID] = true
			}
		})
	}
}

func ociGoStream(t *testing.T, ctx context.Context, client goopenai.Client, params goopenai.ChatCompletionNewParams) goopenai.ChatCompletionAccumulator {
	t.Helper()
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	acc := goopenai.ChatCompletionAccumulator{}
	n := 0
	for stream.Next() {
		n++
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("the accumulator refused chunk %d: %s", n, stream.Current().RawJSON())
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if len(acc.Choices) == 0 {
		t.Fatal("the stream had no choices")
	}
	return acc
}

// TestOCIWrongPrivateKey configures oracle_ai with a key the tenancy does
// not know: the fake really verifies the signature and refuses it, and
// the client sees the gateway's upstream-auth answer without any key
// material.
func TestOCIWrongPrivateKey(t *testing.T) {
	wrong, err := ocifake.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h, _, rec := startOCIGateway(t, wrong.PrivatePEM)
	for _, tt := range []struct{ name, body string }{
		{"json", `{"model":"` + ociGenericModel + `","messages":[{"role":"user","content":"hi"}]}`},
		{"stream", `{"model":"` + ociCohereModel + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := h.Do(t, "POST", "/v1/chat/completions", tt.body)
			var eb struct {
				Error struct {
					Type string  `json:"type"`
					Code *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			code := ""
			if eb.Error.Code != nil {
				code = *eb.Error.Code
			}
			// The plugin answers 401 (the fake refused the signature); the
			// host reports an upstream credential failure as 502
			// upstream_auth_failed and marks the instance degraded.
			if status != http.StatusBadGateway || code != "upstream_auth_failed" {
				t.Errorf("status %d code %q type %q: %s", status, code, eb.Error.Type, body)
			}
			for _, secret := range []string{"PRIVATE KEY", wrong.PrivatePEM[60:100]} {
				if strings.Contains(string(body), secret) {
					t.Errorf("the error body leaks key material: %s", body)
				}
			}
		})
	}
	posts := rec.Posts()
	if len(posts) == 0 {
		t.Fatal("no request reached the fake")
	}
	for _, p := range posts {
		if p.Status != http.StatusUnauthorized {
			t.Errorf("the fake answered %d to a request signed with the wrong key", p.Status)
		}
	}
	// The operator's problem shows in /readyz: the instance is degraded,
	// with the reason.
	st, err := h.Instances()
	if err != nil {
		t.Fatal(err)
	}
	if got := st["oracle_ai"]; got.State != "degraded" || !strings.Contains(got.Reason, "credentials") {
		t.Errorf("oracle_ai in /readyz: %+v, want degraded with a credentials reason", got)
	}
}

// TestOCIStreamsHeldOpen: the fake keeps GENERIC and COHERE streams open
// after their last event; a raw client must still see [DONE] and the
// connection end.
func TestOCIStreamsHeldOpen(t *testing.T) {
	h, f, _ := startOCIGateway(t, "")
	client := &http.Client{Timeout: 15 * time.Second}
	for _, of := range ociFormats() {
		for _, usage := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/include_usage=%v", of.name, usage), func(t *testing.T) {
				f.SetScenario(of.text())
				body := `{"model":"` + of.model + `","stream":true,"messages":[{"role":"user","content":"hi"}]`
				if usage {
					body += `,"stream_options":{"include_usage":true}`
				}
				req, _ := http.NewRequest("POST", h.URL+"/v1/chat/completions", strings.NewReader(body+"}"))
				req.Header.Set("Authorization", "Bearer "+harness.Key)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				var last string
				acc := &openai.Accumulator{}
				for sc.Scan() {
					line := strings.TrimPrefix(sc.Text(), "data: ")
					if line == "" {
						continue
					}
					last = line
					if line != "[DONE]" {
						if err := acc.Add([]byte(line)); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := sc.Err(); err != nil {
					t.Fatalf("stream did not end: %v after %v", err, time.Since(start))
				}
				if last != "[DONE]" || acc.Completion().Choices[0].FinishReason != "stop" {
					t.Errorf("last line %q, completion %+v", last, acc.Completion())
				}
				t.Logf("held-open stream ended after %v", time.Since(start))
			})
		}
	}
}

// TestOCITransparentAndEmbeddings: a native chat request through
// /-oci/oracle_ai/... is re-signed by the plugin (the client's llmproxy key
// never reaches OCI) and relayed, streamed too; /v1/embeddings is served
// by embedText.
func TestOCITransparentAndEmbeddings(t *testing.T) {
	h, f, rec := startOCIGateway(t, "")
	f.SetScenario(ocifake.Scenario{Text: "native answer", KeepOpen: false})
	for _, stream := range []string{"false", "true"} {
		native := `{"compartmentId":"` + f.Compartment() + `","servingMode":{"servingType":"ON_DEMAND","modelId":"` + ociGenericModel + `"},` +
			`"chatRequest":{"apiFormat":"GENERIC","messages":[{"role":"USER","content":[{"type":"TEXT","text":"hi"}]}],"maxTokens":20,"isStream":` + stream + `}}`
		status, hdr, body := h.Do(t, "POST", "/-oci/oracle_ai/20231130/actions/chat", native, "Content-Type", "application/json")
		if status != 200 || !strings.Contains(string(body), "native") {
			t.Fatalf("transparent chat (stream %s): %d %s", stream, status, body)
		}
		if hdr.Get("opc-request-id") == "" {
			t.Errorf("opc-request-id not relayed")
		}
		up := rec.LastPost(t)
		if auth := up.Header.Get("Authorization"); strings.Contains(auth, harness.Key) || !strings.HasPrefix(auth, "Signature ") || up.Status != 200 {
			t.Errorf("upstream saw Authorization %q, answered %d", auth, up.Status)
		}
	}
	status, _, body := h.Do(t, "POST", "/v1/embeddings", `{"model":"cohere.embed-english-v3.0","input":["first input","second input"]}`)
	if status != 200 {
		t.Fatalf("embeddings: %d %s", status, body)
	}
	var er openai.EmbeddingsResponse
	if err := json.Unmarshal(body, &er); err != nil || len(er.Data) != 2 || er.Data[1].Index != 1 || er.Usage.PromptTokens != 4 {
		t.Errorf("embeddings response %s", body)
	}
	if up := rec.LastPost(t); up.Path != "/20231130/actions/embedText" {
		t.Errorf("embeddings went to %s", up.Path)
	}
}
