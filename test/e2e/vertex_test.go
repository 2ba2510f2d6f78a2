package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	sdkopenai "github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The Vertex AI tests run the vertex plugin in front of vertexfake, which
// also serves the OAuth2 token endpoint named in the instance's
// service-account key: every call goes through a real JWT-bearer exchange.

const (
	vertexModel  = "gemini-2.5-flash"
	vertexModel3 = "gemini-3-pro-preview"
	vertexEmbed  = "text-embedding-005"
	// vertexFollowUp is the fake's answer to the turn with the tool results.
	vertexFollowUp = "It is 18°C and sunny in Paris, and the local time is 14:05."
)

// vertexEnv is a host with the vertex_us instance in front of a fake.
type vertexEnv struct {
	h    *harness.Host
	fake *vertexfake.Server
	rec  *provRecorder
}

// vertexHCL is the vertex_us instance, its routes, and a second instance
// vertex_eu in front of other when other is not nil, second in the
// failover route "gemini-failover".
func vertexHCL(fake *vertexfake.Server, url string, other *vertexEnv) string {
	return vertexHCLWithKey(fake, url, other, fake.ServiceAccountJSON())
}

// vertexHCLWithKey is vertexHCL with vertex_us presenting saJSON.
func vertexHCLWithKey(fake *vertexfake.Server, url string, other *vertexEnv, saJSON []byte) string {
	inst := func(name, url string, fake *vertexfake.Server, sa []byte) string {
		return fmt.Sprintf(`
provider %q {
  type = "vertex"
  credential "service_account_json" {
    from "value" { value = %q }
  }
  config {
    project  = %q
    location = %q
    endpoint = %q
    timeout  = "30s"
  }
}
`, name, string(sa), fake.Project(), fake.Location(), url)
	}
	hcl := harness.APIKeyBlock + inst("vertex_us", url, fake, saJSON) + `
route "gemini-*" {
  target "vertex_us" {}
}

route "text-embedding-*" {
  target "vertex_us" {}
}
`
	if other != nil {
		hcl += inst("vertex_eu", other.rec.URL(), other.fake, other.fake.ServiceAccountJSON()) + `
route "gemini-failover" {
  strategy = "failover"
  target "vertex_us" { model = "gemini-2.5-flash" }
  target "vertex_eu" { model = "gemini-2.5-flash" }
}
`
	}
	return hcl
}

// newVertexFake starts a fake behind a recorder.
func newVertexFake(t *testing.T) (*vertexfake.Server, *provRecorder) {
	t.Helper()
	fake := vertexfake.New(vertexfake.Options{})
	rec := newProvRecorder(t, fake.Handler())
	fake.SetURL(rec.URL())
	return fake, rec
}

func startVertex(t *testing.T) *vertexEnv {
	t.Helper()
	fake, rec := newVertexFake(t)
	h := harness.Start(t, vertexHCL(fake, rec.URL(), nil), harness.Options{WaitFor: []string{"vertex_us"}})
	return &vertexEnv{h: h, fake: fake, rec: rec}
}

// modelCalls are the recorded calls of model methods (not token
// exchanges, health checks or model lists).
func (e *vertexEnv) modelCalls() []provRecord {
	var out []provRecord
	for _, r := range e.rec.Posts() {
		if strings.Contains(r.Path, "/publishers/google/models/") {
			out = append(out, r)
		}
	}
	return out
}

func (e *vertexEnv) lastCall(t *testing.T) provRecord {
	t.Helper()
	calls := e.modelCalls()
	if len(calls) == 0 {
		t.Fatal("no model call reached the fake")
	}
	return calls[len(calls)-1]
}

// vertexNodeResult is what providers.mjs prints, with the fields the
// shared result type leaves out.
type vertexNodeResult struct {
	provNodeResult
	FirstTurn         *provNodeResult `json:"first_turn"`
	RetryAfter        *string         `json:"retry_after"`
	ChunksBeforeError *int            `json:"chunks_before_error"`
	Message           *string         `json:"message"`
	// Raw is the printed JSON, for failure messages.
	Raw json.RawMessage `json:"-"`
}

// runVertexNode runs a providers.mjs scenario with the official Node SDK.
func runVertexNode(t *testing.T, h *harness.Host, scenario, model string) vertexNodeResult {
	t.Helper()
	raw := runNode[json.RawMessage](t, h, "providers.mjs", scenario, model)
	var res vertexNodeResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("node providers.mjs %s %s printed %s: %v", scenario, model, raw, err)
	}
	res.Raw = raw
	return res
}

// vertexCase is the provCase of the shared checks: the usage the text
// and tool scenarios report.
var vertexCase = provCase{name: "vertex", usage: &sdkopenai.Usage{PromptTokens: 20, CompletionTokens: 9, TotalTokens: 29}}

func vertexText(f *vertexfake.Server) {
	f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text(provAnswer)},
		Usage: vertexfake.Usage{Prompt: 20, Candidates: 9}, ChunkSize: 5, SplitWrites: true})
}

func vertexTools(f *vertexfake.Server) {
	f.SetScenario(vertexfake.Scenario{
		Parts: []vertexfake.Part{
			vertexfake.Text(provToolText),
			vertexfake.FunctionCall(provWantCalls[0].name, provWantCalls[0].args),
			vertexfake.FunctionCall(provWantCalls[1].name, provWantCalls[1].args),
		},
		Usage:    vertexfake.Usage{Prompt: 20, Candidates: 9},
		FollowUp: &vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text(vertexFollowUp)}, Usage: vertexfake.Usage{Prompt: 40, Candidates: 15}},
	})
}

// checkVertexToolStream checks the streamed parallel tool call: indexes 0
// and 1, the id and name on the first fragment of each call, complete JSON
// arguments (Gemini sends each call whole), finish_reason tool_calls.
func checkVertexToolStream(t *testing.T, got provNodeResult) {
	t.Helper()
	if !slices.Equal(got.FinishReasons, []string{"tool_calls"}) {
		t.Errorf("stream finish reasons %v, want [tool_calls]", got.FinishReasons)
	}
	seen := map[int]bool{}
	var order []int
	ids := map[string]bool{}
	for i, fr := range got.Fragments {
		if seen[fr.Index] {
			if fr.ID != nil || fr.Name != nil {
				t.Errorf("fragment %d repeats the id or name of call %d", i, fr.Index)
			}
			continue
		}
		seen[fr.Index] = true
		order = append(order, fr.Index)
		if fr.ID == nil || !strings.HasPrefix(*fr.ID, "call_") || ids[*fr.ID] || fr.Name == nil || *fr.Name != provWantCalls[fr.Index].name {
			t.Errorf("fragment %d opens call %d without a fresh call_ id and the right name: %+v", i, fr.Index, fr)
		} else {
			ids[*fr.ID] = true
		}
		if fr.Arguments != nil {
			checkProvArguments(t, fmt.Sprintf("call %d", fr.Index), *fr.Arguments, provWantCalls[fr.Index].args)
		}
	}
	if !slices.Equal(order, []int{0, 1}) {
		t.Fatalf("tool-call indexes %v, want [0 1]: %+v", order, got.Fragments)
	}
	acc := &sdkopenai.Accumulator{}
	for i, c := range got.Chunks {
		if err := acc.Add(c); err != nil {
			t.Fatalf("chunk %d breaks the stream rules: %v: %s", i, err, c)
		}
	}
}

// checkFollowUpUpstream checks the second turn as it reached the fake:
// the model turn with both calls, then one user turn with both function
// responses named after the calls.
func checkFollowUpUpstream(t *testing.T, rec provRecord, signed bool) {
	t.Helper()
	var body struct {
		Contents []struct {
			Role  string `json:"role"`
			Parts []struct {
				Text             string         `json:"text"`
				ThoughtSignature string         `json:"thoughtSignature"`
				FunctionCall     map[string]any `json:"functionCall"`
				FunctionResponse struct {
					Name     string         `json:"name"`
					Response map[string]any `json:"response"`
				} `json:"functionResponse"`
			} `json:"parts"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(rec.Body, &body); err != nil || len(body.Contents) != 3 {
		t.Fatalf("follow-up upstream body: %v %s", err, rec.Body)
	}
	model, results := body.Contents[1], body.Contents[2]
	if model.Role != "model" || results.Role != "user" || len(results.Parts) != 2 {
		t.Fatalf("follow-up turns: %s", rec.Body)
	}
	calls := 0
	for _, p := range model.Parts {
		if p.FunctionCall != nil {
			calls++
		}
	}
	if calls != 2 {
		t.Errorf("model turn has %d function calls, want 2: %s", calls, rec.Body)
	}
	if signed && model.Parts[len(model.Parts)-2].ThoughtSignature == "" {
		t.Errorf("the first function call lost its thought signature: %s", rec.Body)
	}
	names := []string{results.Parts[0].FunctionResponse.Name, results.Parts[1].FunctionResponse.Name}
	if !slices.Equal(names, []string{"get_weather", "get_time"}) || results.Parts[0].FunctionResponse.Response["output"] != "18°C and sunny" {
		t.Errorf("function responses %v: %s", names, rec.Body)
	}
}

// TestVertexNodeSDK drives the vertex plugin with the official OpenAI Node
// SDK: chat, stream, a parallel tool call (plain and streamed), the
// follow-up turn with both tool results (plain and streamed, on a gemini-2.5
// and on a gemini-3 model whose fake insists on thought signatures), a 429
// with Retry-After from RetryInfo, and an error in the middle of a stream.
func TestVertexNodeSDK(t *testing.T) {
	e := startVertex(t)
	reset := func() { e.fake.Reset(); e.rec.Reset() }

	t.Run("chat and stream", func(t *testing.T) {
		reset()
		vertexText(e.fake)
		chat := runVertexNode(t, e.h, "chat", vertexModel)
		checkProvCompletion(t, vertexCase, chat.provNodeResult, provAnswer, "stop", nil)
		if p := e.lastCall(t).Path; !strings.HasSuffix(p, "/models/"+vertexModel+":generateContent") {
			t.Errorf("upstream path %s", p)
		}
		if a := e.lastCall(t).Header.Get("Authorization"); !strings.HasPrefix(a, "Bearer ya29.fake-") {
			t.Errorf("upstream authorization %q, want a token from the fake's token endpoint", a)
		}
		stream := runVertexNode(t, e.h, "stream", vertexModel)
		checkProvStream(t, vertexCase, stream.provNodeResult, chat.provNodeResult)
		if stream.Content == nil || *stream.Content != provAnswer || !slices.Equal(stream.FinishReasons, []string{"stop"}) {
			t.Errorf("streamed content %v, finish %v", provStr(stream.Content), stream.FinishReasons)
		}
		if last := e.lastCall(t); !strings.HasSuffix(last.Path, ":streamGenerateContent") || last.RawQuery != "alt=sse" {
			t.Errorf("stream upstream %s?%s", last.Path, last.RawQuery)
		}
	})

	t.Run("parallel tool calls", func(t *testing.T) {
		reset()
		vertexTools(e.fake)
		tools := runVertexNode(t, e.h, "tools", vertexModel)
		checkProvCompletion(t, vertexCase, tools.provNodeResult, provToolText, "tool_calls", nil)
		stream := runVertexNode(t, e.h, "tools_stream", vertexModel)
		checkVertexToolStream(t, stream.provNodeResult)
		if stream.Content == nil || *stream.Content != provToolText {
			t.Errorf("streamed text %v, want %q", provStr(stream.Content), provToolText)
		}
	})

	for _, model := range []string{vertexModel, vertexModel3} {
		for _, scenario := range []string{"tool_followup", "tool_followup_stream"} {
			t.Run(scenario+" "+model, func(t *testing.T) {
				reset()
				vertexTools(e.fake)
				res := runVertexNode(t, e.h, scenario, model)
				if res.FirstTurn == nil || len(res.FirstTurn.ToolCalls) != 2 {
					t.Fatalf("first turn: %s", res.Raw)
				}
				if res.Content == nil || *res.Content != vertexFollowUp || res.FinishReason != "stop" && !slices.Equal(res.FinishReasons, []string{"stop"}) {
					t.Errorf("follow-up answer %v (%s%v), want %q", provStr(res.Content), res.FinishReason, res.FinishReasons, vertexFollowUp)
				}
				calls := e.modelCalls()
				if len(calls) != 2 {
					t.Fatalf("%d model calls, want 2", len(calls))
				}
				checkFollowUpUpstream(t, calls[1], model == vertexModel3)
			})
		}
	}

	t.Run("gemini-3 refuses a lost thought signature", func(t *testing.T) {
		reset()
		vertexTools(e.fake)
		first := runVertexNode(t, e.h, "tools", vertexModel3)
		if len(first.ToolCalls) != 2 || !strings.Contains(first.ToolCalls[0].ID, ".") {
			t.Fatalf("first turn tool calls %+v: want the signature inside the first id", first.ToolCalls)
		}
		stripped, _, _ := strings.Cut(first.ToolCalls[0].ID, ".")
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Weather and time?"},`+
			`{"role":"assistant","content":null,"tool_calls":[{"id":%q,"type":"function","function":{"name":"get_weather","arguments":%q}},{"id":%q,"type":"function","function":{"name":"get_time","arguments":%q}}]},`+
			`{"role":"tool","tool_call_id":%q,"content":"18C"},{"role":"tool","tool_call_id":%q,"content":"14:05"}]}`,
			vertexModel3, stripped, first.ToolCalls[0].Arguments, first.ToolCalls[1].ID, first.ToolCalls[1].Arguments, stripped, first.ToolCalls[1].ID)
		status, _, resp := e.h.Do(t, "POST", "/v1/chat/completions", body)
		if status != http.StatusBadRequest || !bytes.Contains(resp, []byte("thought_signature")) {
			t.Errorf("follow-up without the signature: %d %s, want the fake's 400", status, resp)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		reset()
		vertexText(e.fake)
		e.fake.FailNext(1, vertexfake.Failure{Status: 429, RetryDelay: "7s"})
		res := runVertexNode(t, e.h, "rate_limited", vertexModel)
		if res.Status != 429 || res.Class != "RateLimitError" || res.RetryAfter == nil || *res.RetryAfter != "7" {
			t.Errorf("SDK saw %d %s retry-after %v: %s", res.Status, res.Class, provStr(res.RetryAfter), res.Raw)
		}
	})

	t.Run("error mid-stream", func(t *testing.T) {
		reset()
		e.fake.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text(provAnswer)}, ChunkSize: 5, ErrorAfter: 3, BareError: true})
		res := runVertexNode(t, e.h, "stream_error", vertexModel)
		msg, _ := res.Error["message"].(string)
		if res.ChunksBeforeError == nil || *res.ChunksBeforeError < 1 || !strings.Contains(msg, "The service is currently unavailable") {
			t.Errorf("SDK result %s: want chunks, then an APIError carrying the upstream's message", res.Raw)
		}
	})

	t.Run("safety-blocked prompt", func(t *testing.T) {
		reset()
		e.fake.SetScenario(vertexfake.Scenario{BlockReason: "SAFETY", Usage: vertexfake.Usage{Prompt: 20}})
		chat := runVertexNode(t, e.h, "chat", vertexModel)
		if chat.FinishReason != "content_filter" || chat.Content != nil && *chat.Content != "" {
			t.Errorf("blocked chat: finish %q content %v", chat.FinishReason, provStr(chat.Content))
		}
		stream := runVertexNode(t, e.h, "stream", vertexModel)
		if !slices.Equal(stream.FinishReasons, []string{"content_filter"}) || stream.UsageChunks != 1 {
			t.Errorf("blocked stream: finish %v, %d usage chunks", stream.FinishReasons, stream.UsageChunks)
		}
	})
}

// TestVertexGoSDK drives the vertex plugin with openai-go: chat, stream
// with usage equal to the fake's last cumulative value, the streamed
// parallel tool call, embeddings, and transparent mode.
func TestVertexGoSDK(t *testing.T) {
	e := startVertex(t)
	client := openai.NewClient(option.WithBaseURL(e.h.URL+"/v1/"), option.WithAPIKey(harness.Key),
		option.WithMaxRetries(0), option.WithRequestTimeout(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	params := openai.ChatCompletionNewParams{Model: vertexModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather like in Paris?")}}

	t.Run("chat", func(t *testing.T) {
		vertexText(e.fake)
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if c.Choices[0].Message.Content != provAnswer || c.Choices[0].FinishReason != "stop" || c.Usage.TotalTokens != 29 {
			t.Errorf("completion %s", c.RawJSON())
		}
	})

	t.Run("stream usage is the last cumulative value", func(t *testing.T) {
		e.fake.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text(provAnswer)}, ChunkSize: 4,
			Usage: vertexfake.Usage{Prompt: 20, Candidates: 30, Thoughts: 6, Cached: 4}})
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		acc := openai.ChatCompletionAccumulator{}
		chunks := 0
		for stream.Next() {
			chunks++
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("the accumulator refused chunk %d: %s", chunks, stream.Current().RawJSON())
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		u := acc.Usage
		if acc.Choices[0].Message.Content != provAnswer || acc.Choices[0].FinishReason != "stop" ||
			u.PromptTokens != 20 || u.CompletionTokens != 36 || u.TotalTokens != 56 ||
			u.CompletionTokensDetails.ReasoningTokens != 6 || u.PromptTokensDetails.CachedTokens != 4 {
			t.Errorf("stream folded to %q %q usage %+v", acc.Choices[0].Message.Content, acc.Choices[0].FinishReason, u)
		}
		if chunks < 10 {
			t.Errorf("only %d chunks", chunks)
		}
	})

	t.Run("streamed parallel tool call", func(t *testing.T) {
		vertexTools(e.fake)
		p := params
		p.Tools = spineTools
		p.ParallelToolCalls = openai.Bool(true)
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		acc := openai.ChatCompletionAccumulator{}
		var firsts []openai.ChatCompletionChunkChoiceDeltaToolCall
		for stream.Next() {
			ch := stream.Current()
			if !acc.AddChunk(ch) {
				t.Fatalf("the accumulator refused %s", ch.RawJSON())
			}
			for _, c := range ch.Choices {
				for _, tc := range c.Delta.ToolCalls {
					if tc.ID != "" {
						firsts = append(firsts, tc)
					}
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		calls := acc.Choices[0].Message.ToolCalls
		if acc.Choices[0].FinishReason != "tool_calls" || len(calls) != 2 || len(firsts) != 2 || firsts[0].Index != 0 || firsts[1].Index != 1 {
			t.Fatalf("finish %q, calls %+v, first fragments %+v", acc.Choices[0].FinishReason, calls, firsts)
		}
		for i, c := range calls {
			if c.ID != firsts[i].ID || c.Function.Name != provWantCalls[i].name {
				t.Errorf("call %d: %s %s", i, c.ID, c.Function.Name)
			}
			checkProvArguments(t, fmt.Sprintf("call %d", i), c.Function.Arguments, provWantCalls[i].args)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: vertexEmbed,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first input", "second input"}}})
		if err != nil {
			t.Fatal(err)
		}
		want := vertexfake.Vector("second input", 768)
		if len(emb.Data) != 2 || emb.Data[1].Index != 1 || len(emb.Data[1].Embedding) != 768 || emb.Data[1].Embedding[5] != want[5] {
			t.Errorf("embeddings: %d vectors", len(emb.Data))
		}
	})

	t.Run("transparent mode", func(t *testing.T) {
		e.rec.Reset()
		path := "/-vertex/vertex_us/v1/projects/" + e.fake.Project() + "/locations/" + e.fake.Location() + "/publishers/google/models/" + vertexModel + ":generateContent"
		status, _, body := e.h.Do(t, "POST", path, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`)
		if status != 200 || !bytes.Contains(body, []byte(`"candidates"`)) {
			t.Fatalf("transparent call: %d %s", status, body)
		}
		rec := e.lastCall(t)
		if a := rec.Header.Get("Authorization"); !strings.HasPrefix(a, "Bearer ya29.fake-") || strings.Contains(a, harness.Key) {
			t.Errorf("transparent upstream authorization %q", a)
		}
	})
}

// TestVertexFailover routes gemini-failover over vertex_us, whose fake
// answers 503 UNAVAILABLE, and vertex_eu: the client gets vertex_eu's
// answer, streamed or not.
func TestVertexFailover(t *testing.T) {
	us, usRec := newVertexFake(t)
	eu, euRec := newVertexFake(t)
	other := &vertexEnv{fake: eu, rec: euRec}
	h := harness.Start(t, vertexHCL(us, usRec.URL(), other), harness.Options{WaitFor: []string{"vertex_us", "vertex_eu"}})
	e := &vertexEnv{h: h, fake: us, rec: usRec}
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			us.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text("from us")}})
			eu.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text("from eu")}})
			us.FailNext(1, vertexfake.Failure{Status: 503})
			usRec.Reset()
			euRec.Reset()
			status, _, body := h.Do(t, "POST", "/v1/chat/completions",
				fmt.Sprintf(`{"model":"gemini-failover","stream":%v,"messages":[{"role":"user","content":"where?"}]}`, stream))
			if status != 200 || !bytes.Contains(body, []byte("from eu")) || bytes.Contains(body, []byte("from us")) {
				t.Errorf("%d %s, want vertex_eu's answer", status, body)
			}
			if n := len(e.modelCalls()); n != 1 {
				t.Errorf("vertex_us got %d model calls, want 1", n)
			}
			if n := len((&vertexEnv{rec: euRec}).modelCalls()); n != 1 {
				t.Errorf("vertex_eu got %d model calls, want 1", n)
			}
		})
	}
}

// TestVertexWrongKey configures vertex_us with a service-account key the
// fake does not know: the fake's token endpoint verifies the assertion's
// signature and refuses it, no model call is made, and the client gets a
// credential error (401/403 from the plugin, or the host's 502
// upstream_auth_failed) that names no secret.
func TestVertexWrongKey(t *testing.T) {
	fake, rec := newVertexFake(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrong := fake.ServiceAccountJSONWithKey(other)
	h := harness.Start(t, vertexHCLWithKey(fake, rec.URL(), nil, wrong), harness.Options{})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.Instances()
		if err == nil && st["vertex_us"].State != "" && st["vertex_us"].State != "starting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vertex_us did not start: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pemKey struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(wrong, &pemKey); err != nil {
		t.Fatal(err)
	}
	keyLine := strings.Split(pemKey.PrivateKey, "\n")[1]
	for _, stream := range []bool{false, true} {
		status, _, body := h.Do(t, "POST", "/v1/chat/completions",
			fmt.Sprintf(`{"model":"gemini-2.5-flash","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream))
		e := checkProvErrorShape(t, body)
		if status != 502 || e["code"] != "upstream_auth_failed" {
			t.Errorf("stream=%v: %d %s, want 502 upstream_auth_failed", stream, status, body)
		}
		if bytes.Contains(body, []byte(keyLine[:20])) || bytes.Contains(body, []byte("PRIVATE KEY")) || bytes.Contains(body, []byte(vertexfake.DefaultClientEmail)) {
			t.Errorf("stream=%v: the error leaks credential detail: %s", stream, body)
		}
	}
	tokens, calls := 0, 0
	for _, r := range rec.Posts() {
		switch {
		case r.Path == vertexfake.TokenPath:
			tokens++
			if r.Status != http.StatusBadRequest || !bytes.Contains(r.Body, []byte("assertion=")) {
				t.Errorf("token request answered %d", r.Status)
			}
		case strings.Contains(r.Path, "/publishers/google/models/"):
			calls++
		}
	}
	if tokens == 0 || calls != 0 {
		t.Errorf("%d token exchanges, %d model calls; want refused exchanges and no model call", tokens, calls)
	}
}
