package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

const budgetKey = "sk-budget-cent-0123456789"

// budgetUpstream is a fake OpenAI behind a counter of the chat requests
// that reach it.
type budgetUpstream struct {
	*httptest.Server
	fake  *openaifake.Server
	chats atomic.Int64
}

func startBudgetUpstream(t *testing.T) *budgetUpstream {
	u := &budgetUpstream{fake: openaifake.New(openaifake.Options{})}
	// Slow enough that the concurrent requests overlap.
	u.fake.SetScenario(openaifake.Scenario{Reply: "Budgets are reserved before requests run.", ChunkDelay: 5 * time.Millisecond})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions") {
			u.chats.Add(1)
		}
		u.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// budgetAnswer is what one request got.
type budgetAnswer struct {
	status        int
	code, message string
	// cost is the reported cost (the header of a JSON answer, the
	// usage chunk's cost_usd of a stream); -1 when none was reported.
	cost                 float64
	prompt, completion   int64
	cached, cacheWritten int64
}

func budgetSend(ctx context.Context, url, body string) (budgetAnswer, error) {
	return budgetSendAs(ctx, url, budgetKey, body)
}

func budgetSendAs(ctx context.Context, url, key, body string) (budgetAnswer, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return budgetAnswer{}, err
	}
	defer resp.Body.Close()
	a := budgetAnswer{status: resp.StatusCode, cost: -1}
	type usage struct {
		PromptTokens        int64    `json:"prompt_tokens"`
		CompletionTokens    int64    `json:"completion_tokens"`
		CostUSD             *float64 `json:"cost_usd"`
		PromptTokensDetails struct {
			CachedTokens     int64 `json:"cached_tokens"`
			CacheWriteTokens int64 `json:"cache_write_tokens"`
		} `json:"prompt_tokens_details"`
	}
	take := func(u *usage) {
		a.prompt, a.completion = u.PromptTokens, u.CompletionTokens
		a.cached, a.cacheWritten = u.PromptTokensDetails.CachedTokens, u.PromptTokensDetails.CacheWriteTokens
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			return a, fmt.Errorf("status %d with a body not in the OpenAI error shape: %s", resp.StatusCode, b)
		}
		a.code, a.message = e.Error.Code, e.Error.Message
		return a, nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("data: {")) {
				continue
			}
			var ch struct {
				Usage *usage `json:"usage"`
			}
			if err := json.Unmarshal(line[6:], &ch); err != nil {
				return a, err
			}
			if ch.Usage != nil {
				take(ch.Usage)
				if ch.Usage.CostUSD != nil {
					a.cost = *ch.Usage.CostUSD
				}
			}
		}
		return a, sc.Err()
	}
	var c struct {
		Usage usage `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return a, err
	}
	take(&c.Usage)
	if h := resp.Header.Get("X-LLMProxy-Cost-USD"); h != "" {
		if a.cost, err = strconv.ParseFloat(h, 64); err != nil {
			return a, err
		}
	}
	return a, nil
}

// budgetUpstreamBlock is the provider and route of the fake upstream.
func budgetUpstreamBlock(up *budgetUpstream) string {
	return fmt.Sprintf(`
provider "up" {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = "%s/v1"
  }
}
route "gpt-4o-mini" {
  target "up" {}
}
route "house-model" {
  target "up" {}
}
prices {
  price "gpt-4o-mini" {
    input  = 20
    output = 40
  }
}
`, openaifake.DefaultKey, up.URL)
}

// budgetCentKey is a key with a $0.01 daily budget.
var budgetCentKey = fmt.Sprintf(`
api_key "cent" {
  key    = %q
  models = ["*"]
  budget {
    usd    = 0.01
    period = "day"
  }
}
`, budgetKey)

const budgetInput, budgetOutput = 20e-6, 40e-6 // USD per token, as priced above

func budgetBody(stream, usage bool) string {
	m := map[string]any{"model": "gpt-4o-mini", "max_tokens": 16,
		"messages": []map[string]string{{"role": "user", "content": "How do hard budgets work?"}}}
	if stream {
		m["stream"] = true
		if usage {
			m["stream_options"] = map[string]bool{"include_usage": true}
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// budgetExhaust spends the $0.01 budget of budgetKey with waves of
// concurrent requests (JSON, streams with and without usage) spread over
// the hosts at urls, and checks that the spend never passes the budget,
// that it is used up to less than one reservation, and that the next
// requests are refused up front.
func budgetExhaust(t *testing.T, up *budgetUpstream, urls []string) {
	// The known cost of one request, from a JSON answer's usage.
	first, err := budgetSend(context.Background(), urls[0], budgetBody(false, false))
	if err != nil || first.status != http.StatusOK {
		t.Fatalf("first request: %+v, %v", first, err)
	}
	unit := float64(first.prompt)*budgetInput + float64(first.completion)*budgetOutput
	if first.cost < 0 || math.Abs(first.cost-unit) > 1e-9 {
		t.Fatalf("X-LLMProxy-Cost-USD = %v, want %v for %d+%d tokens", first.cost, unit, first.prompt, first.completion)
	}
	worst := float64(len(budgetBody(true, true)))*budgetInput + 16*budgetOutput
	t.Logf("one request costs $%.6f and reserves up to $%.6f", unit, worst)

	var mu sync.Mutex
	ok, refused := 1, 0
	for wave := 0; wave < 20; wave++ {
		var wg sync.WaitGroup
		var waveOK atomic.Int64
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stream, usage := i%3 != 0, i%3 == 1
				a, err := budgetSend(context.Background(), urls[i%len(urls)], budgetBody(stream, usage))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case a.status == http.StatusOK:
					ok++
					waveOK.Add(1)
					if (!stream || usage) && math.Abs(a.cost-unit) > 1e-9 {
						t.Errorf("reported cost %v (stream %v), want %v", a.cost, stream, unit)
					}
					if stream && !usage && a.cost != -1 {
						t.Error("a stream that did not ask for usage got a usage chunk")
					}
				case a.status == http.StatusPaymentRequired && a.code == "budget_exceeded":
					refused++
				default:
					t.Errorf("unexpected answer %+v", a)
				}
			}()
		}
		wg.Wait()
		if waveOK.Load() == 0 {
			break
		}
	}
	spent := float64(ok) * unit
	t.Logf("%d requests served ($%.6f), %d refused", ok, spent, refused)
	if spent > 0.01+1e-9 {
		t.Fatalf("the key spent $%.6f over its $0.01 budget", spent)
	}
	if 0.01-spent > worst {
		t.Fatalf("the budget refused requests with $%.6f left, more than one reservation ($%.6f)", 0.01-spent, worst)
	}
	if refused == 0 {
		t.Fatal("no request was refused")
	}

	// The next request is refused up front: the upstream never sees it.
	before := up.chats.Load()
	for _, url := range urls {
		for _, stream := range []bool{false, true} {
			a, err := budgetSend(context.Background(), url, budgetBody(stream, true))
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusPaymentRequired || a.code != "budget_exceeded" {
				t.Fatalf("after the budget: %+v, want 402 budget_exceeded", a)
			}
		}
	}
	if n := up.chats.Load() - before; n != 0 {
		t.Fatalf("the upstream saw %d refused requests", n)
	}
	if served := up.chats.Load(); served != int64(ok) {
		t.Fatalf("the upstream served %d chats, the clients got %d answers", served, ok)
	}
}

// TestBudgetHardLimit: a key with a $0.01 budget sends many concurrent
// requests, JSON and streams, to a fake with a known usage. Every
// request reserves its worst case before it runs, so the spend never
// passes the budget; once it is used up the next request is refused up
// front with 402 budget_exceeded and never reaches the upstream.
func TestBudgetHardLimit(t *testing.T) {
	up := startBudgetUpstream(t)
	h := harness.Start(t, harness.APIKeyBlock+budgetUpstreamBlock(up)+budgetCentKey, harness.Options{WaitFor: []string{"up"}})
	budgetExhaust(t, up, []string{h.URL})
	// The request log has the cost of JSON answers and of streams.
	logs := h.Logs()
	if !strings.Contains(logs, "key=cent duration=") || !strings.Contains(logs, "cost_usd=0.0004") ||
		!strings.Contains(logs, "stream settled") {
		t.Error("the request log has no cost_usd for the budgeted key's requests")
	}
	// Other keys are not affected.
	if status, _, b := h.Do(t, "POST", "/v1/chat/completions", budgetBody(false, false)); status != http.StatusOK {
		t.Fatalf("a key without a budget: %d %s", status, b)
	}
}

// TestBudgetAcrossReplicas: the same, with the requests spread over two
// replicas sharing the budget in a real Redis.
func TestBudgetAcrossReplicas(t *testing.T) {
	up := startBudgetUpstream(t)
	rd := startTrafficRedis(t)
	cfg := harness.APIKeyBlock + budgetUpstreamBlock(up) + budgetCentKey + fmt.Sprintf(`
budgets {
  redis = %q
}
`, rd.url())
	a := harness.Start(t, cfg, harness.Options{WaitFor: []string{"up"}})
	b := harness.Start(t, cfg, harness.Options{WaitFor: []string{"up"}})
	budgetExhaust(t, up, []string{a.URL, b.URL})

	// Budgets fail closed: without the ledger no request of a budgeted
	// key runs.
	rd.kill()
	before := up.chats.Load()
	ans, err := budgetSend(context.Background(), a.URL, budgetBody(false, false))
	if err != nil || ans.status != http.StatusServiceUnavailable || ans.code != "budget_unavailable" {
		t.Fatalf("with Redis down: %+v, %v; want 503 budget_unavailable", ans, err)
	}
	if up.chats.Load() != before {
		t.Fatal("a request reached the upstream without a reservation")
	}
}

// TestBudgetGroupsPricesAndCancels: keys of a group share its budget; a
// budgeted key may not use a model without a price; a request without an
// output cap is sent with budgets.max_tokens; a cancelled stream gives
// its reservation back.
func TestBudgetGroupsPricesAndCancels(t *testing.T) {
	const team1, team2, solo = "sk-budget-team1-0123456789", "sk-budget-team2-0123456789", "sk-budget-solo-0123456789"
	up := startBudgetUpstream(t)
	h := harness.Start(t, harness.APIKeyBlock+budgetUpstreamBlock(up)+fmt.Sprintf(`
api_key "team1" {
  key    = %q
  models = ["*"]
  group  = "team"
}
api_key "team2" {
  key    = %q
  models = ["*"]
  group  = "team"
}
key_group "team" {
  budget {
    usd    = 0.01
    period = "month"
  }
}
api_key "solo" {
  key         = %q
  models      = ["*"]
  passthrough = ["up"]
  budget {
    usd    = 0.005
    period = "week"
  }
}
budgets {
  max_tokens = 32
}
`, team1, team2, solo), harness.Options{WaitFor: []string{"up"}})
	ctx := context.Background()
	uncapped := func(model string, stream bool) string {
		b, _ := json.Marshal(map[string]any{"model": model, "stream": stream,
			"messages": []map[string]string{{"role": "user", "content": "How do hard budgets work?"}}})
		return string(b)
	}

	// A model without a price.
	before := up.chats.Load()
	a, err := budgetSendAs(ctx, h.URL, team1, uncapped("house-model", false))
	if err != nil || a.status != http.StatusForbidden || a.code != "price_unknown" || !strings.Contains(a.message, "house-model") {
		t.Fatalf("unpriced model: %+v, %v; want 403 price_unknown naming the model", a, err)
	}
	if up.chats.Load() != before {
		t.Fatal("a request of a budgeted key on an unpriced model reached the upstream")
	}

	// The output cap of an uncapped request is sent upstream.
	if a, err := budgetSendAs(ctx, h.URL, team1, uncapped("gpt-4o-mini", false)); err != nil || a.status != http.StatusOK {
		t.Fatalf("uncapped request: %+v, %v", a, err)
	}
	var sent struct {
		MaxCompletionTokens int `json:"max_completion_tokens"`
	}
	if err := json.Unmarshal(up.fake.LastRequest().Body, &sent); err != nil || sent.MaxCompletionTokens != 32 {
		t.Fatalf("upstream request %s: want max_completion_tokens 32", up.fake.LastRequest().Body)
	}

	// Both keys of the group spend its one budget.
	served := 1
	for i := 0; ; i++ {
		key := []string{team1, team2}[i%2]
		a, err := budgetSendAs(ctx, h.URL, key, uncapped("gpt-4o-mini", i%4 == 1))
		if err != nil {
			t.Fatal(err)
		}
		if a.status == http.StatusPaymentRequired {
			if a.code != "budget_exceeded" || !strings.Contains(a.message, "group:team") {
				t.Fatalf("refusal %+v does not name the group's budget", a)
			}
			break
		}
		if a.status != http.StatusOK || i > 100 {
			t.Fatalf("request %d: %+v", i, a)
		}
		served++
	}
	for _, key := range []string{team1, team2} {
		if a, _ := budgetSendAs(ctx, h.URL, key, uncapped("gpt-4o-mini", false)); a.status != http.StatusPaymentRequired {
			t.Fatalf("key %s of the spent group: %+v", key, a)
		}
	}
	t.Logf("the group's keys were served %d requests together", served)

	// Transparent mode cannot be priced before it runs.
	if status, _, b := h.Do(t, "GET", "/-openai/up/v1/models", "", "Authorization", "Bearer "+solo); status != http.StatusForbidden || !strings.Contains(string(b), "budget_unmetered") {
		t.Fatalf("transparent mode with a budgeted key: %d %s", status, b)
	}

	// A stream cancelled mid-way settles: its reservation (the only one
	// the solo budget holds at a time) is given back.
	up.fake.SetScenario(openaifake.Scenario{Reply: "a slow answer of quite a few words to cancel", ChunkDelay: 300 * time.Millisecond})
	sctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(sctx, http.MethodPost, h.URL+"/v1/chat/completions", strings.NewReader(uncapped("gpt-4o-mini", true)))
	req.Header.Set("Authorization", "Bearer "+solo)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow stream: %d", resp.StatusCode)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if a, _ := budgetSendAs(ctx, h.URL, solo, uncapped("gpt-4o-mini", false)); a.status != http.StatusPaymentRequired {
		t.Fatalf("a second reservation beside the running stream: %+v, want 402", a)
	}
	cancel()
	resp.Body.Close()
	up.fake.SetScenario(openaifake.Scenario{Reply: "Budgets are reserved before requests run."})
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := budgetSendAs(ctx, h.URL, solo, uncapped("gpt-4o-mini", false))
		if err != nil {
			t.Fatal(err)
		}
		if a.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled stream's reservation was not given back: %+v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBudgetDocuments: documents the host resolves from storage after the
// reservation extend it; a request whose documents would pass the budget
// is refused before it reaches the upstream.
func TestBudgetDocuments(t *testing.T) {
	const reader = "sk-budget-reader-0123456789"
	up := startBudgetUpstream(t)
	h := harness.Start(t, harness.APIKeyBlock+budgetUpstreamBlock(up)+fmt.Sprintf(`
storage "files" {
  type = "local"
  config {
    root           = %q
    create_buckets = true
  }
}
api_key "reader" {
  key         = %q
  models      = ["*"]
  instances   = ["files"]
  storage_ops = ["get"]
  budget {
    usd = 0.1
  }
}
`, t.TempDir(), reader), harness.Options{WaitFor: []string{"up", "files"}})
	put := func(key, text string) {
		if status, _, b := h.Do(t, "PUT", "/-local/files/put/docs/"+key, text, "Content-Type", "text/markdown"); status/100 != 2 {
			t.Fatalf("put %s: %d %s", key, status, b)
		}
	}
	put("small.md", "Budgets are reserved before requests run.")
	put("large.md", strings.Repeat("A long report that costs more than the budget allows. ", 200)) // 11 kB: $0.22 at $20/M
	ask := func(doc string) budgetAnswer {
		b, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "max_tokens": 16, "messages": []map[string]any{{"role": "user", "content": []map[string]any{
			{"type": "text", "text": "Summarise"},
			{"type": "document", "source": map[string]string{"type": "storage", "storage": "files", "bucket": "docs", "key": doc}},
		}}}})
		a, err := budgetSendAs(context.Background(), h.URL, reader, string(b))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := ask("small.md"); a.status != http.StatusOK {
		t.Fatalf("small document: %+v", a)
	}
	before := up.chats.Load()
	if a := ask("large.md"); a.status != http.StatusPaymentRequired || a.code != "budget_exceeded" || !strings.Contains(a.message, "documents") {
		t.Fatalf("large document: %+v, want 402 budget_exceeded naming the documents", a)
	}
	if up.chats.Load() != before {
		t.Fatal("the request with the large document reached the upstream")
	}
	// The refused extension gave everything back.
	if a := ask("small.md"); a.status != http.StatusOK {
		t.Fatalf("small document after the refusal: %+v", a)
	}
}

// TestCostOfCachedTokens: an Anthropic answer that read and wrote the
// prompt cache reaches the client with the normalised usage, and is
// costed at the embedded prices of each kind of token, in the JSON
// answer's header and in the stream's usage chunk.
func TestCostOfCachedTokens(t *testing.T) {
	const apiKey = "sk-ant-budget-test"
	fake := anthropicfake.New(anthropicfake.Options{APIKey: apiKey})
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	fake.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text("Cached.")},
		Usage: anthropicfake.Usage{InputTokens: 20, OutputTokens: 11, CacheCreationInputTokens: 100, CacheReadInputTokens: 300}})
	h := harness.Start(t, harness.APIKeyBlock+fmt.Sprintf(`
provider "claude" {
  type = "anthropic"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = %q
  }
}
route "claude-sonnet-4-5" {
  target "claude" {}
}
`, apiKey, fake.URL()), harness.Options{WaitFor: []string{"claude"}})
	// The embedded claude-sonnet-4 prices, per token: input $3/M, cache
	// reads $0.30/M, cache writes $3.75/M, output $15/M.
	want := 20*3e-6 + 300*0.30e-6 + 100*3.75e-6 + 11*15e-6
	for _, stream := range []bool{false, true} {
		req := map[string]any{"model": "claude-sonnet-4-5", "messages": []map[string]string{{"role": "user", "content": "Hello"}}}
		if stream {
			req["stream"], req["stream_options"] = true, map[string]bool{"include_usage": true}
		}
		b, _ := json.Marshal(req)
		a, err := budgetSendAs(context.Background(), h.URL, harness.Key, string(b))
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("stream %v: %+v, %v", stream, a, err)
		}
		if a.prompt != 420 || a.completion != 11 || a.cached != 300 || a.cacheWritten != 100 {
			t.Errorf("stream %v: usage %+v, want prompt 420 (20 + 300 read + 100 written), 11 completion", stream, a)
		}
		if math.Abs(a.cost-want) > 1e-9 {
			t.Errorf("stream %v: cost %v, want %v", stream, a.cost, want)
		}
	}
}
