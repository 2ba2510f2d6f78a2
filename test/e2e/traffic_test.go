package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// trafficRedis is a private redis-server on a fixed free port that a test
// can kill and start again, as an outage would.
type trafficRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startTrafficRedis(t *testing.T) *trafficRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &trafficRedis{t: t, port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *trafficRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *trafficRedis) start() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		r.t.Fatal("redis-server not found: run scripts/install-deps.sh or `apt-get install -y redis-server`")
	}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if n == 7 && string(buf) == "+PONG\r\n" {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not answer PING")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *trafficRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Keys of the traffic tests, each limited by one limit.
const (
	trafficOpenKey   = "sk-traffic-open-0123456789"
	trafficClosedKey = "sk-traffic-closed-0123456789"
	trafficTokensKey = "sk-traffic-tokens-0123456789"
	trafficNodeKey   = "sk-traffic-node-0123456789"
)

func trafficLimitsConfig(redisURL string) string {
	return harness.APIKeyBlock + harness.EchoBlock + fmt.Sprintf(`
api_key "open" {
  key    = %q
  models = ["*"]
}
api_key "closed" {
  key    = %q
  models = ["*"]
}
api_key "tokens" {
  key    = %q
  models = ["*"]
}
limits {
  redis   = %q
  # Generous for a test machine shared by many processes; decisions that
  # still time out are counted (failed_open) and reported.
  timeout = "250ms"
  limit "open" {
    key = "open"
    rpm = 600
  }
  limit "closed" {
    key  = "closed"
    rpm  = 600
    fail = "closed"
  }
  limit "tokens" {
    key = "tokens"
    tpm = 10000
  }
}
`, trafficOpenKey, trafficClosedKey, trafficTokensKey, redisURL)
}

// trafficTally counts the answers of a load run.
type trafficTally struct {
	ok, limited, unavailable, other atomic.Int64
	tokens                          atomic.Int64
	mu                              sync.Mutex
	otherBodies                     []string
}

func (c *trafficTally) String() string {
	return fmt.Sprintf("200: %d, 429 rate_limit_exceeded: %d, 429 rate_limit_backend_unavailable: %d, other: %d",
		c.ok.Load(), c.limited.Load(), c.unavailable.Load(), c.other.Load())
}

// trafficSend posts one chat request with key and tallies the answer;
// streamed answers are read to the end and their usage chunk counted.
func trafficSend(t *testing.T, url, key, body string, stream bool, tally *trafficTally) {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tally.other.Add(1)
		tally.mu.Lock()
		tally.otherBodies = append(tally.otherBodies, err.Error())
		tally.mu.Unlock()
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && stream {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("data: {")) {
				continue
			}
			var ch struct {
				Usage *struct {
					TotalTokens int64 `json:"total_tokens"`
				} `json:"usage"`
			}
			if json.Unmarshal(line[6:], &ch) == nil && ch.Usage != nil {
				tally.tokens.Add(ch.Usage.TotalTokens)
			}
		}
		tally.ok.Add(1)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusOK:
		tally.ok.Add(1)
	case resp.StatusCode == http.StatusTooManyRequests && bytes.Contains(b, []byte(`"rate_limit_exceeded"`)):
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Retry-After-Ms") == "" {
			t.Errorf("429 without Retry-After or retry-after-ms: %v", resp.Header)
		}
		tally.limited.Add(1)
	case resp.StatusCode == http.StatusTooManyRequests && bytes.Contains(b, []byte(`"rate_limit_backend_unavailable"`)):
		tally.unavailable.Add(1)
	default:
		tally.other.Add(1)
		tally.mu.Lock()
		tally.otherBodies = append(tally.otherBodies, fmt.Sprintf("%d %s", resp.StatusCode, b))
		tally.mu.Unlock()
	}
}

// trafficLoad runs workers goroutines per host sending requests with key
// for d, and returns how long the load really ran.
func trafficLoad(t *testing.T, hosts []*harness.Host, workers int, d time.Duration, key, body string, stream bool, tally *trafficTally) time.Duration {
	return trafficLoadInto(t, hosts, workers, d, key, body, stream, func() *trafficTally { return tally })
}

// trafficLoadInto is trafficLoad counting each answer in the tally pick
// returns when its request is sent.
func trafficLoadInto(t *testing.T, hosts []*harness.Host, workers int, d time.Duration, key, body string, stream bool, pick func() *trafficTally) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for _, h := range hosts {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < d {
					trafficSend(t, h.URL, key, body, stream, pick())
				}
			}()
		}
	}
	wg.Wait()
	return time.Since(start)
}

// TestTrafficLimitsAcrossReplicas runs two llmproxy processes on one
// redis-server: a key limited to 600 RPM under load from both is admitted
// exactly as one GCRA bucket allows (the burst of 600, then one per
// 100 ms); a 10k TPM limit with streamed answers settled with their real
// usage overshoots by at most one reservation; and with Redis killed, the
// fail-open limit serves every request while the fail-closed one answers
// 429 rate_limit_backend_unavailable, until Redis is back and the limits
// are exact again, without a restart.
func TestTrafficLimitsAcrossReplicas(t *testing.T) {
	rd := startTrafficRedis(t)
	cfg := trafficLimitsConfig(rd.url())
	hosts := []*harness.Host{
		harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}}),
		harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}}),
	}
	chat := spineChatBody("echo", "count me", false)

	t.Run("requests", func(t *testing.T) {
		var tally trafficTally
		before := trafficFailedOpen(t, hosts)
		took := trafficLoad(t, hosts, 4, 3*time.Second, trafficOpenKey, chat, false, &tally)
		want := 600 + int64(took/(100*time.Millisecond))
		// A decision that timed out was served uncounted (fail open).
		unchecked := trafficFailedOpen(t, hosts) - before
		t.Logf("2 replicas × 4 workers for %v: %s; GCRA allows %d; decisions without redis: %d",
			took.Round(time.Millisecond), &tally, want, unchecked)
		if n := tally.ok.Load() - unchecked; n < want-1 || n > want+1 {
			t.Errorf("admitted %d (+%d unchecked) across two replicas, want %d ±1", n, unchecked, want)
		}
		if tally.other.Load() != 0 || tally.limited.Load() == 0 {
			t.Errorf("answers: %s %v", &tally, tally.otherBodies)
		}
	})

	t.Run("headers", func(t *testing.T) {
		// The open key's bucket is spent (one request refills every
		// 100 ms): a refusal says so.
		var (
			req  *http.Request
			resp *http.Response
			err  error
		)
		for range 5 {
			req, _ = http.NewRequest(http.MethodPost, hosts[0].URL+"/v1/chat/completions", strings.NewReader(chat))
			req.Header.Set("Authorization", "Bearer "+trafficOpenKey)
			if resp, err = http.DefaultClient.Do(req); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 429 {
				break
			}
		}
		if resp.StatusCode != 429 || resp.Header.Get("X-Ratelimit-Limit-Requests") != "600" ||
			resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" || resp.Header.Get("X-Ratelimit-Reset-Requests") == "" {
			t.Errorf("refusal: %d %v", resp.StatusCode, resp.Header)
		}
		_, h, _ := hosts[0].Do(t, "POST", "/v1/chat/completions", chat)
		if h.Get("X-Ratelimit-Limit-Requests") != "" {
			t.Errorf("the harness key has no limit, yet got x-ratelimit headers: %v", h)
		}
		req, _ = http.NewRequest(http.MethodPost, hosts[1].URL+"/v1/chat/completions", strings.NewReader(chat))
		req.Header.Set("Authorization", "Bearer "+trafficTokensKey)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Ratelimit-Limit-Tokens") != "10000" || resp.Header.Get("X-Ratelimit-Remaining-Tokens") == "" ||
			!strings.HasSuffix(resp.Header.Get("X-Ratelimit-Reset-Tokens"), "s") {
			t.Errorf("token limit headers: %v", resp.Header)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		// Wait for the bucket the headers test used to fill again.
		time.Sleep(time.Second)
		body := `{"model":"echo","stream":true,"stream_options":{"include_usage":true},"max_tokens":60,` +
			`"messages":[{"role":"user","content":"tell me a long story about rate limits and tokens"}]}`
		reservation := int64(len(body)+3)/4 + 60
		var tally trafficTally
		took := trafficLoad(t, hosts, 4, 3*time.Second, trafficTokensKey, body, true, &tally)
		allowance := 10000 + int64(took.Seconds()*10000/60)
		used := tally.tokens.Load()
		t.Logf("streams for %v: %s; usage %d tokens, allowance %d, one reservation %d",
			took.Round(time.Millisecond), &tally, used, allowance, reservation)
		if used > allowance+reservation {
			t.Errorf("used %d tokens, over the allowance %d by more than one reservation (%d)", used, allowance, reservation)
		}
		// Settling returns what the estimates held back: without it the
		// streams would use a fraction of the allowance.
		if used < allowance-8*reservation {
			t.Errorf("used %d tokens of %d: reservations were not settled with the real usage", used, allowance)
		}
		if tally.other.Load() != 0 {
			t.Errorf("answers: %s %v", &tally, tally.otherBodies)
		}
	})

	t.Run("redis down and back", func(t *testing.T) {
		// Load on both keys; Redis is killed half a second in. Answers
		// count in the "down" tallies when their request was sent after
		// the kill.
		var openUp, openDown, closedUp, closedDown trafficTally
		var down atomic.Bool
		pick := func(up, dn *trafficTally) func() *trafficTally {
			return func() *trafficTally {
				if down.Load() {
					return dn
				}
				return up
			}
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			trafficLoadInto(t, hosts, 1, 1500*time.Millisecond, trafficOpenKey, chat, false, pick(&openUp, &openDown))
		}()
		go func() {
			defer wg.Done()
			trafficLoadInto(t, hosts, 1, 1500*time.Millisecond, trafficClosedKey, chat, false, pick(&closedUp, &closedDown))
		}()
		time.Sleep(500 * time.Millisecond)
		rd.kill()
		down.Store(true)
		wg.Wait()
		t.Logf("before the kill: fail open %s; fail closed %s", &openUp, &closedUp)
		t.Logf("redis down: fail open %s; fail closed %s", &openDown, &closedDown)
		if openUp.other.Load() != 0 || closedUp.other.Load() != 0 {
			t.Errorf("errors before or during the kill: %v %v", openUp.otherBodies, closedUp.otherBodies)
		}
		if openDown.ok.Load() == 0 || openDown.other.Load() != 0 || openDown.limited.Load() != 0 || openDown.unavailable.Load() != 0 {
			t.Errorf("fail open with redis down: %s %v", &openDown, openDown.otherBodies)
		}
		if closedDown.unavailable.Load() == 0 || closedDown.ok.Load() != 0 || closedDown.other.Load() != 0 {
			t.Errorf("fail closed with redis down: %s %v", &closedDown, closedDown.otherBodies)
		}
		rd.start()
		// The first decisions after the restart may still find the
		// connections broken; then the limits are exact again.
		for deadline := time.Now().Add(10 * time.Second); ; {
			var probe trafficTally
			trafficSend(t, hosts[0].URL, trafficClosedKey, chat, false, &probe)
			trafficSend(t, hosts[1].URL, trafficClosedKey, chat, false, &probe)
			if probe.ok.Load() == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis back, requests still refused: %s %v", &probe, probe.otherBodies)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var tally trafficTally
		took := trafficLoad(t, hosts, 4, 2*time.Second, trafficClosedKey, chat, false, &tally)
		want := 600 - 2 + int64(took/(100*time.Millisecond))
		t.Logf("redis back: %s in %v; GCRA allows %d", &tally, took.Round(time.Millisecond), want)
		if n := tally.ok.Load(); n < want-2 || n > want+2 {
			t.Errorf("redis back: admitted %d, want %d ±1", n, want)
		}
	})
}

// trafficFailedOpen sums the decisions the hosts took without redis and
// served (llmproxy_ratelimit_decisions_total{result="failed_open"}).
func trafficFailedOpen(t *testing.T, hosts []*harness.Host) int64 {
	var n int64
	for _, h := range hosts {
		_, _, b := h.Do(t, "GET", "/metrics", "")
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, `llmproxy_ratelimit_decisions_total{result="failed_open"} `); ok {
				x, _ := strconv.ParseFloat(v, 64)
				n += int64(x)
			}
		}
	}
	return n
}

// trafficOpenAIBlock is an openai instance on a fake OpenAI server.
func trafficOpenAIBlock(name string, fake *openaifake.Server) string {
	return fmt.Sprintf(`
provider %q {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = "%s/v1"
  }
}
`, name, openaifake.DefaultKey, fake.URL())
}

func trafficFake(t *testing.T) *openaifake.Server {
	f := openaifake.New(openaifake.Options{})
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// trafficPost sends a chat request with the harness key and returns the
// status, the answer's model and how long it took.
func trafficPost(t *testing.T, h *harness.Host, model string, header ...string) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody(model, "hello", false), header...)
	took := time.Since(start)
	var c struct {
		Model string `json:"model"`
	}
	json.Unmarshal(body, &c)
	if status != http.StatusOK {
		return status, string(body), took
	}
	return status, c.Model, took
}

type trafficRouting struct {
	Routing map[string]struct {
		State     string `json:"state"`
		Ejections int    `json:"ejections"`
	} `json:"routing"`
}

func trafficCircuit(t *testing.T, h *harness.Host, instance string) (string, int) {
	t.Helper()
	_, _, body := h.Do(t, "GET", "/readyz", "")
	var r trafficRouting
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("readyz: %v: %s", err, body)
	}
	st, ok := r.Routing[instance]
	if !ok {
		t.Fatalf("readyz has no routing state for %s: %s", instance, body)
	}
	return st.State, st.Ejections
}

// TestTrafficCircuitBreaker has an upstream fail every request: after the
// threshold its instance is ejected and requests fail over without an
// attempt on it; after the cooldown one probe goes through (failing:
// ejected again for twice as long); once the upstream heals the probe
// succeeds and the instance serves again.
func TestTrafficCircuitBreaker(t *testing.T) {
	fake := trafficFake(t)
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+trafficOpenAIBlock("flaky", fake)+`
circuit_breaker {
  consecutive_failures = 3
  cooldown             = "1s"
  max_cooldown         = "10s"
}
route "cb" {
  target "flaky" { model = "gpt-4o" }
  target "echo"  { model = "echo" }
}
route "cb-only" {
  target "flaky" { model = "gpt-4o" }
}
`, harness.Options{WaitFor: []string{"flaky", "echo"}})
	fake.FailNext(1<<20, openaifake.Failure{Status: http.StatusInternalServerError})
	for i := range 3 {
		if status, model, _ := trafficPost(t, h, "cb"); status != 200 || model != "echo" {
			t.Fatalf("request %d: %d %s, want a failover to echo", i, status, model)
		}
	}
	if n := fake.Requests(); n != 3 {
		t.Fatalf("upstream saw %d requests, want 3 (one per request before the ejection)", n)
	}
	if st, ej := trafficCircuit(t, h, "flaky"); st != "open" || ej != 1 {
		t.Fatalf("after 3 failures: state %s, ejections %d", st, ej)
	}
	var ejected []time.Duration
	for range 20 {
		status, model, took := trafficPost(t, h, "cb")
		if status != 200 || model != "echo" {
			t.Fatalf("while ejected: %d %s", status, model)
		}
		ejected = append(ejected, took)
	}
	status, text, _ := trafficPost(t, h, "cb-only")
	if status != http.StatusServiceUnavailable || !strings.Contains(text, "no_healthy_instance") {
		t.Errorf("a route whose only instance is ejected: %d %s", status, text)
	}
	if n := fake.Requests(); n != 3 {
		t.Errorf("while ejected the upstream saw %d more requests, want none", n-3)
	}
	var direct []time.Duration
	for range 20 {
		_, _, took := trafficPost(t, h, "echo")
		direct = append(direct, took)
	}
	t.Logf("p50 while flaky is ejected: %v; p50 of the echo route itself: %v", trafficP50(ejected), trafficP50(direct))
	if _, _, body := h.Do(t, "GET", "/metrics", ""); !bytes.Contains(body, []byte(`llmproxy_instance_circuit_open{instance="flaky",state="open"} 1`)) {
		t.Errorf("metrics do not show the open circuit")
	}

	// After the cooldown, one probe: it fails and the circuit opens for 2 s.
	time.Sleep(1100 * time.Millisecond)
	if status, model, _ := trafficPost(t, h, "cb"); status != 200 || model != "echo" {
		t.Fatalf("failed probe: %d %s", status, model)
	}
	if n := fake.Requests(); n != 4 {
		t.Fatalf("after the cooldown the upstream saw %d requests, want 4 (one probe)", n)
	}
	if st, ej := trafficCircuit(t, h, "flaky"); st != "open" || ej != 2 {
		t.Fatalf("after a failed probe: state %s, ejections %d", st, ej)
	}
	fake.Reset()
	if status, model, _ := trafficPost(t, h, "cb"); status != 200 || model != "echo" {
		t.Fatalf("within the doubled cooldown: %d %s, want echo", status, model)
	}
	time.Sleep(2100 * time.Millisecond)
	if status, model, _ := trafficPost(t, h, "cb"); status != 200 || !strings.HasPrefix(model, "gpt-4o") {
		t.Fatalf("healed probe: %d %s, want gpt-4o from flaky", status, model)
	}
	if st, _ := trafficCircuit(t, h, "flaky"); st != "closed" {
		t.Fatalf("after a good probe: state %s", st)
	}
	if status, model, _ := trafficPost(t, h, "cb"); status != 200 || !strings.HasPrefix(model, "gpt-4o") {
		t.Fatalf("recovered: %d %s", status, model)
	}
}

// TestTrafficRetries checks a route's retry policy against a fake
// upstream: transient failures are retried on the same target honouring
// retry-after-ms, a Retry-After above the cap moves on at once, and a
// client error is never retried.
func TestTrafficRetries(t *testing.T) {
	fake := trafficFake(t)
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+trafficOpenAIBlock("up", fake)+`
route "retry" {
  retry {
    per_target      = 3
    backoff         = "10ms"
    max_retry_after = "1s"
  }
  target "up" { model = "gpt-4o" }
}
route "retry-then-echo" {
  retry {
    per_target      = 3
    max_retry_after = "1s"
  }
  target "up"   { model = "gpt-4o" }
  target "echo" { model = "echo" }
}
`, harness.Options{WaitFor: []string{"up", "echo"}})

	fake.FailNext(2, openaifake.Failure{Status: http.StatusServiceUnavailable, RetryAfterMs: "300"})
	status, model, took := trafficPost(t, h, "retry")
	if status != 200 || !strings.HasPrefix(model, "gpt-4o") || fake.Requests() != 3 {
		t.Fatalf("after two 503s: %d %s, upstream saw %d requests", status, model, fake.Requests())
	}
	if took < 600*time.Millisecond {
		t.Errorf("two retries after retry-after-ms 300 took %v", took)
	}

	fake.Reset()
	fake.FailNext(1, openaifake.Failure{Status: http.StatusTooManyRequests, RetryAfter: "30"})
	status, model, _ = trafficPost(t, h, "retry-then-echo")
	if status != 200 || model != "echo" || fake.Requests() != 1 {
		t.Errorf("Retry-After 30 s over the 1 s cap: %d %s, upstream saw %d requests; want one, then echo", status, model, fake.Requests())
	}

	fake.Reset()
	fake.FailNext(5, openaifake.Failure{Status: http.StatusBadRequest})
	if status, _, _ := trafficPost(t, h, "retry"); status != 400 || fake.Requests() != 1 {
		t.Errorf("a 400 was retried: %d, upstream saw %d requests", status, fake.Requests())
	}
}

func trafficP50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestTrafficStrategies sends the same load through round_robin,
// least_busy and latency routes over a fast and a slow upstream and
// reports each strategy's traffic share and p50. The adaptive strategies
// must send the fast upstream more than round_robin's half.
func TestTrafficStrategies(t *testing.T) {
	fast, slow := trafficFake(t), trafficFake(t)
	fast.SetScenario(openaifake.Scenario{ChunkDelay: 10 * time.Millisecond})
	slow.SetScenario(openaifake.Scenario{ChunkDelay: 80 * time.Millisecond})
	routes := ""
	for _, s := range []string{"round_robin", "least_busy", "latency"} {
		routes += fmt.Sprintf(`
route %q {
  strategy = %q
  target "fast" { model = "gpt-4o" }
  target "slow" { model = "gpt-4o" }
}
`, s, s)
	}
	h := harness.Start(t, harness.APIKeyBlock+trafficOpenAIBlock("fast", fast)+trafficOpenAIBlock("slow", slow)+routes,
		harness.Options{WaitFor: []string{"fast", "slow"}})
	share := map[string]float64{}
	for _, s := range []string{"round_robin", "least_busy", "latency"} {
		f0, s0 := fast.Requests(), slow.Requests()
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					start := time.Now()
					req, _ := http.NewRequest(http.MethodPost, h.URL+"/v1/chat/completions", strings.NewReader(spineChatBody(s, "hi", false)))
					req.Header.Set("Authorization", "Bearer "+harness.Key)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("%s: status %d", s, resp.StatusCode)
					}
					mu.Lock()
					lat = append(lat, time.Since(start))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		nf, ns := fast.Requests()-f0, slow.Requests()-s0
		share[s] = float64(nf) / float64(nf+ns)
		t.Logf("%-11s fast %3d slow %3d (fast share %.0f %%), p50 %v", s, nf, ns, 100*share[s], trafficP50(lat).Round(time.Millisecond))
	}
	for _, s := range []string{"least_busy", "latency"} {
		if share[s] <= share["round_robin"] || share[s] < 0.6 {
			t.Errorf("%s sent %.0f %% to the fast upstream, round_robin %.0f %%", s, 100*share[s], 100*share["round_robin"])
		}
	}
}

// TestTrafficNodeSDKRetries has the official OpenAI Node SDK (retries on)
// call a key limited to one request per second twice: the second call is
// answered 429 with Retry-After, and the SDK waits and succeeds.
func TestTrafficNodeSDKRetries(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+fmt.Sprintf(`
api_key "node" {
  key    = %q
  models = ["*"]
}
limits {
  limit "node" {
    key = "node"
    rps = 1
  }
}
`, trafficNodeKey), harness.Options{WaitFor: []string{"echo"}})
	stdout := harness.Node(t, "retry.mjs", []string{"echo"}, "LLMPROXY_URL="+h.URL, "LLMPROXY_KEY="+trafficNodeKey)
	var out []struct {
		OK        bool    `json:"ok"`
		Content   string  `json:"content"`
		ElapsedMS float64 `json:"elapsed_ms"`
		Error     string  `json:"error"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil || len(out) != 2 {
		t.Fatalf("retry.mjs printed %q: %v", stdout, err)
	}
	for i, c := range out {
		if !c.OK || !strings.Contains(c.Content, "hello") {
			t.Errorf("call %d: %+v", i, c)
		}
	}
	if out[1].ElapsedMS < 500 {
		t.Errorf("the second call took %.0f ms: it cannot have waited for Retry-After", out[1].ElapsedMS)
	}
	_, _, metrics := h.Do(t, "GET", "/metrics", "")
	if !bytes.Contains(metrics, []byte(`llmproxy_ratelimit_decisions_total{result="limited"} 1`)) {
		t.Errorf("want exactly one refusal in the metrics:\n%s", grepLines(string(metrics), "llmproxy_ratelimit"))
	}
	if !h.WaitLog(`status=429`, 5*time.Second) {
		t.Errorf("the access log shows no 429")
	}
}

// TestTrafficInstanceQuota limits one instance (an upstream's quota shared
// by every key): once it is spent, the route skips that instance without
// an attempt, and a route with no other instance answers 429.
func TestTrafficInstanceQuota(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+`
provider "east" {
  type = "echo"
  config { prefix = "east: " }
}
provider "west" {
  type = "echo"
  config { prefix = "west: " }
}
route "both" {
  target "east" {}
  target "west" {}
}
route "east-only" {
  target "east" {}
}
limits {
  limit "east-quota" {
    instance = "east"
    rpm      = 2
  }
}
`, harness.Options{WaitFor: []string{"east", "west"}})
	answer := func(model string) (int, string, http.Header) {
		status, header, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody(model, "hi", false))
		if status != 200 {
			return status, string(body), header
		}
		return status, supContent(t, body), header
	}
	for i := range 2 {
		if status, text, _ := answer("both"); status != 200 || !strings.HasPrefix(text, "east: ") {
			t.Fatalf("request %d within the quota: %d %s", i, status, text)
		}
	}
	if status, text, h := answer("both"); status != 200 || !strings.HasPrefix(text, "west: ") {
		t.Fatalf("east over its quota: %d %s, want west", status, text)
	} else if h.Get("X-Ratelimit-Limit-Requests") != "" {
		t.Errorf("the upstream's quota leaked into the client's headers: %v", h)
	}
	status, text, header := answer("east-only")
	if status != http.StatusTooManyRequests || !strings.Contains(text, "rate_limit_exceeded") || header.Get("Retry-After") == "" {
		t.Fatalf("only instance over its quota: %d %s %v", status, text, header)
	}
}

// TestTrafficLimitOverhead measures what a request-level limit adds to
// the p50 of a chat request at concurrency 1, in memory and in Redis,
// interleaving the three hosts in rounds so that noise on the machine
// falls on all alike. Every answer must be a 200 carrying the limit's
// headers (none without limits).
func TestTrafficLimitOverhead(t *testing.T) {
	rd := startTrafficRedis(t)
	limit := func(redis string) string {
		return fmt.Sprintf(`
limits {
  redis   = %q
  timeout = "250ms"
  limit "per-key" {
    key = "*"
    rpm = 100000000
    tpm = 100000000000
  }
}
`, redis)
	}
	hosts := map[string]*harness.Host{
		"off":    harness.Start(t, harness.APIKeyBlock+harness.EchoBlock, harness.Options{WaitFor: []string{"echo"}}),
		"off2":   harness.Start(t, harness.APIKeyBlock+harness.EchoBlock, harness.Options{WaitFor: []string{"echo"}}),
		"memory": harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+limit(""), harness.Options{WaitFor: []string{"echo"}}),
		"redis":  harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+limit(rd.url()), harness.Options{WaitFor: []string{"echo"}}),
	}
	names := []string{"off", "memory", "off2", "redis"}
	lat := map[string][]time.Duration{}
	body := spineChatBody("echo", "how much does a limit cost", false)
	client := &http.Client{}
	for round := range 11 {
		for _, name := range names {
			for range 100 {
				req, _ := http.NewRequest(http.MethodPost, hosts[name].URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+harness.Key)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				if resp.StatusCode != 200 || (resp.Header.Get("X-Ratelimit-Limit-Requests") != "") != !strings.HasPrefix(name, "off") {
					t.Fatalf("%s: status %d, headers %v", name, resp.StatusCode, resp.Header)
				}
				if round > 0 { // the first round warms up
					lat[name] = append(lat[name], took)
				}
			}
		}
	}
	off := trafficP50(lat["off"])
	for _, name := range names {
		p := trafficP50(lat[name])
		t.Logf("limits %-6s p50 %v (%+v against off) over %d requests", name, p.Round(time.Microsecond), (p - off).Round(time.Microsecond), len(lat[name]))
	}
}

// TestTrafficStreamUsageInjected streams under a token limit without
// asking for usage: the gateway asks the upstream for the usage chunk,
// settles the reservation with it and does not forward it.
func TestTrafficStreamUsageInjected(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+fmt.Sprintf(`
api_key "tokens" {
  key    = %q
  models = ["*"]
}
limits {
  limit "tokens" {
    key = "tokens"
    tpm = 6000
  }
}
`, trafficTokensKey), harness.Options{WaitFor: []string{"echo"}})
	stream := func(key, body string) (usage int64, chunks int, header http.Header) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("data: {")) {
				continue
			}
			chunks++
			var ch struct {
				Usage *struct {
					TotalTokens int64 `json:"total_tokens"`
				} `json:"usage"`
			}
			if json.Unmarshal(line[6:], &ch) == nil && ch.Usage != nil {
				usage = ch.Usage.TotalTokens
			}
		}
		return usage, chunks, resp.Header
	}
	msgs := `"messages":[{"role":"user","content":"a few words for the token meter"}]`
	// The same request with usage on an unlimited key: what the answer costs.
	want, wantChunks, _ := stream(harness.Key, `{"model":"echo","stream":true,"stream_options":{"include_usage":true},"max_tokens":500,`+msgs+`}`)
	if want == 0 {
		t.Fatal("echo sent no usage")
	}
	body := `{"model":"echo","stream":true,"max_tokens":500,` + msgs + `}`
	got, chunks, h1 := stream(trafficTokensKey, body)
	if got != 0 || chunks != wantChunks-1 {
		t.Errorf("the client got a usage chunk it did not ask for (usage %d, %d chunks, want %d)", got, chunks, wantChunks-1)
	}
	reservation := int64(len(body)+3)/4 + 500
	left, _ := strconv.ParseInt(h1.Get("X-Ratelimit-Remaining-Tokens"), 10, 64)
	if left != 6000-reservation {
		t.Fatalf("remaining after the first reservation = %d, want %d", left, 6000-reservation)
	}
	// The second request sees the first settled at its real usage: only
	// the refill (100 tokens/s) may add to what is left.
	time.Sleep(100 * time.Millisecond)
	_, _, h2 := stream(trafficTokensKey, body)
	left2, _ := strconv.ParseInt(h2.Get("X-Ratelimit-Remaining-Tokens"), 10, 64)
	settled := 6000 - want - reservation
	if left2 < settled || left2 > settled+100 {
		t.Errorf("remaining after a settled stream = %d, want %d (+ refill); unsettled it would be %d", left2, settled, 6000-2*reservation)
	}
}

// TestTrafficLimitsInMemory is the in-memory backend on one replica under
// concurrent load: exactly what one GCRA bucket allows.
func TestTrafficLimitsInMemory(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+fmt.Sprintf(`
api_key "open" {
  key    = %q
  models = ["*"]
}
limits {
  limit "open" {
    key = "open"
    rpm = 600
  }
}
`, trafficOpenKey), harness.Options{WaitFor: []string{"echo"}})
	var tally trafficTally
	took := trafficLoad(t, []*harness.Host{h}, 8, 2*time.Second, trafficOpenKey, spineChatBody("echo", "count me", false), false, &tally)
	want := 600 + int64(took/(100*time.Millisecond))
	t.Logf("1 replica × 8 workers for %v: %s; GCRA allows %d", took.Round(time.Millisecond), &tally, want)
	if n := tally.ok.Load(); n < want-1 || n > want+1 {
		t.Errorf("admitted %d, want %d ±1", n, want)
	}
	if tally.other.Load() != 0 {
		t.Errorf("answers: %s %v", &tally, tally.otherBodies)
	}
}

// TestTrafficStickyAndCost routes by session header and by price.
func TestTrafficStickyAndCost(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+`
provider "east" {
  type = "echo"
  config { prefix = "east: " }
}
provider "west" {
  type = "echo"
  config { prefix = "west: " }
}
route "sticky" {
  strategy      = "round_robin"
  sticky_header = "X-Session-Id"
  target "east" {}
  target "west" {}
}
route "cheap" {
  strategy = "cost"
  target "east" { price = 5 }
  target "west" { price = 0.5 }
}
`, harness.Options{WaitFor: []string{"east", "west"}})
	served := func(model string, header ...string) string {
		status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody(model, "hi", false), header...)
		if status != 200 {
			t.Fatalf("%s: %d %s", model, status, body)
		}
		text := supContent(t, body)
		name, _, _ := strings.Cut(text, ":")
		return name
	}
	seen := map[string]bool{}
	for i := range 12 {
		session := fmt.Sprintf("session-%d", i)
		first := served("sticky", "X-Session-Id", session)
		seen[first] = true
		for range 3 {
			if got := served("sticky", "X-Session-Id", session); got != first {
				t.Fatalf("%s moved from %s to %s", session, first, got)
			}
		}
	}
	if !seen["east"] || !seen["west"] {
		t.Errorf("12 sessions all on one instance: %v", seen)
	}
	// Without the header the route rotates.
	if a, b := served("sticky"), served("sticky"); a == b {
		t.Errorf("round_robin without a session served %s twice", a)
	}
	for range 3 {
		if got := served("cheap"); got != "west" {
			t.Errorf("cost strategy served %s, want the cheaper west", got)
		}
	}
}

// TestTrafficConcurrency holds a key to two requests at once: a third
// while two streams run is refused, and admitted once one has ended.
func TestTrafficConcurrency(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+fmt.Sprintf(`
provider "slow" {
  type = "echo"
  config { chunk_delay = "100ms" }
}
route "slow" {
  target "slow" {}
}
api_key "open" {
  key    = %q
  models = ["*"]
}
limits {
  limit "two-at-once" {
    key        = "open"
    concurrent = 2
  }
}
`, trafficOpenKey), harness.Options{WaitFor: []string{"slow"}})
	send := func(stream bool) int {
		var tally trafficTally
		body := spineChatBody("slow", "one two three four five six", stream)
		trafficSend(t, h.URL, trafficOpenKey, body, stream, &tally)
		switch {
		case tally.ok.Load() == 1:
			return 200
		case tally.limited.Load() == 1:
			return 429
		}
		t.Fatalf("answer: %s %v", &tally, tally.otherBodies)
		return 0
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := send(true); got != 200 {
				t.Errorf("stream within the limit: %d", got)
			}
		}()
	}
	time.Sleep(250 * time.Millisecond) // both streams are running
	if got := send(false); got != 429 {
		t.Errorf("a third request while two stream: %d, want 429", got)
	}
	wg.Wait()
	if got := send(false); got != 200 {
		t.Errorf("after the streams ended: %d, want 200", got)
	}
}
