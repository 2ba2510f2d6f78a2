package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// TestStoredKeyLimits sets a stored key's own limits through the admin
// API, with no limits block in the config (an in-memory limiter applies
// them): rpm=3 refuses the fourth request of the minute with 429
// rate_limit_exceeded and a Retry-After while another key is served; a
// PATCH to rpm=100 admits the next request; concurrency=1 refuses a
// request while a slow stream runs; tpm reserves and settles with the
// usage the answer reports. A key of the config file with a limits block
// is limited the same way.
func TestStoredKeyLimits(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+`
provider "slow" {
  type = "echo"
  config { chunk_delay = "100ms" }
}
route "slow" {
  target "slow" {}
}
api_key "hcl-limited" {
  key    = "sk-hcl-limited-0123456789"
  models = ["*"]
  limits {
    rpm = 1
  }
}
`+storeBlock("sqlite", filepath.Join(t.TempDir(), "llmproxy.db")), harness.Options{WaitFor: []string{"echo", "slow"}})
	api := keyAPI{t, h}
	id, limited := createKey(t, h, `{"name":"limited","models":["*"],"limits":{"rpm":3}}`)
	_, free := createKey(t, h, `{"name":"free","models":["*"]}`)
	chat := func(key, body string) (int, http.Header, []byte) {
		t.Helper()
		status, header, b := h.Do(t, "POST", "/v1/chat/completions", body, "Authorization", "Bearer "+key)
		return status, header, b
	}
	hello := spineChatBody("echo", "hello there", false)

	// A key of the config file has limits of its own too.
	if status, _, body := chat("sk-hcl-limited-0123456789", hello); status != 200 {
		t.Fatalf("config key within rpm=1: %d %s", status, body)
	}
	if status, _, body := chat("sk-hcl-limited-0123456789", hello); status != 429 || !strings.Contains(string(body), "key:hcl-limited") {
		t.Fatalf("config key over rpm=1: %d %s", status, body)
	}

	for i := range 3 {
		status, header, body := chat(limited, hello)
		if status != 200 {
			t.Fatalf("request %d within rpm=3: %d %s", i+1, status, body)
		}
		if got := header["X-Ratelimit-Limit-Requests"]; len(got) != 1 || got[0] != "3" {
			t.Errorf("x-ratelimit-limit-requests = %v, want 3", got)
		}
	}
	status, header, body := chat(limited, hello)
	var refusal struct {
		Error struct{ Type, Code, Message string }
	}
	json.Unmarshal(body, &refusal)
	retry, _ := strconv.Atoi(strings.Join(header["Retry-After"], ""))
	if status != 429 || refusal.Error.Code != "rate_limit_exceeded" || refusal.Error.Type != "rate_limit_error" ||
		!strings.Contains(refusal.Error.Message, "key:"+id) || retry < 1 || retry > 20 || len(header["Retry-After-Ms"]) != 1 {
		t.Fatalf("fourth request: %d %v %s", status, header, body)
	}
	for i := range 5 {
		if status, _, body := chat(free, hello); status != 200 {
			t.Fatalf("another key, request %d: %d %s", i+1, status, body)
		}
	}

	// Raised, the limit holds from the next request on.
	if status, k := api.call("PATCH", "/admin/v1/keys/"+id, `{"limits":{"rpm":100}}`); status != 200 {
		t.Fatalf("patch: %d %v", status, k)
	}
	if status, header, body := chat(limited, hello); status != 200 || header.Get("X-Ratelimit-Limit-Requests") != "100" {
		t.Fatalf("after rpm=100: %d %v %s", status, header, body)
	}

	// One request at a time: a second one while a slow stream runs is
	// refused, and served once the stream has ended.
	if status, k := api.call("PATCH", "/admin/v1/keys/"+id, `{"limits":{"rpm":null,"concurrency":1}}`); status != 200 {
		t.Fatalf("patch: %d %v", status, k)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var tally trafficTally
		trafficSend(t, h.URL, limited, spineChatBody("slow", "one two three four five six", true), true, &tally)
		if tally.ok.Load() != 1 {
			t.Errorf("the slow stream: %s %v", &tally, tally.otherBodies)
		}
	}()
	time.Sleep(250 * time.Millisecond)
	status, _, body = chat(limited, hello)
	json.Unmarshal(body, &refusal)
	if status != 429 || refusal.Error.Code != "rate_limit_exceeded" || !strings.Contains(refusal.Error.Message, "concurrent") {
		t.Errorf("a second request while the stream runs: %d %s", status, body)
	}
	wg.Wait()
	if status, _, body := chat(limited, hello); status != 200 {
		t.Fatalf("after the stream ended: %d %s", status, body)
	}

	// Tokens: the reservation (prompt estimate plus max_tokens) shows in
	// the first answer's headers; the second sees the first settled at
	// the tokens it used, plus at most the refill (100 tokens/s).
	if status, k := api.call("PATCH", "/admin/v1/keys/"+id, `{"limits":{"concurrency":null,"tpm":6000}}`); status != 200 {
		t.Fatalf("patch: %d %v", status, k)
	}
	tokens := `{"model":"echo","max_tokens":500,"messages":[{"role":"user","content":"a few words for the token meter"}]}`
	reservation := int64(len(tokens)+3)/4 + 500
	start := time.Now()
	status, header, body = chat(limited, tokens)
	var answer struct {
		Usage struct {
			TotalTokens int64 `json:"total_tokens"`
		}
	}
	if status != 200 || json.Unmarshal(body, &answer) != nil || answer.Usage.TotalTokens == 0 {
		t.Fatalf("tpm request: %d %s", status, body)
	}
	left, _ := strconv.ParseInt(header.Get("X-Ratelimit-Remaining-Tokens"), 10, 64)
	if header.Get("X-Ratelimit-Limit-Tokens") != "6000" || left != 6000-reservation {
		t.Fatalf("after the first reservation: limit %s remaining %d, want 6000 and %d",
			header.Get("X-Ratelimit-Limit-Tokens"), left, 6000-reservation)
	}
	_, header, _ = chat(limited, tokens)
	refill := int64(time.Since(start)/(10*time.Millisecond)) + 1
	left2, _ := strconv.ParseInt(header.Get("X-Ratelimit-Remaining-Tokens"), 10, 64)
	settled := 6000 - answer.Usage.TotalTokens - reservation
	if left2 < settled || left2 > settled+refill+10 {
		t.Errorf("remaining after a settled request = %d, want %d (+ refill); unsettled it would be %d",
			left2, settled, 6000-2*reservation)
	}
	t.Logf("tpm: reserved %d, used %d, remaining after the second reservation %d", reservation, answer.Usage.TotalTokens, left2)

	// null removes every limit: the key is served without x-ratelimit
	// headers.
	if status, k := api.call("PATCH", "/admin/v1/keys/"+id, `{"limits":null}`); status != 200 || k["limits"] != nil {
		t.Fatalf("patch: %d %v", status, k)
	}
	if status, header, _ := chat(limited, hello); status != 200 || header.Get("X-Ratelimit-Limit-Requests") != "" {
		t.Fatalf("without limits: %d %v", status, header)
	}
}
