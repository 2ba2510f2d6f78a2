package server

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/price"
	"github.com/llmproxy/llmproxy/host/internal/router"
)

func TestWithMaxTokens(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"m","messages":[]}`, `{"max_completion_tokens":64,"model":"m","messages":[]}`},
		{` { }`, ` {"max_completion_tokens":64 }`},
		{`{}`, `{"max_completion_tokens":64}`},
	}
	for _, tc := range tests {
		got := string(withMaxTokens([]byte(tc.in), 64))
		if got != tc.want {
			t.Errorf("withMaxTokens(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("withMaxTokens(%s) is not JSON", tc.in)
		}
	}
}

func TestChoices(t *testing.T) {
	for body, want := range map[string]int64{
		`{"model":"m"}`:          1,
		`{"n":3}`:                3,
		`{"n":0}`:                1,
		`{"n":"many"}`:           1,
		`{"messages":[{"n":5}]}`: 1,
	} {
		if got := choices([]byte(body)); got != want {
			t.Errorf("choices(%s) = %d, want %d", body, got, want)
		}
	}
}

func TestUsageDetail(t *testing.T) {
	var p fastjson.Parser
	tests := []struct {
		body string
		want price.Usage
		ok   bool
	}{
		{`{"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,` +
			`"prompt_tokens_details":{"cached_tokens":1000,"cache_write_tokens":100},"completion_tokens_details":{"reasoning_tokens":200}}}`,
			price.Usage{Prompt: 1200, Completion: 300, Cached: 1000, CacheWrite: 100, Reasoning: 200}, true},
		{`{"usage":{"prompt_tokens":5,"total_tokens":5}}`, price.Usage{Prompt: 5}, true},
		{`{"usage":{"prompt_tokens":50,"prompt_tokens_details":{"cached_tokens":10,"cache_creation_tokens":30}}}`, price.Usage{Prompt: 50, Cached: 10, CacheWrite: 30}, true},
		{`{"usage":null}`, price.Usage{}, false},
		{`{"usage":{"completion_tokens":3}}`, price.Usage{}, false},
		{`{"usage":{"prompt_tokens":-4,"completion_tokens":2}}`, price.Usage{Completion: 2}, true},
		{`{"choices":[]}`, price.Usage{}, false},
		{`{"usage":`, price.Usage{}, false},
	}
	for _, tc := range tests {
		got, ok := usageDetail(&p, []byte(tc.body))
		if got != tc.want || ok != tc.ok {
			t.Errorf("usageDetail(%s) = %+v, %v; want %+v, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStreamSpendObserve(t *testing.T) {
	rates := price.Rates{Input: 1e-6, Output: 2e-6, CachedInput: 0.5e-6, CacheWrite: 1e-6, Reasoning: 2e-6}
	ss := &streamSpend{rates: rates, priced: true}
	content := []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}`)
	if got := ss.observe(content); string(got) != string(content) {
		t.Fatalf("a content chunk changed: %s", got)
	}
	final := []byte(`{"id":"c","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":10,"total_tokens":110,"prompt_tokens_details":{"cached_tokens":40,"cache_write_tokens":0}}}`)
	out := ss.observe(final)
	var ch struct {
		ID    string `json:"id"`
		Usage struct {
			PromptTokens int     `json:"prompt_tokens"`
			CostUSD      float64 `json:"cost_usd"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(out, &ch); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	want := 60*1e-6 + 40*0.5e-6 + 10*2e-6
	if ch.ID != "c" || ch.Usage.PromptTokens != 100 || math.Abs(ch.Usage.CostUSD-want) > 1e-12 {
		t.Fatalf("usage chunk %s, want cost_usd %v", out, want)
	}
	if cost, known := ss.done(&meter{}); !known || math.Abs(cost-want) > 1e-12 {
		t.Fatalf("done = %v, %v", cost, known)
	}
	// A stream that ends without usage is costed from the meter.
	ss = &streamSpend{rates: rates, priced: true}
	if cost, known := ss.done(&meter{prompt: 50, chunks: 7}); known || math.Abs(cost-(50e-6+14e-6)) > 1e-12 {
		t.Fatalf("done without usage = %v, %v", cost, known)
	}
}

func TestImages(t *testing.T) {
	for body, want := range map[string]int64{
		`{"messages":[{"role":"user","content":"no image_url here"}]}`: 0,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/a.png"}}]},` +
			`{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}`: 2,
		`{"messages":"image_url"}`: 0,
	} {
		if got := images([]byte(body)); got != want {
			t.Errorf("images(%s) = %d, want %d", body, got, want)
		}
	}
}

func TestPriceOfRoute(t *testing.T) {
	tab := price.New(nil, nil)
	s := &Server{opts: Options{Prices: tab}}
	rt := &router.Route{Targets: []router.Target{{Instance: "a"}, {Instance: "b", Model: "gpt-4o"}, {Instance: "c", Model: "no-price"}}}
	got, ok := s.priceOf("gpt-4o-mini", rt)
	mini, _ := tab.Rates("gpt-4o-mini")
	big, _ := tab.Rates("gpt-4o")
	if !ok || got.Input != big.Input || got.Output != big.Output || big.Input <= mini.Input {
		t.Fatalf("reservation rates %+v, want gpt-4o's %+v (the dearest target)", got, big)
	}
	// Costed at the rates of the target that answered.
	sp := spend{rates: got, priced: true}
	sp.servedBy(s, "gpt-4o-mini", rt.Targets[0])
	if sp.rates != mini {
		t.Fatalf("served by the first target: %+v, want %+v", sp.rates, mini)
	}
	sp = spend{rates: got, priced: true}
	sp.servedBy(s, "gpt-4o-mini", rt.Targets[2])
	if sp.rates != got {
		t.Fatalf("served by an unpriced model: %+v, want the reservation's %+v", sp.rates, got)
	}
	if _, ok := s.priceOf("house", &router.Route{Targets: []router.Target{{Instance: "a"}}}); ok {
		t.Fatal("an unpriced route has a price")
	}
}
