package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// The supervisor tests use short health and attempt limits so that hangs
// are noticed in about a second.
const (
	supHealthInterval = time.Second
	supConnectTimeout = time.Second
	supKeepalive      = time.Second
	supServer         = `  health_interval  = "1s"
  health_timeout   = "500ms"
  health_failures  = 2
  connect_timeout  = "1s"
  stream_keepalive = "1s"`
)

// supChat posts a chat request and returns status and body.
func supChat(t *testing.T, h *harness.Host, model string, stream bool) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := spinePost(ctx, h, spineChatBody(model, "are you there", stream))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s answer: %v", model, err)
	}
	return resp.StatusCode, b
}

// supContent returns the assistant text of a chat completion body.
func supContent(t *testing.T, body []byte) string {
	t.Helper()
	var c struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 {
		t.Fatalf("not a chat completion: %s", body)
	}
	return c.Choices[0].Message.Content
}

// supEvents reads a whole SSE response strictly: it returns the data of
// every event, the comments, and fails on anything that is not a data
// line, a comment or a blank line.
func supEvents(t *testing.T, body io.Reader) (events, comments []string) {
	t.Helper()
	r := bufio.NewReader(body)
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			if line != "" || len(data) > 0 {
				t.Fatalf("stream ended inside an event: %q", line)
			}
			return events, comments
		}
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.Contains(line, "\r") {
			t.Fatalf("a CR inside an SSE line: %q", line)
		}
		switch {
		case line == "":
			if len(data) > 0 {
				events = append(events, strings.Join(data, "\n"))
				data = nil
			}
		case strings.HasPrefix(line, ":"):
			comments = append(comments, line)
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			t.Fatalf("not an SSE data line or comment: %q", line)
		}
	}
}

// supStreamText checks that events are JSON chunks ending with [DONE] and
// returns the streamed text.
func supStreamText(t *testing.T, events []string) string {
	t.Helper()
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", events)
	}
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("event is not a chat chunk: %q (%v)", e, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	return text.String()
}

// TestSupervisorStoppedPlugin stops a plugin with SIGSTOP: requests fail
// over to the next target within the connect timeout, /readyz reports the
// instance degraded within a health interval, and the process is killed
// and replaced.
func TestSupervisorStoppedPlugin(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+`
provider "echo_a" {
  type = "echo"
  config {
    prefix = "A: "
  }
}
provider "echo_b" {
  type = "echo"
  config {
    prefix = "B: "
  }
}
route "failover" {
  target "echo_a" { model = "echo" }
  target "echo_b" { model = "echo" }
}
`, harness.Options{WaitFor: []string{"echo_a", "echo_b"}, Server: supServer})

	if status, body := supChat(t, h, "failover", false); status != 200 || !strings.HasPrefix(supContent(t, body), "A: ") {
		t.Fatalf("before the stop: %d %s", status, body)
	}
	old := h.PluginProcs(t)["echo_a"]
	if err := syscall.Kill(old.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { syscall.Kill(old.PID, syscall.SIGKILL) })
	// The signal takes effect asynchronously; wait until the kernel shows
	// the process stopped.
	for {
		ps, err := harness.ReadProcStat(old.PID)
		if err != nil {
			t.Fatal(err)
		}
		if ps.State == 'T' {
			break
		}
		if time.Since(stopped) > 5*time.Second {
			t.Fatalf("echo_a (pid %d) is in state %c after SIGSTOP", old.PID, ps.State)
		}
		time.Sleep(time.Millisecond)
	}

	// A request answered by the next target within the connect timeout.
	status, body := supChat(t, h, "failover", false)
	took := time.Since(stopped)
	if status != 200 || !strings.HasPrefix(supContent(t, body), "B: ") {
		t.Fatalf("with echo_a stopped: %d %s", status, body)
	}
	t.Logf("failover answered %v after SIGSTOP (connect timeout %v)", took, supConnectTimeout)
	if took > supConnectTimeout+time.Second {
		t.Errorf("failover took %v; want about the connect timeout (%v)", took, supConnectTimeout)
	}

	// /readyz says so within the health interval (plus its timeout).
	var seen harness.InstanceStatus
	for {
		st := spineInstances(t, h)["echo_a"]
		if st.State == "degraded" || st.State == "restarting" {
			seen = st
			break
		}
		if time.Since(stopped) > 2*supHealthInterval+time.Second {
			t.Fatalf("/readyz still says %+v %v after SIGSTOP", st, time.Since(stopped))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("/readyz reported echo_a %s (%s) %v after SIGSTOP", seen.State, seen.Reason, time.Since(stopped))
	if detected := time.Since(stopped); detected > supHealthInterval+time.Second {
		t.Errorf("the stop was reported after %v; want within the health interval (%v)", detected, supHealthInterval)
	}

	// A streamed request fails over too, before its first chunk.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := spinePost(ctx, h, spineChatBody("failover", "stream please", true))
	if err != nil {
		t.Fatal(err)
	}
	events, _ := supEvents(t, resp.Body)
	resp.Body.Close()
	if text := supStreamText(t, events); !strings.HasPrefix(text, "B: ") {
		t.Errorf("stream during the stop answered %q", text)
	}

	// The hung process is killed and replaced.
	st := h.WaitInstance(t, "echo_a", "ready", 15*time.Second)
	t.Logf("echo_a replaced %v after SIGSTOP: %+v", time.Since(stopped), st)
	if st.PID == old.PID || st.Restarts < 1 {
		t.Errorf("echo_a after the stop: %+v; want a new process and a restart counted (old pid %d)", st, old.PID)
	}
	if alive := harness.WaitGone([]harness.Proc{old}, 5*time.Second); len(alive) > 0 {
		t.Errorf("the stopped plugin %d still exists", old.PID)
	}
	if status, body := supChat(t, h, "failover", false); status != 200 || !strings.HasPrefix(supContent(t, body), "A: ") {
		t.Errorf("after the restart: %d %s", status, body)
	}
}

// supFaultsBlock is an echo instance serving the fault models, a healthy
// echo instance, and their routes.
const supFaultsBlock = `
provider "faulty" {
  type = "echo"
  config {
    faults      = true
    chunk_delay = "50ms"
  }
}
provider "good" {
  type = "echo"
  config {
    prefix = "good: "
  }
}
route "fault-*" {
  target "faulty" {}
}
route "slow" {
  target "faulty" { model = "echo" }
}
route "auth-failover" {
  target "faulty" { model = "fault-unauthorized" }
  target "good"   { model = "echo" }
}
route "forbidden-failover" {
  target "faulty" { model = "fault-forbidden" }
  target "good"   { model = "echo" }
}
route "prefer-healthy" {
  target "faulty" { model = "echo" }
  target "good"   { model = "echo" }
}
route "silent-failover" {
  first_byte_timeout = "500ms"
  target "faulty" { model = "fault-silent-5s" }
  target "good"   { model = "echo" }
}
`

func startFaults(t *testing.T) *harness.Host {
	return harness.Start(t, harness.APIKeyBlock+supFaultsBlock,
		harness.Options{WaitFor: []string{"faulty", "good"}, Server: supServer})
}

// TestSupervisorPanicOverDataPath makes a provider panic in a call served
// over the data path: the client gets 500 plugin_error, the panic and its
// stack are logged, the plugin keeps its pid and a concurrent stream of
// the same instance finishes untouched.
func TestSupervisorPanicOverDataPath(t *testing.T) {
	h := startFaults(t)
	before := spineInstances(t, h)["faulty"]

	// A stream of 30 words at 50ms each runs while the panics happen.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	words := strings.TrimSpace(strings.Repeat("word ", 30))
	resp, err := spinePost(ctx, h, spineChatBody("slow", words, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var wg sync.WaitGroup
	var text string
	wg.Add(1)
	go func() {
		defer wg.Done()
		events, _ := supEvents(t, resp.Body)
		text = supStreamText(t, events)
	}()

	for range 3 {
		status, body := supChat(t, h, "fault-panic", false)
		e := spineParseError(t, body)
		if status != http.StatusInternalServerError || *e.Code != "plugin_error" {
			t.Errorf("panicking call: %d %s; want 500 plugin_error", status, body)
		}
	}
	wg.Wait()
	if text != "You said: "+words {
		t.Errorf("the concurrent stream read %q", text)
	}
	after := spineInstances(t, h)["faulty"]
	if after.PID != before.PID || after.Restarts != before.Restarts || after.State != "ready" {
		t.Errorf("plugin before the panics %+v, after %+v; want the same process, no restart", before, after)
	}
	logs := h.Logs()
	for _, want := range []string{"plugin panicked", "datapath call", "fault-panic model requested", "goroutine "} {
		if !strings.Contains(logs, want) {
			t.Errorf("the host log does not show %q", want)
		}
	}
}

// TestSupervisorUpstreamAuth makes a provider's upstream reject its
// credentials: the client sees 502 upstream_auth_failed without the
// upstream's text, the route fails over, the instance is degraded in
// /readyz until a success, and routes try it after healthy targets.
func TestSupervisorUpstreamAuth(t *testing.T) {
	h := startFaults(t)
	const secret = "sk-echo-upstream"

	for _, model := range []string{"auth-failover", "forbidden-failover"} {
		status, body := supChat(t, h, model, false)
		if status != 200 || supContent(t, body) != "good: are you there" {
			t.Errorf("%s: %d %s; want the next target's answer", model, status, body)
		}
	}
	st := spineInstances(t, h)["faulty"]
	if st.State != "degraded" || !strings.Contains(st.Reason, "upstream rejected credentials") {
		t.Errorf("faulty after upstream 401: %+v; want degraded, upstream rejected credentials", st)
	}

	// A degraded target is tried after healthy ones.
	if status, body := supChat(t, h, "prefer-healthy", false); status != 200 || !strings.HasPrefix(supContent(t, body), "good: ") {
		t.Errorf("prefer-healthy with faulty degraded: %d %s", status, body)
	}

	// Without another target: 502, generic text, for chat, a stream
	// before its first chunk, and embeddings.
	for _, c := range []struct{ name, path, body string }{
		{"chat", "/v1/chat/completions", spineChatBody("fault-unauthorized", "hi", false)},
		{"stream", "/v1/chat/completions", spineChatBody("fault-unauthorized", "hi", true)},
		{"forbidden", "/v1/chat/completions", spineChatBody("fault-forbidden", "hi", false)},
		{"embeddings", "/v1/embeddings", `{"model":"fault-unauthorized","input":"hi"}`},
	} {
		status, _, body := h.Do(t, "POST", c.path, c.body)
		e := spineParseError(t, body)
		if status != http.StatusBadGateway || *e.Code != "upstream_auth_failed" {
			t.Errorf("%s: %d %s; want 502 upstream_auth_failed", c.name, status, body)
		}
		if strings.Contains(string(body), secret) || strings.Contains(string(body), "Incorrect API key") {
			t.Errorf("%s: the upstream's text reached the client: %s", c.name, body)
		}
	}
	if !h.WaitLog("Incorrect API key provided", 5*time.Second) {
		t.Error("the upstream's detail is not in the host log")
	}

	// The official Node SDK sees the same error.
	res := runProvidersNode(t, h, "error", "fault-unauthorized")
	if res.Status != http.StatusBadGateway || res.Code == nil || *res.Code != "upstream_auth_failed" {
		t.Errorf("node SDK saw %+v", res)
	}

	// A later success through the instance clears the degradation.
	if status, body := supChat(t, h, "slow", false); status != 200 {
		t.Fatalf("slow: %d %s", status, body)
	}
	if st := spineInstances(t, h)["faulty"]; st.State != "ready" {
		t.Errorf("faulty after a success: %+v; want ready", st)
	}
}

// TestSupervisorHealthChecker makes a provider's HealthChecker fail for
// three seconds: /readyz reports the instance degraded with the checker's
// reason within a health interval, routes prefer the healthy target, the
// process is not restarted, and the instance is ready again once its
// checks pass.
func TestSupervisorHealthChecker(t *testing.T) {
	h := startFaults(t)
	before := spineInstances(t, h)["faulty"]
	if status, body := supChat(t, h, "fault-sick-3s", false); status != 200 {
		t.Fatalf("fault-sick-3s: %d %s", status, body)
	}
	sick := time.Now()
	st := h.WaitInstance(t, "faulty", "degraded", supHealthInterval+time.Second)
	t.Logf("degraded %v after the checker turned: %+v", time.Since(sick), st)
	if !strings.Contains(st.Reason, "health check failed: echo: the upstream is unreachable") {
		t.Errorf("reason %q", st.Reason)
	}
	if status, body := supChat(t, h, "prefer-healthy", false); status != 200 || !strings.HasPrefix(supContent(t, body), "good: ") {
		t.Errorf("prefer-healthy with faulty degraded: %d %s", status, body)
	}
	st = h.WaitInstance(t, "faulty", "ready", 3*time.Second+2*supHealthInterval)
	t.Logf("ready again %v after the checker turned", time.Since(sick))
	if st.PID != before.PID || st.Restarts != before.Restarts {
		t.Errorf("before %+v, after %+v; a failing health checker must not restart the plugin", before, st)
	}
	if status, body := supChat(t, h, "prefer-healthy", false); status != 200 || !strings.HasPrefix(supContent(t, body), "You said: ") {
		t.Errorf("prefer-healthy with faulty healthy again: %d %s", status, body)
	}
}

// TestSupervisorStreams covers the framing and timing of streams: chunks
// with raw newlines, an upstream silent for longer than the keepalive
// period, and a first-byte timeout that fails over.
func TestSupervisorStreams(t *testing.T) {
	h := startFaults(t)

	t.Run("raw newlines", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := spinePost(ctx, h, spineChatBody("fault-newline", "one two", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events, _ := supEvents(t, resp.Body)
		if text := supStreamText(t, events); text != "You said: one two" {
			t.Errorf("text %q", text)
		}
		for _, e := range events {
			if strings.Contains(e, "\n") {
				t.Errorf("an event spans lines: %q", e)
			}
		}
		res := runProvidersNode(t, h, "stream", "fault-newline")
		if res.Content == nil || *res.Content != "You said: What is the weather like in Paris?" {
			t.Errorf("node SDK read %+v", res)
		}
	})

	t.Run("silent upstream", func(t *testing.T) {
		const silence = 5 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := spinePost(ctx, h, spineChatBody("fault-silent-5s", "late answer", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		headers := time.Since(start)
		if resp.StatusCode != 200 || headers > supKeepalive+time.Second {
			t.Fatalf("status %d after %v; want 200 after about %v", resp.StatusCode, headers, supKeepalive)
		}
		events, comments := supEvents(t, resp.Body)
		total := time.Since(start)
		t.Logf("headers after %v, %d keepalives, done after %v", headers, len(comments), total)
		if text := supStreamText(t, events); text != "You said: late answer" {
			t.Errorf("text %q", text)
		}
		if want := int(silence/supKeepalive) - 1; len(comments) < want {
			t.Errorf("%d keepalive comments over %v of silence; want at least %d", len(comments), silence, want)
		}
		for _, c := range comments {
			if c != ": keepalive" {
				t.Errorf("comment %q", c)
			}
		}
		if total < silence {
			t.Errorf("the stream ended after %v, before the upstream spoke", total)
		}
		res := runProvidersNode(t, h, "stream", "fault-silent-3s")
		if res.Content == nil || *res.Content != "You said: What is the weather like in Paris?" {
			t.Errorf("node SDK read %+v", res)
		}
	})

	t.Run("first byte timeout fails over", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := spinePost(ctx, h, spineChatBody("silent-failover", "anyone", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events, _ := supEvents(t, resp.Body)
		took := time.Since(start)
		if text := supStreamText(t, events); text != "good: anyone" {
			t.Errorf("text %q; want the second target's", text)
		}
		if took > 2*time.Second {
			t.Errorf("failover after a 500ms first-byte timeout took %v", took)
		}
	})
}
