package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// storeBlock is a store block for driver and source.
func storeBlock(driver, source string, extra ...string) string {
	attr := "path"
	if driver == "postgres" {
		attr = "url"
	}
	return fmt.Sprintf("store {\n  driver = %q\n  %s = %q\n  %s\n}\n", driver, attr, source, strings.Join(extra, "\n  "))
}

// keyAPI drives the admin API of one host with the harness admin key.
type keyAPI struct {
	t *testing.T
	h *harness.Host
}

func (a keyAPI) call(method, path, body string) (int, map[string]any) {
	a.t.Helper()
	status, _, b := a.h.Do(a.t, method, path, body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		a.t.Fatalf("%s %s: %d %q is not a JSON object", method, path, status, b)
	}
	return status, out
}

// chatAs sends a chat request to h with key and returns the status.
func chatAs(t *testing.T, h *harness.Host, key string) int {
	t.Helper()
	status, _, _ := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hello there"}]}`,
		"Authorization", "Bearer "+key)
	return status
}

// createKey creates a key on h and returns its id and secret.
func createKey(t *testing.T, h *harness.Host, body string) (id, secret string) {
	t.Helper()
	status, k := keyAPI{t, h}.call("POST", "/admin/v1/keys", body)
	if status != 201 {
		t.Fatalf("create key: %d %v", status, k)
	}
	return k["id"].(string), k["key"].(string)
}

// TestKeyStorePostgresReplicas: two llmproxy replicas share one real
// PostgreSQL server. A key created on A works on B at once; a change of
// its rights on A holds on B's next request; revoked on A, it is refused
// by B on the very next request.
func TestKeyStorePostgresReplicas(t *testing.T) {
	pg := harness.StartPostgres(t)
	cfg := harness.APIKeyBlock + harness.EchoBlock + storeBlock("postgres", pg.URL)
	a := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})
	b := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})

	id, secret := createKey(t, a, `{"name":"shared","models":["echo"]}`)
	if status := chatAs(t, b, secret); status != 200 {
		t.Fatalf("key created on A, used on B: %d", status)
	}
	// What the store costs a request: the same chat with a config key and
	// with the stored key (one counter read on PostgreSQL each).
	cfgP50, storedP50 := p50(t, b, harness.Key, 100), p50(t, b, secret, 100)
	t.Logf("chat p50 on B: config key %v, stored key %v", cfgP50, storedP50)
	if status, k := (keyAPI{t, b}).call("GET", "/admin/v1/keys/"+id, ""); status != 200 || k["name"] != "shared" || k["key"] != nil {
		t.Fatalf("B reads the key: %d %v", status, k)
	}
	if status, _ := (keyAPI{t, a}).call("PATCH", "/admin/v1/keys/"+id, `{"models":["echo-embed"]}`); status != 200 {
		t.Fatalf("patch on A: %d", status)
	}
	if status := chatAs(t, b, secret); status != 403 {
		t.Fatalf("rights narrowed on A, chat on B: %d, want 403", status)
	}
	if status, _ := (keyAPI{t, a}).call("PATCH", "/admin/v1/keys/"+id, `{"models":["echo"]}`); status != 200 {
		t.Fatalf("patch on A: %d", status)
	}
	if status := chatAs(t, b, secret); status != 200 {
		t.Fatalf("rights restored on A, chat on B: %d", status)
	}
	// Revoke on A; B refuses the very next request, on both paths a key
	// reaches.
	if status, k := (keyAPI{t, a}).call("DELETE", "/admin/v1/keys/"+id, ""); status != 200 || k["revoked_at"] == nil {
		t.Fatalf("revoke on A: %d %v", status, k)
	}
	status, _, body := b.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"x"}]}`, "Authorization", "Bearer "+secret)
	if status != 401 || !strings.Contains(string(body), "invalid_api_key") {
		t.Fatalf("revoked on A, next request on B: %d %s", status, body)
	}
	if status := chatAs(t, a, secret); status != 401 {
		t.Fatalf("revoked key on A: %d", status)
	}
	// Both replicas list the same stored key, revoked.
	for _, h := range []*harness.Host{a, b} {
		_, l := keyAPI{t, h}.call("GET", "/admin/v1/keys", "")
		var found bool
		for _, d := range l["data"].([]any) {
			k := d.(map[string]any)
			if k["id"] == id {
				found = k["revoked_at"] != nil
			}
		}
		if !found {
			t.Fatalf("%s does not list the revoked key: %v", h.URL, l)
		}
	}
}

// p50 sends n sequential chat requests with key and returns their median
// latency; every one must succeed.
func p50(t *testing.T, h *harness.Host, key string, n int) time.Duration {
	t.Helper()
	lats := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if status := chatAs(t, h, key); status != 200 {
			t.Fatalf("status %d", status)
		}
		lats = append(lats, time.Since(start))
	}
	slices.Sort(lats)
	return lats[n/2]
}

// TestKeyStoreSQLite: one replica on the embedded SQLite store: create →
// use → revoke → refused on the next request; the usage of JSON, stream
// and embeddings requests appears in /admin/v1/usage; the key survives a
// restart on the same file.
func TestKeyStoreSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "llmproxy.db")
	cfg := harness.APIKeyBlock + harness.EchoBlock + storeBlock("sqlite", path)
	h := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})
	api := keyAPI{t, h}

	id, secret := createKey(t, h, `{"name":"team","group":"research","models":["echo","echo-embed"]}`)
	auth := []string{"Authorization", "Bearer " + secret}
	if status := chatAs(t, h, secret); status != 200 {
		t.Fatalf("use: %d", status)
	}
	// A stream without include_usage: the record still gets its tokens,
	// and the client sees no usage chunk it did not ask for.
	status, _, body := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","stream":true,"messages":[{"role":"user","content":"one two three"}]}`, auth...)
	if status != 200 || strings.Contains(string(body), `"usage"`) {
		t.Fatalf("stream: %d %s", status, body)
	}
	if status, _, body := h.Do(t, "POST", "/v1/embeddings", `{"model":"echo-embed","input":["a","b"]}`, auth...); status != 200 {
		t.Fatalf("embeddings: %d %s", status, body)
	}
	// The harness key's requests are recorded under its own name.
	if status, _, _ := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`); status != 200 {
		t.Fatal(status)
	}

	// Records are written within the flush interval.
	var groups []any
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, u := api.call("GET", "/admin/v1/usage?group_by=model&key=team", "")
		groups = u["data"].([]any)
		if len(groups) == 2 && groups[0].(map[string]any)["requests"].(float64) == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(groups) != 2 {
		t.Fatalf("usage by model: %v", groups)
	}
	chat, embed := groups[0].(map[string]any), groups[1].(map[string]any)
	if chat["group"] != "echo" || chat["requests"].(float64) != 2 || chat["errors"].(float64) != 0 ||
		chat["prompt_tokens"].(float64) <= 0 || chat["completion_tokens"].(float64) <= 0 {
		t.Fatalf("echo usage: %v", chat)
	}
	if embed["group"] != "echo-embed" || embed["requests"].(float64) != 1 || embed["prompt_tokens"].(float64) <= 0 {
		t.Fatalf("echo-embed usage: %v", embed)
	}
	_, byKey := api.call("GET", "/admin/v1/usage?group_by=key", "")
	if d := byKey["data"].([]any); len(d) != 2 || d[0].(map[string]any)["group"] != "e2e" || d[1].(map[string]any)["group"] != "team" {
		t.Fatalf("usage by key: %v", byKey)
	}
	_, raw := api.call("GET", "/admin/v1/usage?key=team&model=echo&limit=1", "")
	recs := raw["data"].([]any)
	if len(recs) != 1 {
		t.Fatalf("raw usage: %v", raw)
	}
	rec := recs[0].(map[string]any)
	if rec["instance"] != "echo" || rec["status"].(float64) != 200 || rec["key_group"] != "research" ||
		!strings.HasPrefix(rec["request_id"].(string), "req_") || rec["latency_ms"].(float64) <= 0 {
		t.Fatalf("raw record: %v", rec)
	}
	if _, err := time.Parse(time.RFC3339Nano, rec["time"].(string)); err != nil {
		t.Fatalf("record time: %v", err)
	}

	// The key survives a restart on the same file.
	h.Stop()
	h = harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})
	if status := chatAs(t, h, secret); status != 200 {
		t.Fatalf("after restart: %d", status)
	}
	if status, _ := (keyAPI{t, h}).call("DELETE", "/admin/v1/keys/"+id, ""); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if status := chatAs(t, h, secret); status != 401 {
		t.Fatalf("revoked key, next request: %d", status)
	}
	if strings.Contains(h.Logs(), secret) {
		t.Fatal("the host logged a key secret")
	}
}

// TestAdminAPIValidation: the admin API's answers to bad input and wrong
// callers on the real binary, in the OpenAI error shape.
func TestAdminAPIValidation(t *testing.T) {
	cfg := harness.APIKeyBlock + harness.EchoBlock + `
api_key "plain" {
  key    = "sk-plain"
  models = ["*"]
}
` + storeBlock("sqlite", filepath.Join(t.TempDir(), "llmproxy.db"))
	h := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code, param              string
	}{
		{"no key", "GET", "/admin/v1/keys", "", []string{"Authorization", ""}, 401, "invalid_api_key", ""},
		{"not an admin key", "GET", "/admin/v1/keys", "", []string{"Authorization", "Bearer sk-plain"}, 403, "admin_required", ""},
		{"broken json", "POST", "/admin/v1/keys", `{"name":`, nil, 400, "", ""},
		{"secret chosen by the client", "POST", "/admin/v1/keys", `{"name":"x","key":"sk-mine"}`, nil, 400, "", "key"},
		{"bad storage op", "POST", "/admin/v1/keys", `{"name":"x","storage_ops":["rm"]}`, nil, 400, "", "storage_ops"},
		{"bad expiry", "POST", "/admin/v1/keys", `{"name":"x","expires_at":"soon"}`, nil, 400, "", "expires_at"},
		{"bad budget period", "POST", "/admin/v1/keys", `{"name":"x","budget":{"usd":1,"period":"year"}}`, nil, 400, "", "budget"},
		{"name of a config key", "POST", "/admin/v1/keys", `{"name":"plain"}`, nil, 409, "key_exists", "name"},
		{"unknown key", "DELETE", "/admin/v1/keys/key_0000", "", nil, 404, "key_not_found", ""},
		{"config key is read-only", "PATCH", "/admin/v1/keys/config:plain", `{"admin":true}`, nil, 403, "key_read_only", ""},
		{"bad group_by", "GET", "/admin/v1/usage?group_by=week", "", nil, 400, "", "group_by"},
		{"unknown admin path", "GET", "/admin/v2/keys", "", nil, 404, "unknown_path", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := h.Do(t, tt.method, tt.path, tt.body, tt.header...)
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Code    *string `json:"code"`
					Param   *string `json:"param"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || status != tt.status || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("%d %s, want %d in the OpenAI error shape", status, body, tt.status)
			}
			if tt.code != "" && (e.Error.Code == nil || *e.Error.Code != tt.code) {
				t.Errorf("code in %s, want %s", body, tt.code)
			}
			if tt.param != "" && (e.Error.Param == nil || *e.Error.Param != tt.param) {
				t.Errorf("param in %s, want %s", body, tt.param)
			}
		})
	}
	// Without a store block the admin API says so.
	plain := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock, harness.Options{WaitFor: []string{"echo"}})
	status, _, body := plain.Do(t, "GET", "/admin/v1/keys", "")
	if status != 501 || !strings.Contains(string(body), "store_not_configured") {
		t.Fatalf("without a store: %d %s", status, body)
	}
}

// TestUsageBufferOverflow: while the database holds the usage table
// locked, a burst of requests overflows the usage buffer; the requests
// are not slowed (the writer is off their path), the overflow is dropped
// and counted in /metrics, and writing resumes when the lock goes.
func TestUsageBufferOverflow(t *testing.T) {
	pg := harness.StartPostgres(t)
	cfg := harness.APIKeyBlock + harness.EchoBlock + storeBlock("postgres", pg.URL, "usage_buffer = 20")
	h := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})

	// Baseline latency with the database free.
	base := burst(t, h, 40)

	// Hold the usage table locked for a while from another session.
	lock := pg.Command("psql", "-X", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", "postgres",
		"-c", "BEGIN; LOCK TABLE usage_records IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;")
	if err := lock.Start(); err != nil {
		t.Fatal(err)
	}
	defer lock.Wait()
	waitLocked(t, pg)
	locked := burst(t, h, 300)
	t.Logf("burst latency: database free p50 %v max %v; usage table locked p50 %v max %v", base.p50, base.max, locked.p50, locked.max)
	if locked.max > 500*time.Millisecond || locked.p50 > 20*base.p50+20*time.Millisecond {
		t.Fatalf("requests slowed while the usage writer was blocked: p50 %v max %v (free: p50 %v)", locked.p50, locked.max, base.p50)
	}
	dropped := metric(t, h, "llmproxy_usage_records_dropped_total")
	if dropped < 200 {
		t.Fatalf("dropped %v records, want most of the 300-request burst", dropped)
	}
	if err := lock.Wait(); err != nil {
		t.Fatalf("psql: %v", err)
	}
	// Writing resumes: every record not dropped is written.
	const total = 40 + 300
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, h, "llmproxy_usage_records_written_total")+metric(t, h, "llmproxy_usage_records_dropped_total") < total && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	written, dropped := metric(t, h, "llmproxy_usage_records_written_total"), metric(t, h, "llmproxy_usage_records_dropped_total")
	if written+dropped != total || metric(t, h, "llmproxy_usage_records_failed_total") != 0 {
		t.Fatalf("written %v + dropped %v != %d requests", written, dropped, total)
	}
	if !h.WaitLog("usage buffer full", 5*time.Second) {
		t.Fatal("no warning about the full usage buffer")
	}
}

// waitLocked waits until another session holds the usage table lock.
func waitLocked(t *testing.T, pg *harness.Postgres) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := pg.SQL(`SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'usage_records' AND l.mode = 'AccessExclusiveLock' AND l.granted`)
		if err == nil && regexp.MustCompile(`(?m)^\s*1\s*$`).Match(out) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the usage table lock was not taken")
}

type latencies struct{ p50, max time.Duration }

// burst sends n chat requests, 10 at a time, with the harness key and
// returns their latencies; every one must succeed.
func burst(t *testing.T, h *harness.Host, n int) latencies {
	t.Helper()
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, 10)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			req, _ := http.NewRequest("POST", h.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"echo","messages":[{"role":"user","content":"burst"}]}`))
			req.Header.Set("Authorization", "Bearer "+harness.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			mu.Lock()
			lats = append(lats, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lats) == 0 {
		t.Fatal("no request succeeded")
	}
	slices.Sort(lats)
	return latencies{p50: lats[len(lats)/2], max: lats[len(lats)-1]}
}

// metric reads one unlabelled counter or gauge from /metrics.
func metric(t *testing.T, h *harness.Host, name string) float64 {
	t.Helper()
	_, _, body := h.Do(t, "GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("%s not in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
