package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The watsonx.ai instance of these tests and what its fake expects.
const (
	wxAPIKey     = "ibm-cloud-e2e-upstream-api-key"
	wxProject    = "0c6b1d2e-e2e0-4f00-9a00-00000000e2e0"
	wxModel      = "ibm/granite-3-3-8b-instruct"
	wxEmbedModel = "ibm/slate-125m-english-rtrvr"
	wxToolResult = "In Paris it is 18°C and sunny; the local time is 14:05."
)

// wxGateway is a host with the seed's ibm_watsonx instance in front of a
// watsonx.ai and IAM fake, behind a recorder.
type wxGateway struct {
	h    *harness.Host
	fake *watsonxfake.Server
	rec  *provRecorder
}

// startWxGateway starts the fake (tokens living ttl) and a host whose
// ibm_watsonx instance presents apiKey, with the seed route ibm/*.
func startWxGateway(t *testing.T, ttl time.Duration, apiKey string) *wxGateway {
	t.Helper()
	fake := watsonxfake.New(watsonxfake.Options{APIKey: wxAPIKey, TokenTTL: ttl, ProjectID: wxProject})
	rec := newProvRecorder(t, fake.Handler())
	hcl := harness.APIKeyBlock + fmt.Sprintf(`
provider "ibm_watsonx" {
  type = "watsonx"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    url        = %q
    iam_url    = %q
    project_id = %q
  }
}

route "ibm/*" {
  target "ibm_watsonx" {}
}
`, apiKey, rec.URL(), rec.URL(), wxProject)
	h := harness.Start(t, hcl, harness.Options{WaitFor: []string{"ibm_watsonx"}})
	return &wxGateway{h: h, fake: fake, rec: rec}
}

// wxModelPosts are the recorded POSTs to the watsonx.ai API (token
// exchanges left out).
func (g *wxGateway) wxModelPosts() []provRecord { return wxModelPosts(g.rec) }

// wxText and wxTools script the fake's plain and tool-calling answers.
func wxText(f *watsonxfake.Server) {
	f.SetScenario(watsonxfake.Scenario{Text: provAnswer, Usage: watsonxfake.Usage{PromptTokens: 20, CompletionTokens: 9},
		ChunkSize: 5, SplitWrites: true})
}

func wxTools(f *watsonxfake.Server) {
	f.SetScenario(watsonxfake.Scenario{
		ToolCalls: []watsonxfake.ToolCall{
			{ID: "chatcmpl-tool-weather01", Name: provWantCalls[0].name, Arguments: `{"city": "Paris"}`},
			{ID: "chatcmpl-tool-time02", Name: provWantCalls[1].name, Arguments: `{"timezone": "Europe/Paris"}`},
		},
		ToolResultText: wxToolResult,
		Usage:          watsonxfake.Usage{PromptTokens: 20, CompletionTokens: 9},
		ChunkSize:      4, SplitWrites: true,
	})
}

// wxNodeExtra is what providers.mjs reports beyond provNodeResult.
type wxNodeExtra struct {
	RetryAfter        *string         `json:"retry_after"`
	ChunksBeforeError int             `json:"chunks_before_error"`
	FirstTurn         *provNodeResult `json:"first_turn"`
}

// runWxNode runs one scenario of test/node/providers.mjs against the host.
func runWxNode(t *testing.T, h *harness.Host, scenario, model string) (provNodeResult, wxNodeExtra) {
	t.Helper()
	raw := runNode[json.RawMessage](t, h, "providers.mjs", scenario, model)
	var res provNodeResult
	var extra wxNodeExtra
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("node printed %s: %v", raw, err)
	}
	if err := json.Unmarshal(raw, &extra); err != nil {
		t.Fatalf("node printed %s: %v", raw, err)
	}
	return res, extra
}

// wxToolMessages returns the tool_call_ids of the tool messages of an
// upstream chat body.
func wxToolMessages(t *testing.T, body []byte) []string {
	t.Helper()
	var sent struct {
		Messages []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &sent); err != nil {
		t.Fatalf("upstream body: %v: %s", err, body)
	}
	var ids []string
	for _, m := range sent.Messages {
		if m.Role == "tool" {
			ids = append(ids, m.ToolCallID)
		}
	}
	return ids
}

// TestWatsonxNodeSDK drives the ibm_watsonx instance with the official
// OpenAI Node SDK: chat, stream, a parallel tool call (plain and
// streamed), the follow-up turn with both tool results (plain and
// streamed), a 429 with Retry-After, and an error in the middle of a
// stream.
func TestWatsonxNodeSDK(t *testing.T) {
	g := startWxGateway(t, time.Hour, wxAPIKey)
	pc := provCase{name: "watsonx", usage: &openai.Usage{PromptTokens: 20, CompletionTokens: 9, TotalTokens: 29}}
	toolIDs := []string{"chatcmpl-tool-weather01", "chatcmpl-tool-time02"}
	reset := func() { g.fake.Reset(); g.rec.Reset() }

	t.Run("chat and stream", func(t *testing.T) {
		reset()
		wxText(g.fake)
		chat, _ := runWxNode(t, g.h, "chat", wxModel)
		checkProvCompletion(t, pc, chat, provAnswer, "stop", nil)
		last := g.rec.LastPost(t)
		if last.Path != "/ml/v1/text/chat" || !bytes.Contains(last.Body, []byte(`"model_id":"`+wxModel+`"`)) || !bytes.Contains(last.Body, []byte(wxProject)) {
			t.Errorf("upstream call %s: %s", last.Path, last.Body)
		}
		stream, _ := runWxNode(t, g.h, "stream", wxModel)
		checkProvStream(t, pc, stream, chat)
		if got := stream.Content; got == nil || *got != provAnswer {
			t.Errorf("streamed content %v, want %q", provStr(got), provAnswer)
		}
		if !slices.Equal(stream.FinishReasons, []string{"stop"}) {
			t.Errorf("stream finish reasons %v, want [stop]", stream.FinishReasons)
		}
		if last := g.rec.LastPost(t); last.Path != "/ml/v1/text/chat_stream" {
			t.Errorf("stream went to %s", last.Path)
		}
	})

	t.Run("parallel tool calls", func(t *testing.T) {
		reset()
		wxTools(g.fake)
		tools, _ := runWxNode(t, g.h, "tools", wxModel)
		checkProvCompletion(t, pc, tools, "", "tool_calls", toolIDs)
		last := g.rec.LastPost(t)
		if !bytes.Contains(last.Body, []byte(`"tool_choice_option":"auto"`)) || bytes.Contains(last.Body, []byte(`"tool_choice":`)) {
			t.Errorf("tool_choice \"auto\" was not sent as tool_choice_option: %s", last.Body)
		}
		toolsStream, _ := runWxNode(t, g.h, "tools_stream", wxModel)
		checkProvStream(t, pc, toolsStream, tools)
		checkProvToolFragments(t, toolsStream, tools)
	})

	t.Run("tool follow-up", func(t *testing.T) {
		reset()
		wxTools(g.fake)
		res, extra := runWxNode(t, g.h, "tool_followup", wxModel)
		if extra.FirstTurn == nil || extra.FirstTurn.FinishReason != "tool_calls" || len(extra.FirstTurn.ToolCalls) != 2 {
			t.Fatalf("first turn %+v", extra.FirstTurn)
		}
		if res.FinishReason != "stop" || provStr(res.Content) != fmt.Sprintf("%q", wxToolResult) {
			t.Errorf("second turn: finish %q content %s", res.FinishReason, provStr(res.Content))
		}
		if ids := wxToolMessages(t, g.rec.LastPost(t).Body); !slices.Equal(ids, toolIDs) {
			t.Errorf("the follow-up carried tool results for %v, want %v", ids, toolIDs)
		}
	})

	t.Run("tool follow-up streamed", func(t *testing.T) {
		reset()
		wxTools(g.fake)
		res, extra := runWxNode(t, g.h, "tool_followup_stream", wxModel)
		if extra.FirstTurn == nil || !slices.Equal(extra.FirstTurn.FinishReasons, []string{"tool_calls"}) {
			t.Fatalf("first turn %+v", extra.FirstTurn)
		}
		if !slices.Equal(res.FinishReasons, []string{"stop"}) || provStr(res.Content) != fmt.Sprintf("%q", wxToolResult) {
			t.Errorf("second turn: finish %v content %s", res.FinishReasons, provStr(res.Content))
		}
		last := g.rec.LastPost(t)
		if last.Path != "/ml/v1/text/chat_stream" {
			t.Errorf("second turn went to %s", last.Path)
		}
		if ids := wxToolMessages(t, last.Body); !slices.Equal(ids, toolIDs) {
			t.Errorf("the follow-up carried tool results for %v, want %v", ids, toolIDs)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		reset()
		wxText(g.fake)
		g.fake.FailNext(1, watsonxfake.Failure{Status: http.StatusTooManyRequests, RetryAfter: "7"})
		res, extra := runWxNode(t, g.h, "rate_limited", wxModel)
		if res.Status != http.StatusTooManyRequests || res.Class != "RateLimitError" {
			t.Errorf("SDK error %d %s, want 429 RateLimitError: %+v", res.Status, res.Class, res.Error)
		}
		if extra.RetryAfter == nil || *extra.RetryAfter != "7" {
			t.Errorf("Retry-After seen by the SDK: %v, want 7", provStr(extra.RetryAfter))
		}
		if res.Code == nil || *res.Code != "rate_limit_exceeded" {
			t.Errorf("error code %v, want rate_limit_exceeded", provStr(res.Code))
		}
	})

	t.Run("error mid-stream", func(t *testing.T) {
		reset()
		g.fake.SetScenario(watsonxfake.Scenario{Text: provAnswer, ChunkSize: 5, ErrorAfter: 4})
		res, extra := runWxNode(t, g.h, "stream_error", wxModel)
		if extra.ChunksBeforeError < 2 {
			t.Errorf("the SDK saw %d chunks before the error, want the ones sent before it", extra.ChunksBeforeError)
		}
		if res.Class == "" || res.Error == nil {
			t.Errorf("the SDK did not raise an API error: %+v", res)
		}
	})
}

// wxGoClient is an openai-go client of the host.
func wxGoClient(h *harness.Host) oai.Client {
	return oai.NewClient(option.WithBaseURL(h.URL+"/v1/"), option.WithAPIKey(harness.Key),
		option.WithMaxRetries(0), option.WithRequestTimeout(30*time.Second))
}

// TestWatsonxOpenAIGo drives the ibm_watsonx instance with openai-go:
// chat, a stream, and a streamed parallel tool call.
func TestWatsonxOpenAIGo(t *testing.T) {
	g := startWxGateway(t, time.Hour, wxAPIKey)
	client := wxGoClient(g.h)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	question := []oai.ChatCompletionMessageParamUnion{oai.UserMessage("What is the weather like in Paris?")}

	t.Run("chat", func(t *testing.T) {
		wxText(g.fake)
		c, err := client.Chat.Completions.New(ctx, oai.ChatCompletionNewParams{Model: wxModel, Messages: question})
		if err != nil {
			t.Fatal(err)
		}
		if c.Choices[0].Message.Content != provAnswer || c.Choices[0].FinishReason != "stop" || c.Usage.TotalTokens != 29 || c.Model != wxModel {
			t.Errorf("completion %s", c.RawJSON())
		}
	})

	t.Run("stream", func(t *testing.T) {
		wxText(g.fake)
		st := client.Chat.Completions.NewStreaming(ctx, oai.ChatCompletionNewParams{Model: wxModel, Messages: question,
			StreamOptions: oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}})
		acc := oai.ChatCompletionAccumulator{}
		n := 0
		for st.Next() {
			n++
			if !acc.AddChunk(st.Current()) {
				t.Fatalf("the accumulator refused chunk %d: %s", n, st.Current().RawJSON())
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if n < 4 || acc.Choices[0].Message.Content != provAnswer || acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens != 29 {
			t.Errorf("%d chunks fold to %q finish %q usage %d", n, acc.Choices[0].Message.Content, acc.Choices[0].FinishReason, acc.Usage.TotalTokens)
		}
	})

	t.Run("streamed parallel tool calls", func(t *testing.T) {
		wxTools(g.fake)
		st := client.Chat.Completions.NewStreaming(ctx, oai.ChatCompletionNewParams{Model: wxModel,
			Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage("What are the weather and the local time in Paris?")},
			Tools:    spineTools, ParallelToolCalls: oai.Bool(true)})
		acc := oai.ChatCompletionAccumulator{}
		firsts := map[int64]string{}
		fragments := map[int64]int{}
		for st.Next() {
			ch := st.Current()
			if !acc.AddChunk(ch) {
				t.Fatalf("the accumulator refused chunk %s", ch.RawJSON())
			}
			for _, c := range ch.Choices {
				for _, tc := range c.Delta.ToolCalls {
					fragments[tc.Index]++
					if _, seen := firsts[tc.Index]; !seen {
						if tc.ID == "" || tc.Function.Name == "" {
							t.Errorf("the first fragment of call %d lacks id or name: %s", tc.Index, ch.RawJSON())
						}
						firsts[tc.Index] = tc.ID
					} else if tc.ID != "" {
						t.Errorf("call %d repeats its id on a later fragment", tc.Index)
					}
				}
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if len(firsts) != 2 || firsts[0] != "chatcmpl-tool-weather01" || firsts[1] != "chatcmpl-tool-time02" || fragments[0] < 2 || fragments[1] < 2 {
			t.Errorf("tool-call fragments: ids %v, counts %v", firsts, fragments)
		}
		msg := acc.Choices[0].Message
		if acc.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 2 {
			t.Fatalf("finish %q, calls %+v", acc.Choices[0].FinishReason, msg.ToolCalls)
		}
		for i, tc := range msg.ToolCalls {
			if tc.Function.Name != provWantCalls[i].name {
				t.Errorf("call %d is %s", i, tc.Function.Name)
			}
			checkProvArguments(t, fmt.Sprintf("call %d", i), tc.Function.Arguments, provWantCalls[i].args)
		}
	})
}

// wxCall is one kind of request that authenticates upstream with a token.
type wxCall struct {
	name, path, body string
	check            func(t *testing.T, status int, resp []byte)
}

func wxCalls() []wxCall {
	return []wxCall{
		{
			name: "chat", path: "/v1/chat/completions",
			body: `{"model":"` + wxModel + `","messages":[{"role":"user","content":"Hello"}]}`,
			check: func(t *testing.T, status int, resp []byte) {
				var cc openai.ChatCompletion
				if status != 200 || json.Unmarshal(resp, &cc) != nil || len(cc.Choices) != 1 || provStr(cc.Choices[0].Message.Content) != fmt.Sprintf("%q", provAnswer) {
					t.Errorf("chat: %d %s", status, resp)
				}
			},
		},
		{
			name: "stream", path: "/v1/chat/completions",
			body: `{"model":"` + wxModel + `","stream":true,"messages":[{"role":"user","content":"Hello"}]}`,
			check: func(t *testing.T, status int, resp []byte) {
				if status != 200 {
					t.Fatalf("stream: %d %s", status, resp)
				}
				cc := foldProvSSE(t, resp)
				if provStr(cc.Choices[0].Message.Content) != fmt.Sprintf("%q", provAnswer) || cc.Choices[0].FinishReason != "stop" {
					t.Errorf("stream folds to %+v", cc.Choices[0])
				}
			},
		},
		{
			name: "embeddings", path: "/v1/embeddings",
			body: `{"model":"` + wxEmbedModel + `","input":["first input","second input"]}`,
			check: func(t *testing.T, status int, resp []byte) {
				var er openai.EmbeddingsResponse
				if status != 200 || json.Unmarshal(resp, &er) != nil || len(er.Data) != 2 || er.Data[1].Index != 1 {
					t.Errorf("embeddings: %d %s", status, resp)
				}
			},
		},
	}
}

// TestWatsonxTokenExpiry: IAM tokens live two seconds. A token that
// expires between two requests is replaced before the second one, and a
// token that watsonx.ai declares expired early is replaced and the call
// sent again: for chat, streams and embeddings, the client never sees it.
func TestWatsonxTokenExpiry(t *testing.T) {
	const ttl = 2 * time.Second
	g := startWxGateway(t, ttl, wxAPIKey)
	for _, c := range wxCalls() {
		t.Run(c.name, func(t *testing.T) {
			g.fake.Reset()
			g.rec.Reset()
			wxText(g.fake)
			status, _, resp := g.h.Do(t, "POST", c.path, c.body)
			c.check(t, status, resp)
			first := g.wxModelPosts()
			if len(first) != 1 || first[0].Status != 200 {
				t.Fatalf("first call: upstream statuses %v", g.rec.PostStatuses())
			}
			tok1 := first[0].Header.Get("Authorization")

			// The token dies between the two requests.
			time.Sleep(ttl + 300*time.Millisecond)
			status, _, resp = g.h.Do(t, "POST", c.path, c.body)
			c.check(t, status, resp)
			second := g.wxModelPosts()[1:]
			if len(second) == 0 || second[len(second)-1].Status != 200 {
				t.Fatalf("second call: upstream statuses %v", g.rec.PostStatuses())
			}
			if tok2 := second[len(second)-1].Header.Get("Authorization"); tok2 == tok1 || !strings.HasPrefix(tok2, "Bearer ") {
				t.Errorf("the second call was served with the dead token")
			}

			// watsonx.ai declares the live token expired: one refusal,
			// one retry with a new token, and a clean answer.
			g.rec.Reset()
			g.fake.ExpireTokens()
			status, _, resp = g.h.Do(t, "POST", c.path, c.body)
			c.check(t, status, resp)
			posts := g.wxModelPosts()
			if len(posts) != 2 || posts[0].Status != http.StatusUnauthorized || posts[1].Status != 200 {
				t.Fatalf("upstream statuses %v, want [401 200]", g.rec.PostStatuses())
			}
			if posts[0].Header.Get("Authorization") == posts[1].Header.Get("Authorization") {
				t.Errorf("the retry reused the refused token")
			}
			if g.fake.ExpiredRefusals() != 1 {
				t.Errorf("the fake refused %d expired tokens, want 1", g.fake.ExpiredRefusals())
			}
		})
	}
}

// TestWatsonxUpstreamAuthFailure configures a wrong API key: IAM refuses
// it, and the client gets an authentication failure in OpenAI's shape
// that never contains the key.
func TestWatsonxUpstreamAuthFailure(t *testing.T) {
	const wrongKey = "wrong-ibm-cloud-api-key-e2e"
	g := startWxGateway(t, time.Hour, wrongKey)
	for _, c := range wxCalls() {
		t.Run(c.name, func(t *testing.T) {
			g.rec.Reset()
			status, _, resp := g.h.Do(t, "POST", c.path, c.body)
			// The plugin answers 401; the host reports an upstream
			// credential failure as 502 upstream_auth_failed.
			if status != http.StatusBadGateway {
				t.Fatalf("status %d, want 502: %s", status, resp)
			}
			e := checkProvErrorShape(t, resp)
			if e["code"] != "upstream_auth_failed" {
				t.Errorf("502 with code %v, want upstream_auth_failed", e["code"])
			}
			if bytes.Contains(resp, []byte(wrongKey)) {
				t.Errorf("the error contains the API key: %s", resp)
			}
			if n := len(g.wxModelPosts()); n != 0 {
				t.Errorf("%d calls reached watsonx.ai without a token", n)
			}
		})
	}
}

// TestWatsonxTransparent sends native watsonx.ai requests through
// /-watsonx/ibm_watsonx/...: the plugin injects its IAM bearer token in
// place of the client's key and returns the native answer, streams
// included.
func TestWatsonxTransparent(t *testing.T) {
	g := startWxGateway(t, time.Hour, wxAPIKey)
	wxText(g.fake)
	native := `{"model_id":"` + wxModel + `","project_id":"` + wxProject + `","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}`
	for _, tc := range []struct{ name, path string }{
		{"chat", "/ml/v1/text/chat?version=2024-05-31"},
		{"chat_stream", "/ml/v1/text/chat_stream?version=2024-05-31"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.rec.Reset()
			status, hdr, resp := g.h.Do(t, "POST", "/-watsonx/ibm_watsonx"+tc.path, native)
			if status != 200 {
				t.Fatalf("status %d: %s", status, resp)
			}
			last := g.rec.LastPost(t)
			if last.Path+"?"+last.RawQuery != tc.path || string(last.Body) != native {
				t.Errorf("upstream %s?%s %s", last.Path, last.RawQuery, last.Body)
			}
			if auth := last.Header.Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") || strings.Contains(auth, harness.Key) {
				t.Errorf("upstream Authorization %q is not the instance's IAM token", auth)
			}
			if tc.name == "chat" {
				if !bytes.Contains(resp, []byte(`"model_version"`)) || !bytes.Contains(resp, []byte(`"system"`)) {
					t.Errorf("not the native answer: %s", resp)
				}
				return
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") || !bytes.Contains(resp, []byte("event: message\ndata: {")) || bytes.Contains(resp, []byte("[DONE]")) {
				t.Errorf("not the native stream (%s): %s", hdr.Get("Content-Type"), resp)
			}
		})
	}
}

// TestWatsonxFailover routes a model over two watsonx.ai instances, each
// naming the upstream model: when the first answers 503 (or 429), the
// second serves, JSON and streamed, and the client never sees the
// failure.
func TestWatsonxFailover(t *testing.T) {
	down := watsonxfake.New(watsonxfake.Options{APIKey: wxAPIKey, ProjectID: wxProject})
	up := watsonxfake.New(watsonxfake.Options{APIKey: wxAPIKey, ProjectID: wxProject})
	downRec, upRec := newProvRecorder(t, down.Handler()), newProvRecorder(t, up.Handler())
	instance := func(name string, rec *provRecorder) string {
		return fmt.Sprintf(`
provider %q {
  type = "watsonx"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    url        = %q
    iam_url    = %q
    project_id = %q
  }
}
`, name, wxAPIKey, rec.URL(), rec.URL(), wxProject)
	}
	hcl := harness.APIKeyBlock + instance("ibm_watsonx_a", downRec) + instance("ibm_watsonx_b", upRec) + `
route "gemini-2.5-flash" {
  strategy = "failover"
  target "ibm_watsonx_a" { model = "ibm/granite-3-3-8b-instruct" }
  target "ibm_watsonx_b" { model = "meta-llama/llama-3-3-70b-instruct" }
}
`
	h := harness.Start(t, hcl, harness.Options{WaitFor: []string{"ibm_watsonx_a", "ibm_watsonx_b"}})
	const fromB = "Served by the second watsonx.ai instance."
	up.SetScenario(watsonxfake.Scenario{Text: fromB})
	for _, tc := range []struct {
		name   string
		stream bool
		fail   watsonxfake.Failure
	}{
		{"503", false, watsonxfake.Failure{Status: http.StatusServiceUnavailable}},
		{"429", false, watsonxfake.Failure{Status: http.StatusTooManyRequests, RetryAfter: "5"}},
		{"503 stream", true, watsonxfake.Failure{Status: http.StatusServiceUnavailable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			downRec.Reset()
			upRec.Reset()
			down.FailNext(1, tc.fail)
			body := fmt.Sprintf(`{"model":"gemini-2.5-flash","stream":%v,"messages":[{"role":"user","content":"Who answers?"}]}`, tc.stream)
			status, _, resp := h.Do(t, "POST", "/v1/chat/completions", body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, resp)
			}
			var content string
			if tc.stream {
				content = provStr(foldProvSSE(t, resp).Choices[0].Message.Content)
			} else {
				var cc openai.ChatCompletion
				if err := json.Unmarshal(resp, &cc); err != nil || len(cc.Choices) != 1 {
					t.Fatalf("not a completion: %s", resp)
				}
				content = provStr(cc.Choices[0].Message.Content)
			}
			if content != fmt.Sprintf("%q", fromB) {
				t.Errorf("content %s, want the second instance's answer", content)
			}
			var downStatuses []int
			for _, r := range downRec.Posts() {
				if r.Path != "/identity/token" {
					downStatuses = append(downStatuses, r.Status)
				}
			}
			if !slices.Equal(downStatuses, []int{tc.fail.Status}) {
				t.Errorf("the first instance answered %v, want [%d]", downStatuses, tc.fail.Status)
			}
			last := upRec.LastPost(t)
			if !bytes.Contains(last.Body, []byte(`"model_id":"meta-llama/llama-3-3-70b-instruct"`)) {
				t.Errorf("the second instance was not asked for its target's model: %s", last.Body)
			}
		})
	}
}
