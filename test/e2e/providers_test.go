package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

// Upstream credentials the provider instances present to the fakes.
const (
	provAnthropicKey = "sk-ant-e2e-upstream-key"
	provAzureKey     = "azure-e2e-upstream-key"
	provAWSKeyID     = "AKIDE2EUPSTREAM"
	provAWSSecret    = "e2e-upstream-secret-access-key"
	// provBedrockModel is the Bedrock model id of the seed route's
	// Bedrock targets.
	provBedrockModel = "anthropic.claude-3-sonnet-20240229-v1:0"
	// provBedrockPath is that model id as one escaped path segment, the
	// way AWS clients send it.
	provBedrockPath = "/model/anthropic.claude-3-sonnet-20240229-v1%3A0"
	// provSeedModel is the seed route served by bedrock_us1, bedrock_eu1
	// and anthropic_direct, in that failover order.
	provSeedModel = "claude-3-sonnet-20240229"
)

// provRecord is one request an upstream fake received through its
// recorder, with the status the fake answered.
type provRecord struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	Status   int
}

// provRecorder serves an upstream fake on 127.0.0.1 with httptest and
// records every request it passes on. The Anthropic and Azure plugins'
// periodic health checks (GET model lists) reach their fakes too, so tests
// count model calls (POST requests) here instead of relying on those
// fakes' totals.
type provRecorder struct {
	srv *httptest.Server

	mu  sync.Mutex
	log []*provRecord
}

// newProvRecorder starts a recorder in front of next that stops when the
// test ends.
func newProvRecorder(t *testing.T, next http.Handler) *provRecorder {
	t.Helper()
	r := &provRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, "recorder: read request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := &provRecord{Method: req.Method, Path: req.URL.EscapedPath(), RawQuery: req.URL.RawQuery,
			Header: req.Header.Clone(), Body: body}
		r.mu.Lock()
		r.log = append(r.log, rec)
		r.mu.Unlock()
		next.ServeHTTP(&provStatusWriter{ResponseWriter: w, rec: rec, mu: &r.mu}, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the recorder's base URL, the one instances are configured with.
func (r *provRecorder) URL() string { return r.srv.URL }

// Posts returns a copy of the POST requests received so far: the model
// calls, without the health checks.
func (r *provRecorder) Posts() []provRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []provRecord
	for _, rec := range r.log {
		if rec.Method == http.MethodPost {
			out = append(out, *rec)
		}
	}
	return out
}

// PostStatuses lists the statuses the fake answered to each POST request.
func (r *provRecorder) PostStatuses() []int {
	var out []int
	for _, rec := range r.Posts() {
		out = append(out, rec.Status)
	}
	return out
}

// LastPost returns the last POST request, failing the test when there is
// none.
func (r *provRecorder) LastPost(t *testing.T) provRecord {
	t.Helper()
	posts := r.Posts()
	if len(posts) == 0 {
		t.Fatal("the upstream fake received no POST request")
	}
	return posts[len(posts)-1]
}

// Reset forgets the recorded requests.
func (r *provRecorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = nil
}

// provStatusWriter notes the status of a response as soon as its header
// is written, before any byte reaches the client, and keeps streaming
// responses flushable.
type provStatusWriter struct {
	http.ResponseWriter
	rec *provRecord
	mu  *sync.Mutex
}

func (w *provStatusWriter) WriteHeader(status int) {
	w.mu.Lock()
	if w.rec.Status == 0 {
		w.rec.Status = status
	}
	w.mu.Unlock()
	w.ResponseWriter.WriteHeader(status)
}

func (w *provStatusWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.rec.Status == 0 {
		w.rec.Status = http.StatusOK
	}
	w.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

func (w *provStatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *provStatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// provFakes are the upstream fakes of one test, each behind a recorder.
type provFakes struct {
	anthropic *anthropicfake.Server
	azure     *azurefake.Server
	bedrockUS *bedrockfake.Fake
	bedrockEU *bedrockfake.Fake

	anthropicRec *provRecorder
	azureRec     *provRecorder
	bedrockUSRec *provRecorder
	bedrockEURec *provRecorder
}

// startProvFakes starts the Anthropic, Azure and two Bedrock fakes
// (us-east-1 and eu-central-1) in process.
func startProvFakes(t *testing.T) *provFakes {
	t.Helper()
	f := &provFakes{
		anthropic: anthropicfake.New(anthropicfake.Options{APIKey: provAnthropicKey}),
		azure:     azurefake.New(azurefake.Options{APIKey: provAzureKey}).Start(),
		bedrockUS: bedrockfake.New(bedrockfake.Options{AccessKeyID: provAWSKeyID, SecretAccessKey: provAWSSecret, Region: "us-east-1"}),
		bedrockEU: bedrockfake.New(bedrockfake.Options{AccessKeyID: provAWSKeyID, SecretAccessKey: provAWSSecret, Region: "eu-central-1"}),
	}
	t.Cleanup(f.azure.Close)
	azureURL, err := url.Parse(f.azure.URL())
	if err != nil {
		t.Fatalf("azure fake URL: %v", err)
	}
	f.anthropicRec = newProvRecorder(t, f.anthropic.Handler())
	f.azureRec = newProvRecorder(t, httputil.NewSingleHostReverseProxy(azureURL))
	f.bedrockUSRec = newProvRecorder(t, f.bedrockUS)
	f.bedrockEURec = newProvRecorder(t, f.bedrockEU)
	return f
}

// reset restores every fake's default behaviour and forgets all traffic.
func (f *provFakes) reset() {
	f.anthropic.Reset()
	f.azure.Reset()
	f.bedrockUS.Reset()
	f.bedrockEU.Reset()
	for _, r := range []*provRecorder{f.anthropicRec, f.azureRec, f.bedrockUSRec, f.bedrockEURec} {
		r.Reset()
	}
}

// provHCL describes anthropic_direct, azure_eastus, bedrock_us1 and
// bedrock_eu1 in front of the fakes, the seed route for provSeedModel, and
// one route per provider: claude-* (Anthropic), gpt-* (Azure) and
// anthropic.* (Bedrock us-east-1). usSecret is bedrock_us1's secret
// access key.
func provHCL(f *provFakes, usSecret string) string {
	bedrock := func(name, region, endpoint, secret string) string {
		return fmt.Sprintf(`
provider %q {
  type = "bedrock"
  credential "access_key_id" {
    from "value" { value = %q }
  }
  credential "secret_access_key" {
    from "value" { value = %q }
  }
  config {
    region   = %q
    endpoint = %q
  }
}
`, name, provAWSKeyID, secret, region, endpoint)
	}
	return harness.APIKeyBlock + fmt.Sprintf(`
provider "anthropic_direct" {
  type = "anthropic"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = %q
  }
}

provider "azure_eastus" {
  type = "azure"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    endpoint = %q
  }
}
`, provAnthropicKey, f.anthropicRec.URL(), provAzureKey, f.azureRec.URL()) +
		bedrock("bedrock_us1", "us-east-1", f.bedrockUSRec.URL(), usSecret) +
		bedrock("bedrock_eu1", "eu-central-1", f.bedrockEURec.URL(), provAWSSecret) + `
route "claude-3-sonnet-20240229" {
  strategy = "failover"
  aliases  = ["sonnet"]
  target "bedrock_us1" { model = "anthropic.claude-3-sonnet-20240229-v1:0" }
  target "bedrock_eu1" { model = "anthropic.claude-3-sonnet-20240229-v1:0" }
  target "anthropic_direct" {}
}

route "claude-*" {
  target "anthropic_direct" {}
}

route "gpt-*" {
  target "azure_eastus" {}
}

route "anthropic.*" {
  target "bedrock_us1" {}
}
`
}

// provInstances are the instances provHCL configures.
var provInstances = []string{"anthropic_direct", "azure_eastus", "bedrock_us1", "bedrock_eu1"}

// startProvGateway starts the fakes and a host in front of them.
func startProvGateway(t *testing.T) (*harness.Host, *provFakes) {
	t.Helper()
	f := startProvFakes(t)
	h := harness.Start(t, provHCL(f, provAWSSecret), harness.Options{WaitFor: provInstances})
	return h, f
}

// provFragment is one tool-call delta of a stream, as the SDK parsed it.
type provFragment struct {
	Index     int     `json:"index"`
	ID        *string `json:"id"`
	Name      *string `json:"name"`
	Arguments *string `json:"arguments"`
}

// provToolCall is one tool call: from a completion, or folded from the
// fragments of a stream (then with its index).
type provToolCall struct {
	Index     int    `json:"index"`
	ID        string `json:"id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// provNodeResult is what test/node/providers.mjs prints.
type provNodeResult struct {
	Scenario  string  `json:"scenario"`
	RequestID string  `json:"request_id"`
	Content   *string `json:"content"`

	// Non-streamed completions.
	ID           string         `json:"id"`
	Object       string         `json:"object"`
	Model        string         `json:"model"`
	Choices      int            `json:"choices"`
	Role         string         `json:"role"`
	FinishReason string         `json:"finish_reason"`
	ToolCalls    []provToolCall `json:"tool_calls"`
	Usage        *openai.Usage  `json:"usage"`

	// Streams.
	ContentType   string            `json:"content_type"`
	IDs           []string          `json:"ids"`
	Models        []string          `json:"models"`
	Objects       []string          `json:"objects"`
	Roles         []string          `json:"roles"`
	FinishReasons []string          `json:"finish_reasons"`
	UsageChunks   int               `json:"usage_chunks"`
	Fragments     []provFragment    `json:"tool_call_fragments"`
	Chunks        []json.RawMessage `json:"chunks"`

	// The error scenario.
	Status int            `json:"status"`
	Class  string         `json:"class"`
	Type   *string        `json:"type"`
	Code   *string        `json:"code"`
	Error  map[string]any `json:"error"`
}

// runProvidersNode runs one scenario of test/node/providers.mjs with the
// official OpenAI Node SDK against the host.
func runProvidersNode(t *testing.T, h *harness.Host, scenario, model string) provNodeResult {
	t.Helper()
	return runNode[provNodeResult](t, h, "providers.mjs", scenario, model)
}

// The scripted answers.
const (
	provAnswer   = "It is sunny in Paris today, with a light breeze and 21 degrees."
	provToolText = "Let me check both."
)

// provWantCall is a tool call the fakes are scripted to make.
type provWantCall struct {
	name string
	args map[string]any
}

var provWantCalls = []provWantCall{
	{"get_weather", map[string]any{"city": "Paris"}},
	{"get_time", map[string]any{"timezone": "Europe/Paris"}},
}

// provCase is one provider behind the host, with how to script its fake.
type provCase struct {
	name     string
	model    string
	upstream func(f *provFakes) *provRecorder
	// text and tools script the fake's plain and tool-calling answers.
	text  func(f *provFakes)
	tools func(f *provFakes)
	// toolText is the text the tool answer carries besides its calls ("" for none).
	toolText string
	// toolIDs are the tool call ids the fake issues; nil when the fake
	// derives them itself.
	toolIDs []string
	// usage is the exact usage the fake reports; nil when the fake
	// computes it from the request.
	usage *openai.Usage
	// upstreamModel checks that the upstream request named the right model.
	upstreamModel func(t *testing.T, rec provRecord)
}

func provCases() []provCase {
	usage := &openai.Usage{PromptTokens: 20, CompletionTokens: 9, TotalTokens: 29}
	bodyModel := func(want string) func(t *testing.T, rec provRecord) {
		return func(t *testing.T, rec provRecord) {
			t.Helper()
			var body struct {
				Model string `json:"model"`
			}
			if err := json.Unmarshal(rec.Body, &body); err != nil || body.Model != want {
				t.Errorf("upstream body model = %q (%v), want %q: %s", body.Model, err, want, rec.Body)
			}
		}
	}
	return []provCase{
		{
			name:     "anthropic",
			model:    "claude-sonnet-4-5",
			upstream: func(f *provFakes) *provRecorder { return f.anthropicRec },
			text: func(f *provFakes) {
				f.anthropic.SetScenario(anthropicfake.Scenario{
					Content:   []anthropicfake.Block{anthropicfake.Text(provAnswer)},
					Usage:     anthropicfake.Usage{InputTokens: 20, OutputTokens: 9},
					ChunkSize: 5, Pings: true,
				})
			},
			tools: func(f *provFakes) {
				f.anthropic.SetScenario(anthropicfake.Scenario{
					Content: []anthropicfake.Block{
						anthropicfake.Text(provToolText),
						anthropicfake.ToolUse("toolu_weather_01", provWantCalls[0].name, provWantCalls[0].args),
						anthropicfake.ToolUse("toolu_time_02", provWantCalls[1].name, provWantCalls[1].args),
					},
					Usage:     anthropicfake.Usage{InputTokens: 20, OutputTokens: 9},
					ChunkSize: 4, SplitEvents: true,
				})
			},
			toolText:      provToolText,
			toolIDs:       []string{"toolu_weather_01", "toolu_time_02"},
			usage:         usage,
			upstreamModel: bodyModel("claude-sonnet-4-5"),
		},
		{
			name:     "azure",
			model:    "gpt-4o",
			upstream: func(f *provFakes) *provRecorder { return f.azureRec },
			text: func(f *provFakes) {
				f.azure.SetScenario(azurefake.Scenario{Text: provAnswer, SplitWrites: true})
			},
			tools: func(f *provFakes) {
				f.azure.SetScenario(azurefake.Scenario{ToolCalls: []azurefake.ToolCall{
					{Name: provWantCalls[0].name, Arguments: `{"city":"Paris"}`},
					{Name: provWantCalls[1].name, Arguments: `{"timezone":"Europe/Paris"}`},
				}})
			},
			upstreamModel: func(t *testing.T, rec provRecord) {
				t.Helper()
				if rec.Path != "/openai/deployments/gpt-4o/chat/completions" {
					t.Errorf("upstream path %q, want the gpt-4o deployment", rec.Path)
				}
			},
		},
		{
			name:     "bedrock",
			model:    provBedrockModel,
			upstream: func(f *provFakes) *provRecorder { return f.bedrockUSRec },
			text: func(f *provFakes) {
				f.bedrockUS.SetReply(bedrockfake.Reply{
					Blocks:     []bedrockfake.Block{{Text: provAnswer}},
					StopReason: "end_turn", Usage: bedrockfake.Usage{Input: 20, Output: 9}, ChunkSize: 5,
				})
			},
			// The tool inputs are spaced the way models write JSON:
			// ConverseStream relays them as written, Converse as a parsed
			// document, and the client must get the same arguments both ways.
			tools: func(f *provFakes) {
				f.bedrockUS.SetReply(bedrockfake.Reply{
					Blocks: []bedrockfake.Block{
						{Text: provToolText},
						{ToolUse: &bedrockfake.ToolUse{ID: "tooluse_weather_01", Name: provWantCalls[0].name, Input: `{"city": "Paris"}`}},
						{ToolUse: &bedrockfake.ToolUse{ID: "tooluse_time_02", Name: provWantCalls[1].name, Input: `{"timezone": "Europe/Paris"}`}},
					},
					StopReason: "tool_use", Usage: bedrockfake.Usage{Input: 20, Output: 9}, ChunkSize: 4, SplitFrames: true,
				})
			},
			toolText: provToolText,
			toolIDs:  []string{"tooluse_weather_01", "tooluse_time_02"},
			usage:    usage,
			upstreamModel: func(t *testing.T, rec provRecord) {
				t.Helper()
				if !strings.HasPrefix(rec.Path, provBedrockPath+"/") {
					t.Errorf("upstream path %q, want it below %s", rec.Path, provBedrockPath)
				}
			},
		},
	}
}

// TestProvidersNodeSDK points the official OpenAI Node SDK at the host and
// checks the answers of the Anthropic, Azure and Bedrock plugins, each in
// front of its wire-protocol fake: a completion, a stream, and a parallel
// tool call, non-streamed and streamed.
func TestProvidersNodeSDK(t *testing.T) {
	h, f := startProvGateway(t)
	for _, pc := range provCases() {
		t.Run(pc.name, func(t *testing.T) {
			f.reset()
			up := pc.upstream(f)

			pc.text(f)
			chat := runProvidersNode(t, h, "chat", pc.model)
			checkProvCompletion(t, pc, chat, provAnswer, "stop", nil)
			pc.upstreamModel(t, up.LastPost(t))

			stream := runProvidersNode(t, h, "stream", pc.model)
			checkProvStream(t, pc, stream, chat)
			if got := stream.Content; got == nil || *got != provAnswer {
				t.Errorf("streamed content %v, want %q", provStr(got), provAnswer)
			}
			if !slices.Equal(stream.FinishReasons, []string{"stop"}) {
				t.Errorf("stream finish reasons %v, want [stop]", stream.FinishReasons)
			}

			pc.tools(f)
			tools := runProvidersNode(t, h, "tools", pc.model)
			checkProvCompletion(t, pc, tools, pc.toolText, "tool_calls", pc.toolIDs)
			if last := up.LastPost(t); !bytes.Contains(last.Body, []byte(`"get_weather"`)) || !bytes.Contains(last.Body, []byte(`"get_time"`)) {
				t.Errorf("the upstream request does not declare both tools: %s", last.Body)
			}

			toolsStream := runProvidersNode(t, h, "tools_stream", pc.model)
			checkProvStream(t, pc, toolsStream, tools)
			checkProvToolFragments(t, toolsStream, tools)
		})
	}
}

// checkProvCompletion checks a non-streamed completion.
func checkProvCompletion(t *testing.T, pc provCase, got provNodeResult, content, finish string, toolIDs []string) {
	t.Helper()
	if got.Object != "chat.completion" || got.ID == "" || got.Model == "" || got.Choices != 1 || got.Role != "assistant" {
		t.Errorf("completion envelope: object %q id %q model %q choices %d role %q", got.Object, got.ID, got.Model, got.Choices, got.Role)
	}
	if got.RequestID == "" {
		t.Error("the response carries no X-Request-Id")
	}
	switch {
	case content == "" && got.Content != nil && *got.Content != "":
		t.Errorf("content %q, want none", *got.Content)
	case content != "" && (got.Content == nil || *got.Content != content):
		t.Errorf("content %v, want %q", provStr(got.Content), content)
	}
	if got.FinishReason != finish {
		t.Errorf("finish_reason %q, want %q", got.FinishReason, finish)
	}
	checkProvUsage(t, pc, got.Usage)
	if finish != "tool_calls" {
		if len(got.ToolCalls) != 0 {
			t.Errorf("unexpected tool calls %+v", got.ToolCalls)
		}
		return
	}
	if len(got.ToolCalls) != len(provWantCalls) {
		t.Fatalf("tool calls %+v, want %d", got.ToolCalls, len(provWantCalls))
	}
	seen := map[string]bool{}
	for i, tc := range got.ToolCalls {
		want := provWantCalls[i]
		if tc.Type != "function" || tc.Name != want.name || tc.ID == "" || seen[tc.ID] {
			t.Errorf("tool call %d = %+v, want a function call of %s with a unique id", i, tc, want.name)
		}
		seen[tc.ID] = true
		if toolIDs != nil && tc.ID != toolIDs[i] {
			t.Errorf("tool call %d id %q, want %q", i, tc.ID, toolIDs[i])
		}
		checkProvArguments(t, fmt.Sprintf("tool call %d", i), tc.Arguments, want.args)
	}
}

// checkProvUsage checks usage against the fake's figures, or for
// plausibility when the fake computes them.
func checkProvUsage(t *testing.T, pc provCase, u *openai.Usage) {
	t.Helper()
	switch {
	case u == nil:
		t.Error("no usage")
	case pc.usage != nil && (u.PromptTokens != pc.usage.PromptTokens || u.CompletionTokens != pc.usage.CompletionTokens || u.TotalTokens != pc.usage.TotalTokens):
		t.Errorf("usage %d/%d/%d, want %d/%d/%d", u.PromptTokens, u.CompletionTokens, u.TotalTokens,
			pc.usage.PromptTokens, pc.usage.CompletionTokens, pc.usage.TotalTokens)
	case u.PromptTokens <= 0 || u.CompletionTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens:
		t.Errorf("implausible usage %+v", *u)
	}
}

// checkProvArguments requires arguments to be one complete JSON object
// equal to want.
func checkProvArguments(t *testing.T, what, arguments string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(arguments), &got); err != nil {
		t.Errorf("%s: arguments %q are not complete JSON: %v", what, arguments, err)
		return
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: arguments %s, want %v", what, arguments, want)
	}
}

// checkProvStream checks a stream as the SDK parsed it and folds its
// chunks, which must obey the stream rules, into the completion they stand
// for: it must equal the non-streamed twin.
func checkProvStream(t *testing.T, pc provCase, got, twin provNodeResult) {
	t.Helper()
	if !strings.HasPrefix(got.ContentType, "text/event-stream") {
		t.Errorf("stream content type %q", got.ContentType)
	}
	if len(got.IDs) != 1 || len(got.Models) != 1 || !slices.Equal(got.Objects, []string{"chat.completion.chunk"}) {
		t.Errorf("chunks must share one id, model and object: ids %v models %v objects %v", got.IDs, got.Models, got.Objects)
	}
	if !slices.Equal(got.Roles, []string{"assistant"}) {
		t.Errorf("roles %v, want one assistant role", got.Roles)
	}
	if got.UsageChunks != 1 {
		t.Errorf("%d usage chunks, want 1", got.UsageChunks)
	}
	checkProvUsage(t, pc, got.Usage)
	acc := &openai.Accumulator{}
	for i, c := range got.Chunks {
		if err := acc.Add(c); err != nil {
			t.Fatalf("chunk %d breaks the stream rules: %v: %s", i, err, c)
		}
	}
	folded := acc.Completion()
	if len(folded.Choices) != 1 {
		t.Fatalf("the stream folds to %d choices", len(folded.Choices))
	}
	ch := folded.Choices[0]
	if ch.FinishReason != twin.FinishReason {
		t.Errorf("folded finish_reason %q, non-streamed %q", ch.FinishReason, twin.FinishReason)
	}
	if a, b := provStr(ch.Message.Content), provStr(twin.Content); a != b {
		t.Errorf("folded content %s, non-streamed %s", a, b)
	}
	if folded.Usage == nil || twin.Usage == nil || folded.Usage.TotalTokens != twin.Usage.TotalTokens || folded.Usage.PromptTokens != twin.Usage.PromptTokens {
		t.Errorf("folded usage %+v, non-streamed %+v", folded.Usage, twin.Usage)
	}
	if len(ch.Message.ToolCalls) != len(twin.ToolCalls) {
		t.Fatalf("folded tool calls %+v, non-streamed %+v", ch.Message.ToolCalls, twin.ToolCalls)
	}
	for i, tc := range ch.Message.ToolCalls {
		w := twin.ToolCalls[i]
		if tc.ID != w.ID || tc.Function.Name != w.Name || tc.Function.Arguments != w.Arguments {
			t.Errorf("the stream folds to tool call %d = %s %s %s, the non-streamed twin has %s %s %s", i, tc.ID, tc.Function.Name, tc.Function.Arguments, w.ID, w.Name, w.Arguments)
		}
	}
}

// checkProvToolFragments checks the raw tool-call fragments of a streamed
// parallel tool call: indexes 0 and 1, the id and name of the non-streamed
// twin on the first fragment of each call only, and arguments that arrive
// in pieces and add up to complete JSON with the scripted values.
// (checkProvStream compares the folded arguments with the twin's byte for
// byte.)
func checkProvToolFragments(t *testing.T, got, twin provNodeResult) {
	t.Helper()
	if !slices.Equal(got.FinishReasons, []string{"tool_calls"}) {
		t.Errorf("stream finish reasons %v, want [tool_calls]", got.FinishReasons)
	}
	type call struct {
		fragments int
		id, name  string
		arguments string
	}
	calls := map[int]*call{}
	var order []int
	for i, fr := range got.Fragments {
		c := calls[fr.Index]
		if c == nil {
			c = &call{}
			calls[fr.Index] = c
			order = append(order, fr.Index)
			if fr.ID == nil || *fr.ID == "" || fr.Name == nil || *fr.Name == "" {
				t.Errorf("fragment %d opens call %d without id and name: %+v", i, fr.Index, fr)
			} else {
				c.id, c.name = *fr.ID, *fr.Name
			}
		} else if fr.ID != nil || fr.Name != nil {
			t.Errorf("fragment %d repeats the id or name of call %d: id %s name %s", i, fr.Index, provStr(fr.ID), provStr(fr.Name))
		}
		c.fragments++
		if fr.Arguments != nil {
			c.arguments += *fr.Arguments
		}
	}
	slices.Sort(order)
	if !slices.Equal(order, []int{0, 1}) {
		t.Fatalf("tool-call indexes %v, want [0 1]: %+v", order, got.Fragments)
	}
	for i, w := range twin.ToolCalls {
		c := calls[i]
		if c.fragments < 2 {
			t.Errorf("call %d arrived in %d fragment(s); the fake streams its arguments in pieces", i, c.fragments)
		}
		if c.id != w.ID || c.name != w.Name {
			t.Errorf("streamed call %d is %s %s, non-streamed %s %s", i, c.id, c.name, w.ID, w.Name)
		}
		checkProvArguments(t, fmt.Sprintf("streamed call %d", i), c.arguments, provWantCalls[i].args)
	}
}

// TestProvidersBedrockWrongSecret configures bedrock_us1 with a wrong
// secret access key: the fake rejects the signature, and clients (plain
// HTTP, a stream, the Node SDK) get 502 upstream_auth_failed in OpenAI's
// error shape — the gateway's credentials are the operator's problem, not
// the client's — without the secret, and the instance is degraded.
func TestProvidersBedrockWrongSecret(t *testing.T) {
	const wrongSecret = "not-the-e2e-upstream-secret"
	f := startProvFakes(t)
	h := harness.Start(t, provHCL(f, wrongSecret), harness.Options{WaitFor: provInstances})
	chat := `{"model":"` + provBedrockModel + `","messages":[{"role":"user","content":"hi"}]}`
	stream := `{"model":"` + provBedrockModel + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	for _, tt := range []struct{ name, body string }{{"json", chat}, {"stream", stream}} {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := h.Do(t, "POST", "/v1/chat/completions", tt.body)
			if status != http.StatusBadGateway || !bytes.Contains(body, []byte(`"code":"upstream_auth_failed"`)) {
				t.Fatalf("status %d, want 502 upstream_auth_failed: %s", status, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q, want a JSON error", ct)
			}
			checkProvErrorShape(t, body)
			if bytes.Contains(body, []byte(wrongSecret)) {
				t.Errorf("the error body contains the secret: %s", body)
			}
		})
	}
	t.Run("node sdk", func(t *testing.T) {
		res := runProvidersNode(t, h, "error", provBedrockModel)
		if res.Status != http.StatusBadGateway || res.Code == nil || *res.Code != "upstream_auth_failed" {
			t.Fatalf("SDK error status %d (%s), want 502 upstream_auth_failed: %+v", res.Status, res.Class, res.Error)
		}
		if res.Class != "InternalServerError" {
			t.Errorf("SDK error class %q", res.Class)
		}
		if st := spineInstances(t, h)["bedrock_us1"]; st.State != "degraded" || !strings.Contains(st.Reason, "upstream rejected credentials") {
			t.Errorf("bedrock_us1 after its upstream refused the signature: %+v", st)
		}
		if res.Error["message"] == nil || res.Error["type"] == nil {
			t.Errorf("SDK error body %v lacks message or type", res.Error)
		}
	})
	statuses := f.bedrockUSRec.PostStatuses()
	if len(statuses) != 3 || f.bedrockUS.Requests() != 3 {
		t.Fatalf("the us-east-1 fake got %d requests (%v), want 3", f.bedrockUS.Requests(), statuses)
	}
	for i, rec := range f.bedrockUSRec.Posts() {
		if rec.Status != http.StatusForbidden {
			t.Errorf("request %d: the fake answered %d, want 403 for a bad signature", i, rec.Status)
		}
		authz := rec.Header.Get("Authorization")
		if !strings.HasPrefix(authz, "AWS4-HMAC-SHA256 Credential="+provAWSKeyID+"/") || !strings.Contains(authz, "/us-east-1/bedrock/aws4_request") {
			t.Errorf("request %d was not SigV4-signed for bedrock in us-east-1: %q", i, authz)
		}
	}
	if n := len(f.bedrockEURec.Posts()) + len(f.anthropicRec.Posts()); n != 0 {
		t.Errorf("%d requests reached other instances", n)
	}
}

// checkProvErrorShape requires an OpenAI error body with all four keys.
func checkProvErrorShape(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("body is not an OpenAI error: %s", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Errorf("error lacks %q: %s", k, body)
		}
	}
	return e.Error
}

// TestProvidersFailover sends the seed route's model, served by
// bedrock_us1, bedrock_eu1 and anthropic_direct in that order, while the
// first instances fail. Retryable failures (503, 429) move on to the next
// instance without the client noticing, streams included as long as no
// chunk was sent; a 400 is the client's own and is not retried.
func TestProvidersFailover(t *testing.T) {
	h, f := startProvGateway(t)
	const (
		fromUS        = "Answer from bedrock us-east-1."
		fromEU        = "Answer from bedrock eu-central-1."
		fromAnthropic = "Answer from anthropic direct."
	)
	script := func(f *provFakes) {
		f.bedrockUS.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: fromUS}}, StopReason: "end_turn", Usage: bedrockfake.Usage{Input: 5, Output: 5}})
		f.bedrockEU.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: fromEU}}, StopReason: "end_turn", Usage: bedrockfake.Usage{Input: 5, Output: 5}})
		f.anthropic.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(fromAnthropic)}})
	}
	tests := []struct {
		name   string
		stream bool
		arm    func(f *provFakes)
		// status and content are what the client must get; code is the
		// error code when status is not 200.
		status  int
		content string
		code    string
		// us, eu and anthropic are the statuses each fake answered to the
		// model calls it received, in order.
		us, eu, anthropic []int
	}{
		{
			name:   "healthy first instance answers",
			arm:    func(*provFakes) {},
			status: 200, content: fromUS,
			us: []int{200},
		},
		{
			name:   "503 fails over to the next instance",
			arm:    func(f *provFakes) { f.bedrockUS.FailNext(1, bedrockfake.ServiceUnavailable) },
			status: 200, content: fromEU,
			us: []int{503}, eu: []int{200},
		},
		{
			name: "429 fails over to the next instance",
			arm: func(f *provFakes) {
				fl := bedrockfake.Throttling
				fl.RetryAfter = "3"
				f.bedrockUS.FailNext(1, fl)
			},
			status: 200, content: fromEU,
			us: []int{429}, eu: []int{200},
		},
		{
			name: "both bedrock instances failing fall over to anthropic",
			arm: func(f *provFakes) {
				f.bedrockUS.FailNext(1, bedrockfake.ServiceUnavailable)
				f.bedrockEU.FailNext(1, bedrockfake.Throttling)
			},
			status: 200, content: fromAnthropic,
			us: []int{503}, eu: []int{429}, anthropic: []int{200},
		},
		{
			name:   "400 is returned, not retried",
			arm:    func(f *provFakes) { f.bedrockUS.FailNext(1, bedrockfake.Validation) },
			status: 400, code: "ValidationException",
			us: []int{400},
		},
		{
			name:   "stream: 503 before the first byte fails over",
			stream: true,
			arm:    func(f *provFakes) { f.bedrockUS.FailNext(1, bedrockfake.ServiceUnavailable) },
			status: 200, content: fromEU,
			us: []int{503}, eu: []int{200},
		},
		{
			name:   "stream: 429 before the first byte fails over",
			stream: true,
			arm:    func(f *provFakes) { f.bedrockUS.FailNext(1, bedrockfake.Throttling) },
			status: 200, content: fromEU,
			us: []int{429}, eu: []int{200},
		},
		{
			name:   "stream: exception frame before the first chunk fails over",
			stream: true,
			arm: func(f *provFakes) {
				f.bedrockUS.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: fromUS}}, StopReason: "end_turn",
					Exception: "serviceUnavailableException", ExceptionAfter: 0})
			},
			status: 200, content: fromEU,
			us: []int{200}, eu: []int{200},
		},
		{
			name:   "stream: 400 is returned, not retried",
			stream: true,
			arm:    func(f *provFakes) { f.bedrockUS.FailNext(1, bedrockfake.Validation) },
			status: 400, code: "ValidationException",
			us: []int{400},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.reset()
			script(f)
			tt.arm(f)
			body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"Where are you?"}]}`, provSeedModel, tt.stream)
			status, hdr, resp := h.Do(t, "POST", "/v1/chat/completions", body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, resp)
			}
			switch {
			case tt.status != 200:
				if e := checkProvErrorShape(t, resp); e["code"] != tt.code {
					t.Errorf("error code %v, want %s", e["code"], tt.code)
				}
			case tt.stream:
				if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Fatalf("content type %q: %s", ct, resp)
				}
				cc := foldProvSSE(t, resp)
				if got := provStr(cc.Choices[0].Message.Content); got != fmt.Sprintf("%q", tt.content) {
					t.Errorf("streamed content %s, want %q", got, tt.content)
				}
				if cc.Choices[0].FinishReason != "stop" {
					t.Errorf("finish_reason %q", cc.Choices[0].FinishReason)
				}
			default:
				var cc openai.ChatCompletion
				if err := json.Unmarshal(resp, &cc); err != nil || len(cc.Choices) != 1 {
					t.Fatalf("not a completion: %v: %s", err, resp)
				}
				if got := provStr(cc.Choices[0].Message.Content); got != fmt.Sprintf("%q", tt.content) {
					t.Errorf("content %s, want %q", got, tt.content)
				}
			}
			for _, up := range []struct {
				name string
				rec  *provRecorder
				want []int
			}{
				{"bedrock_us1", f.bedrockUSRec, tt.us},
				{"bedrock_eu1", f.bedrockEURec, tt.eu},
				{"anthropic_direct", f.anthropicRec, tt.anthropic},
			} {
				if got := up.rec.PostStatuses(); !slices.Equal(got, up.want) {
					t.Errorf("%s answered %v, want %v", up.name, got, up.want)
				}
			}
			if got, want := f.bedrockUS.Requests(), len(tt.us); got != want {
				t.Errorf("the us-east-1 fake counted %d requests, want %d", got, want)
			}
			if got, want := f.bedrockEU.Requests(), len(tt.eu); got != want {
				t.Errorf("the eu-central-1 fake counted %d requests, want %d", got, want)
			}
			for _, rec := range append(f.bedrockUSRec.Posts(), f.bedrockEURec.Posts()...) {
				if !strings.HasPrefix(rec.Path, provBedrockPath+"/") {
					t.Errorf("bedrock request path %q, want the target's model %s", rec.Path, provBedrockModel)
				}
			}
			if len(tt.anthropic) > 0 {
				var sent struct {
					Model string `json:"model"`
				}
				if last := f.anthropicRec.LastPost(t); json.Unmarshal(last.Body, &sent) != nil || sent.Model != provSeedModel {
					t.Errorf("anthropic got model %q, want the requested %q", sent.Model, provSeedModel)
				}
			}
		})
	}
}

// foldProvSSE checks the SSE framing of a chat stream, requires [DONE]
// and no error event, and folds the chunks.
func foldProvSSE(t *testing.T, body []byte) *openai.ChatCompletion {
	t.Helper()
	acc := &openai.Accumulator{}
	done := false
	for _, event := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(event, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("not one data line: %q", event)
		}
		if done {
			t.Fatalf("event after [DONE]: %q", event)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		if strings.HasPrefix(data, `{"error"`) {
			t.Fatalf("the client saw an error event: %s", data)
		}
		if err := acc.Add([]byte(data)); err != nil {
			t.Fatalf("chunk breaks the stream rules: %v: %s", err, data)
		}
	}
	if !done {
		t.Fatalf("stream without [DONE]: %s", body)
	}
	cc := acc.Completion()
	if len(cc.Choices) != 1 {
		t.Fatalf("stream folds to %d choices: %s", len(cc.Choices), body)
	}
	return cc
}

// TestProvidersTransparent sends native requests through
// /-{type}/{instance}/...: they reach the fake unchanged but for the
// credentials the plugin injects (or the SigV4 signature it makes), and
// the native response comes back unchanged.
func TestProvidersTransparent(t *testing.T) {
	h, f := startProvGateway(t)
	const anthropicBody = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}`
	const azureBody = `{"messages":[{"role":"user","content":"Hello"}],"max_tokens":64,"user":"e2e"}`
	const converseBody = `{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}`
	bedrockPath := provBedrockPath
	tests := []struct {
		name   string
		path   string
		body   string
		header []string
		script func(f *provFakes)
		rec    func(f *provFakes) *provRecorder
		// upstreamPath and upstreamQuery are what the fake must see.
		upstreamPath, upstreamQuery string
		// direct sends the same native request straight to the fake with
		// valid credentials; the host's response must equal its answer.
		direct func(t *testing.T, f *provFakes) (int, []byte)
		// check inspects the upstream request and the response.
		check func(t *testing.T, rec provRecord, hdr http.Header, resp []byte)
	}{
		{
			name: "anthropic messages",
			path: "/-anthropic/anthropic_direct/v1/messages",
			body: anthropicBody,
			// The way the Anthropic SDK sends its key: x-api-key only.
			header: []string{"Authorization", "", "X-Api-Key", harness.Key},
			script: func(f *provFakes) {
				f.anthropic.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(provAnswer)}})
			},
			rec:          func(f *provFakes) *provRecorder { return f.anthropicRec },
			upstreamPath: "/v1/messages",
			direct: func(t *testing.T, f *provFakes) (int, []byte) {
				return provDirect(t, f.anthropicRec.URL()+"/v1/messages", anthropicBody,
					"x-api-key", provAnthropicKey, "anthropic-version", "2023-06-01")
			},
			check: func(t *testing.T, rec provRecord, hdr http.Header, resp []byte) {
				if rec.Header.Get("X-Api-Key") != provAnthropicKey || rec.Header.Get("Anthropic-Version") == "" {
					t.Errorf("upstream headers: x-api-key %q anthropic-version %q", rec.Header.Get("X-Api-Key"), rec.Header.Get("Anthropic-Version"))
				}
				var msg struct {
					Type    string `json:"type"`
					Content []struct {
						Text string `json:"text"`
					} `json:"content"`
				}
				if err := json.Unmarshal(resp, &msg); err != nil || msg.Type != "message" || len(msg.Content) != 1 || msg.Content[0].Text != provAnswer {
					t.Errorf("not the native message: %v: %s", err, resp)
				}
			},
		},
		{
			name:   "anthropic messages stream",
			path:   "/-anthropic/anthropic_direct/v1/messages",
			body:   strings.Replace(anthropicBody, `{`, `{"stream":true,`, 1),
			header: []string{"Anthropic-Version", "2023-06-01"},
			script: func(f *provFakes) {
				f.anthropic.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text(provAnswer)}, ChunkSize: 6})
			},
			rec:          func(f *provFakes) *provRecorder { return f.anthropicRec },
			upstreamPath: "/v1/messages",
			direct: func(t *testing.T, f *provFakes) (int, []byte) {
				return provDirect(t, f.anthropicRec.URL()+"/v1/messages", strings.Replace(anthropicBody, `{`, `{"stream":true,`, 1),
					"x-api-key", provAnthropicKey, "anthropic-version", "2023-06-01")
			},
			check: func(t *testing.T, rec provRecord, hdr http.Header, resp []byte) {
				if rec.Header.Get("X-Api-Key") != provAnthropicKey || rec.Header.Get("Anthropic-Version") != "2023-06-01" {
					t.Errorf("upstream headers: x-api-key %q anthropic-version %q", rec.Header.Get("X-Api-Key"), rec.Header.Get("Anthropic-Version"))
				}
				if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Errorf("content type %q, want the native event stream", ct)
				}
				if !bytes.Contains(resp, []byte("event: message_start")) || !bytes.Contains(resp, []byte("event: message_stop")) {
					t.Errorf("not Anthropic's native SSE: %s", resp)
				}
			},
		},
		{
			name:   "bedrock converse",
			path:   "/-bedrock/bedrock_us1" + bedrockPath + "/converse",
			body:   converseBody,
			header: []string{"X-Amz-Date", "20000101T000000Z", "X-Amz-Security-Token", "client-token"},
			script: func(f *provFakes) {
				f.bedrockUS.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: provAnswer}}, StopReason: "end_turn", Usage: bedrockfake.Usage{Input: 20, Output: 9}})
			},
			rec:          func(f *provFakes) *provRecorder { return f.bedrockUSRec },
			upstreamPath: bedrockPath + "/converse",
			check: func(t *testing.T, rec provRecord, hdr http.Header, resp []byte) {
				checkProvSigV4(t, rec)
				var out struct {
					Output struct {
						Message struct {
							Role    string `json:"role"`
							Content []struct {
								Text string `json:"text"`
							} `json:"content"`
						} `json:"message"`
					} `json:"output"`
					StopReason string `json:"stopReason"`
					Usage      struct {
						InputTokens  int `json:"inputTokens"`
						OutputTokens int `json:"outputTokens"`
					} `json:"usage"`
				}
				if err := json.Unmarshal(resp, &out); err != nil || out.Output.Message.Role != "assistant" || len(out.Output.Message.Content) != 1 ||
					out.Output.Message.Content[0].Text != provAnswer || out.StopReason != "end_turn" || out.Usage.InputTokens != 20 || out.Usage.OutputTokens != 9 {
					t.Errorf("not the native Converse response: %v: %s", err, resp)
				}
			},
		},
		{
			name: "bedrock converse-stream",
			path: "/-bedrock/bedrock_us1" + bedrockPath + "/converse-stream",
			body: converseBody,
			script: func(f *provFakes) {
				f.bedrockUS.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: provAnswer}}, StopReason: "end_turn", ChunkSize: 8})
			},
			rec:          func(f *provFakes) *provRecorder { return f.bedrockUSRec },
			upstreamPath: bedrockPath + "/converse-stream",
			check: func(t *testing.T, rec provRecord, hdr http.Header, resp []byte) {
				checkProvSigV4(t, rec)
				if ct := hdr.Get("Content-Type"); ct != "application/vnd.amazon.eventstream" {
					t.Errorf("content type %q, want the native event stream", ct)
				}
				for _, want := range []string{"messageStart", "contentBlockDelta", "messageStop", "metadata", provAnswer[:8]} {
					if !bytes.Contains(resp, []byte(want)) {
						t.Errorf("the event stream lacks %q", want)
					}
				}
			},
		},
		{
			name:   "azure chat completions",
			path:   "/-azure/azure_eastus/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
			body:   azureBody,
			header: []string{"Api-Key", "client-key-must-not-pass"},
			script: func(f *provFakes) {
				f.azure.SetScenario(azurefake.Scenario{Text: provAnswer})
			},
			rec:           func(f *provFakes) *provRecorder { return f.azureRec },
			upstreamPath:  "/openai/deployments/gpt-4o/chat/completions",
			upstreamQuery: "api-version=2024-10-21",
			direct: func(t *testing.T, f *provFakes) (int, []byte) {
				return provDirect(t, f.azureRec.URL()+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", azureBody,
					"api-key", provAzureKey)
			},
			check: func(t *testing.T, rec provRecord, hdr http.Header, resp []byte) {
				if rec.Header.Get("Api-Key") != provAzureKey {
					t.Errorf("upstream api-key %q, want the instance's key", rec.Header.Get("Api-Key"))
				}
				if !bytes.Contains(resp, []byte(`"prompt_filter_results"`)) || !bytes.Contains(resp, []byte(provAnswer)) {
					t.Errorf("not Azure's native response (filter results are kept in transparent mode): %s", resp)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.reset()
			tt.script(f)
			wantStatus, wantBody := http.StatusOK, []byte(nil)
			if tt.direct != nil {
				wantStatus, wantBody = tt.direct(t, f)
				if wantStatus != http.StatusOK {
					t.Fatalf("the fake refused the direct request: %d %s", wantStatus, wantBody)
				}
				f.reset()
				tt.script(f)
			}
			status, hdr, resp := h.Do(t, "POST", tt.path, tt.body, tt.header...)
			if status != wantStatus {
				t.Fatalf("status %d, want %d: %s", status, wantStatus, resp)
			}
			if wantBody != nil && !bytes.Equal(resp, wantBody) {
				t.Errorf("the response differs from the fake's own answer:\n got %s\nwant %s", resp, wantBody)
			}
			posts := tt.rec(f).Posts()
			if len(posts) != 1 {
				t.Fatalf("the fake got %d POST requests, want 1", len(posts))
			}
			rec := posts[0]
			if rec.Status != http.StatusOK || rec.Path != tt.upstreamPath || rec.RawQuery != tt.upstreamQuery || string(rec.Body) != tt.body {
				t.Errorf("upstream request: status %d path %q query %q body %s; want path %q query %q and the client's body",
					rec.Status, rec.Path, rec.RawQuery, rec.Body, tt.upstreamPath, tt.upstreamQuery)
			}
			for name, values := range rec.Header {
				for _, v := range values {
					if strings.Contains(v, harness.Key) || strings.Contains(v, "must-not-pass") || strings.Contains(v, "client-token") {
						t.Errorf("the client's credential reached the upstream in %s: %q", name, v)
					}
				}
			}
			tt.check(t, rec, hdr, resp)
		})
	}
}

// checkProvSigV4 requires a fresh SigV4 signature by the instance's key
// for bedrock in us-east-1, in place of the client's own headers.
func checkProvSigV4(t *testing.T, rec provRecord) {
	t.Helper()
	authz := rec.Header.Get("Authorization")
	if !strings.HasPrefix(authz, "AWS4-HMAC-SHA256 Credential="+provAWSKeyID+"/") || !strings.Contains(authz, "/us-east-1/bedrock/aws4_request") {
		t.Errorf("upstream Authorization %q is not the instance's SigV4 signature", authz)
	}
	if d := rec.Header.Get("X-Amz-Date"); d == "" || d == "20000101T000000Z" {
		t.Errorf("upstream X-Amz-Date %q, want the plugin's signing time", d)
	}
}

// provDirect sends body straight to an upstream fake with the given
// headers and returns the status and body.
func provDirect(t *testing.T, target, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatalf("direct request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("direct request to %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("direct response from %s: %v", target, err)
	}
	return resp.StatusCode, b
}

// provStr renders an optional string for messages and comparisons:
// quoted, or null.
func provStr(s *string) string {
	if s == nil {
		return "null"
	}
	return fmt.Sprintf("%q", *s)
}
