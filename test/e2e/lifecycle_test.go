package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// spineRecoveryBound is the generous upper bound on how long an instance may
// take to serve again after its plugin was killed; the target is well
// under a second, and the measured time is logged.
const spineRecoveryBound = 10 * time.Second

// spineSlowEchoBlock is an echo instance that pauses 50ms between streamed
// words, and its route.
const spineSlowEchoBlock = `
provider "echo" {
  type = "echo"
  config {
    chunk_delay = "50ms"
  }
}
route "echo" {
  target "echo" {}
}
`

// spineChatBody is a chat request body for model.
func spineChatBody(model, text string, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model":    model,
		"stream":   stream,
		"messages": []map[string]string{{"role": "user", "content": text}},
	})
	return string(b)
}

// post sends a chat request with the harness key; unlike Host.Do it is
// safe to call from any goroutine and leaves the body to the caller.
func spinePost(ctx context.Context, h *harness.Host, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+harness.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST /v1/chat/completions: %w", err)
	}
	return resp, nil
}

// spineSSE reads the data payloads of a server-sent event stream.
type spineSSE struct{ r *bufio.Reader }

// next returns the next data payload, or io.EOF at the end of the stream.
func (s *spineSSE) next() (string, error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && strings.TrimSpace(line) != "" {
				return "", fmt.Errorf("stream ended inside an event: %q", line)
			}
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return data, nil
		}
		if line != "" {
			return "", fmt.Errorf("not an SSE data line: %q", line)
		}
	}
}

// spineError is the OpenAI error object.
type spineError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    *string `json:"code"`
}

// spineParseError decodes an OpenAI-shaped error body, failing the test when
// it is not one.
func spineParseError(t *testing.T, body []byte) spineError {
	t.Helper()
	var e struct {
		Error *spineError `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" ||
		e.Error.Code == nil || *e.Error.Code == "" {
		t.Fatalf("not an OpenAI error with message, type and code: %s", body)
	}
	return *e.Error
}

// spineWaitServing sends requests for model until one succeeds and returns how
// long after since that was, failing the test past spineRecoveryBound.
func spineWaitServing(t *testing.T, h *harness.Host, model string, since time.Time) time.Duration {
	t.Helper()
	for time.Since(since) < spineRecoveryBound {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := spinePost(ctx, h, spineChatBody(model, "are you back", false))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return time.Since(since)
			}
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusBadGateway {
				cancel()
				t.Fatalf("while the plugin restarts, %s got %d; want 502/503 or 200: %s", model, resp.StatusCode, body)
			}
		}
		cancel()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("model %s did not serve again within %v\n%v", model, spineRecoveryBound, spineInstances(t, h))
	return 0
}

func spineInstances(t *testing.T, h *harness.Host) map[string]harness.InstanceStatus {
	t.Helper()
	st, err := h.Instances()
	if err != nil {
		t.Fatalf("read /readyz: %v", err)
	}
	return st
}

// spineKillPlugin SIGKILLs the plugin process of instance and returns it.
func spineKillPlugin(t *testing.T, h *harness.Host, instance string) harness.Proc {
	t.Helper()
	p, ok := h.PluginProcs(t)[instance]
	if !ok {
		t.Fatalf("instance %s has no plugin process: %v", instance, spineInstances(t, h))
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %s (pid %d): %v", instance, p.PID, err)
	}
	return p
}

// spineCheckRestarted asserts that instance runs a new plugin process after
// old was killed, and that the host itself is still running.
func spineCheckRestarted(t *testing.T, h *harness.Host, instance string, old harness.Proc) {
	t.Helper()
	select {
	case <-h.Exited():
		t.Fatal("the host exited when a plugin was killed")
	default:
	}
	st := spineInstances(t, h)[instance]
	if st.State != "ready" || st.PID == 0 || st.PID == old.PID || st.Restarts < 1 {
		t.Errorf("instance %s after its plugin was killed: %+v; want ready with a new pid and a restart counted", instance, st)
	}
	if alive := harness.WaitGone([]harness.Proc{old}, 5*time.Second); len(alive) > 0 {
		t.Errorf("the killed plugin process %d still runs", old.PID)
	}
}

// TestPluginCrash kills plugins with SIGKILL while requests are in flight:
// a started stream ends with an SSE error event, a unary request gets a
// 502/503 in OpenAI shape, the host keeps running, and the instance
// serves again once its plugin has been restarted.
func TestPluginCrash(t *testing.T) {
	fake := spineFake(t)
	// openai_prod keeps its calls in the plugin (forward = false), whose
	// death they must survive cleanly; openai_planned hands the host a
	// plan, so the host makes its calls and they outlive the plugin.
	served := strings.Replace(spineOpenAIBlock("openai_prod", fake, true), "  config {\n", "  config {\n    forward = false\n", 1)
	planned := spineOpenAIBlock("openai_planned", fake, false) + `
route "planned-4o" {
  target "openai_planned" { model = "gpt-4o" }
}
`
	h := harness.Start(t, harness.APIKeyBlock+spineSlowEchoBlock+served+planned,
		harness.Options{WaitFor: []string{"echo", "openai_prod", "openai_planned"}})

	t.Run("mid-stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// 200 words at 50ms each: the stream would run for ten seconds.
		resp, err := spinePost(ctx, h, spineChatBody("echo", strings.Repeat("word ", 200), true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("stream status %d: %s", resp.StatusCode, b)
		}
		events := &spineSSE{r: bufio.NewReader(resp.Body)}
		for i := 0; i < 3; i++ {
			data, err := events.next()
			if err != nil || !strings.Contains(data, `"chat.completion.chunk"`) {
				t.Fatalf("chunk %d before the kill: %q, %v", i, data, err)
			}
		}
		old := spineKillPlugin(t, h, "echo")
		killed := time.Now()

		var last string
		for {
			data, err := events.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading the stream after the kill: %v", err)
			}
			if data == "[DONE]" {
				t.Fatal("a stream whose plugin died must not end with [DONE]")
			}
			last = data
		}
		if !strings.HasPrefix(last, `{"error":`) {
			t.Fatalf("the stream's last event is %q; want an SSE error event", last)
		}
		e := spineParseError(t, []byte(last))
		t.Logf("stream error event after the kill: type %s, code %s, %q; the stream closed %v after the kill",
			e.Type, *e.Code, e.Message, time.Since(killed).Round(time.Millisecond))

		took := spineWaitServing(t, h, "echo", killed)
		t.Logf("recovery: echo served again %v after its plugin was killed mid-stream", took.Round(time.Millisecond))
		spineCheckRestarted(t, h, "echo", old)
	})

	t.Run("unary in flight", func(t *testing.T) {
		fake.Reset()
		fake.SetScenario(openaifake.Scenario{ChunkDelay: time.Minute})
		type result struct {
			status int
			body   []byte
			err    error
		}
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp, err := spinePost(ctx, h, spineChatBody("gpt-4o", "slow answer please", false))
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- result{status: resp.StatusCode, body: b, err: err}
		}()
		spineWaitFor(t, "the request to reach the upstream", func() bool { return fake.Requests() == 1 })
		old := spineKillPlugin(t, h, "openai_prod")
		killed := time.Now()

		var res result
		select {
		case res = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the request in flight did not end after its plugin was killed")
		}
		if res.err != nil {
			t.Fatalf("the request in flight failed at the transport level: %v", res.err)
		}
		if res.status != http.StatusBadGateway && res.status != http.StatusServiceUnavailable {
			t.Fatalf("the request in flight got %d; want 502 or 503: %s", res.status, res.body)
		}
		e := spineParseError(t, res.body)
		t.Logf("request in flight at the kill: %d, type %s, code %s, %q, %v after the kill",
			res.status, e.Type, *e.Code, e.Message, time.Since(killed).Round(time.Millisecond))
		if !fake.WaitCancelled(10 * time.Second) {
			t.Error("the upstream request of the killed plugin was not closed")
		}

		fake.Reset()
		took := spineWaitServing(t, h, "gpt-4o", killed)
		t.Logf("recovery: openai_prod served again %v after its plugin was killed", took.Round(time.Millisecond))
		spineCheckRestarted(t, h, "openai_prod", old)
	})

	t.Run("planned call in flight outlives the plugin", func(t *testing.T) {
		fake.Reset()
		fake.SetScenario(openaifake.Scenario{ChunkDelay: 2 * time.Second})
		type result struct {
			status int
			body   []byte
			err    error
		}
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp, err := spinePost(ctx, h, spineChatBody("planned-4o", "slow answer please", false))
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- result{status: resp.StatusCode, body: b, err: err}
		}()
		spineWaitFor(t, "the request to reach the upstream", func() bool { return fake.Requests() == 1 })
		old := spineKillPlugin(t, h, "openai_planned")
		killed := time.Now()
		res := <-done
		if res.err != nil || res.status != http.StatusOK || !strings.Contains(string(res.body), `"chat.completion"`) {
			t.Fatalf("the planned request in flight got %d %s (%v); want its answer", res.status, res.body, res.err)
		}
		if fake.Cancelled() != 0 {
			t.Error("the upstream saw the planned request abandoned")
		}
		fake.Reset()
		took := spineWaitServing(t, h, "planned-4o", killed)
		t.Logf("recovery: openai_planned served again %v after its plugin was killed", took.Round(time.Millisecond))
		spineCheckRestarted(t, h, "openai_planned", old)
	})

	t.Run("other instances unaffected", func(t *testing.T) {
		// Kill echo again: openai_prod must keep serving while echo restarts.
		old := spineKillPlugin(t, h, "echo")
		killed := time.Now()
		fake.Reset()
		for i := 0; i < 5; i++ {
			status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "still there?", false))
			if status != http.StatusOK {
				t.Fatalf("openai_prod request %d while echo restarts: %d %s", i, status, body)
			}
		}
		took := spineWaitServing(t, h, "echo", killed)
		t.Logf("recovery: echo served again %v after its second kill", took.Round(time.Millisecond))
		spineCheckRestarted(t, h, "echo", old)
	})
}

// spineWaitFor polls cond for up to 10 seconds, failing the test with what.
func spineWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientDisconnectCancelsUpstream closes the client connection while
// a slow request is in flight and checks that the plugin call, and with
// it the upstream request, is cancelled.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	fake := spineFake(t)
	h := harness.Start(t, harness.APIKeyBlock+spineOpenAIBlock("openai_prod", fake, true),
		harness.Options{WaitFor: []string{"openai_prod"}})
	before := spineInstances(t, h)["openai_prod"]

	tests := []struct {
		name     string
		stream   bool
		scenario openaifake.Scenario
		// events is how many SSE events the client reads before leaving.
		events int
	}{
		{name: "unary", scenario: openaifake.Scenario{ChunkDelay: time.Minute}},
		{name: "stream", stream: true, events: 2, scenario: openaifake.Scenario{
			ChunkDelay: 200 * time.Millisecond,
			Reply:      strings.Repeat("slowly ", 300),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.Reset()
			fake.SetScenario(tt.scenario)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			read := make(chan struct{})
			go func() {
				resp, err := spinePost(ctx, h, spineChatBody("gpt-4o", "take your time", tt.stream))
				if err != nil {
					errc <- err
					return
				}
				defer resp.Body.Close()
				events := &spineSSE{r: bufio.NewReader(resp.Body)}
				for i := 0; i < tt.events; i++ {
					if _, err := events.next(); err != nil {
						errc <- fmt.Errorf("event %d: %w", i, err)
						return
					}
				}
				close(read)
				_, err = io.Copy(io.Discard, resp.Body)
				errc <- err
			}()
			spineWaitFor(t, "the request to reach the upstream", func() bool { return fake.Requests() == 1 })
			if tt.stream {
				select {
				case <-read:
				case err := <-errc:
					t.Fatalf("the stream failed before the client left: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no stream events within 10s")
				}
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("the client's request ended with %v; want it cancelled by the client", err)
			}
			if !fake.WaitCancelled(10 * time.Second) {
				t.Fatalf("the upstream request was not cancelled after the client left (requests %d, cancelled %d)",
					fake.Requests(), fake.Cancelled())
			}
		})
	}

	// Cancellation is not a crash: the same plugin process serves on.
	fake.Reset()
	if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "hello again", false)); status != http.StatusOK {
		t.Fatalf("request after the disconnects: %d %s", status, body)
	}
	if after := spineInstances(t, h)["openai_prod"]; after.PID != before.PID || after.Restarts != before.Restarts {
		t.Errorf("the plugin was restarted by client disconnects: before %+v, after %+v", before, after)
	}
}

// TestNoOrphanPlugins ends the host with SIGKILL and with SIGTERM and
// checks that none of its plugin processes outlives it.
func TestNoOrphanPlugins(t *testing.T) {
	tests := []struct {
		name   string
		signal syscall.Signal
		// exitCode is the host's expected exit code (-1: killed by the signal).
		exitCode int
	}{
		{name: "SIGKILL", signal: syscall.SIGKILL, exitCode: -1},
		{name: "SIGTERM", signal: syscall.SIGTERM, exitCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := spineFake(t)
			h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+`
provider "echo_two" {
  type = "echo"
}
`+spineOpenAIBlock("openai_prod", fake, true), harness.Options{WaitFor: []string{"echo", "echo_two", "openai_prod"}})
			procs := h.PluginProcs(t)
			if len(procs) != 3 {
				t.Fatalf("want 3 plugin processes, /readyz reports %v", procs)
			}
			var list []harness.Proc
			for name, p := range procs {
				st, err := harness.ReadProcStat(p.PID)
				if err != nil || st.PPID != h.Cmd.Process.Pid || !strings.HasPrefix(p.Comm, "llmproxy-provid") {
					t.Fatalf("instance %s: pid %d is not a plugin child of the host (pid %d): %+v %v", name, p.PID, h.Cmd.Process.Pid, st, err)
				}
				list = append(list, p)
			}

			if err := h.Cmd.Process.Signal(tt.signal); err != nil {
				t.Fatalf("signal the host: %v", err)
			}
			if code := h.ExitCode(t, 30*time.Second); code != tt.exitCode {
				t.Errorf("host exit code %d, want %d", code, tt.exitCode)
			}
			for _, p := range harness.WaitGone(list, 5*time.Second) {
				st, _ := harness.ReadProcStat(p.PID)
				t.Errorf("plugin pid %d (%s) outlived the host: %+v", p.PID, p.Comm, st)
			}
			// A plugin that has exited but was not reaped must not be left
			// to this test process.
			for _, p := range list {
				if st, err := harness.ReadProcStat(p.PID); err == nil && st.Start == p.Start && st.PPID == os.Getpid() {
					t.Errorf("plugin pid %d was reparented to the test process (state %c)", p.PID, st.State)
				}
			}
		})
	}
}

// TestPluginEnvironment checks that the host's environment does not leak
// into plugin processes, except what an instance lists in inherit_env,
// and that an instance's env map reaches its plugin.
func TestPluginEnvironment(t *testing.T) {
	hostEnv := []string{
		"LLMPROXY_E2E_SECRET=do-not-leak-" + t.Name(),
		"E2E_INHERITED_TOKEN=passed-through",
		"E2E_INHERITED_REGION=eu-west-3",
	}
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+`
provider "inheriting" {
  type        = "echo"
  inherit_env = ["E2E_INHERITED_*"]
  env = {
    EXTRA_SETTING = "on"
  }
}
`, harness.Options{Env: hostEnv, WaitFor: []string{"echo", "inheriting"}})
	procs := h.PluginProcs(t)

	host := map[string]string{}
	for _, kv := range append(os.Environ(), hostEnv...) {
		k, v, _ := strings.Cut(kv, "=")
		host[k] = v
	}
	tests := []struct {
		instance string
		// want must be set exactly; absent must not be set at all.
		want   map[string]string
		absent []string
		// allowed are host variables the plugin may share with the host.
		allowed []string
	}{
		{
			instance: "echo",
			want:     map[string]string{"LLMPROXY_INSTANCE": "echo"},
			absent:   []string{"LLMPROXY_E2E_SECRET", "E2E_INHERITED_TOKEN", "E2E_INHERITED_REGION", "EXTRA_SETTING", "HOME"},
			allowed:  []string{"TMPDIR", "PATH"},
		},
		{
			instance: "inheriting",
			want: map[string]string{
				"LLMPROXY_INSTANCE":    "inheriting",
				"E2E_INHERITED_TOKEN":  "passed-through",
				"E2E_INHERITED_REGION": "eu-west-3",
				"EXTRA_SETTING":        "on",
			},
			absent:  []string{"LLMPROXY_E2E_SECRET", "HOME"},
			allowed: []string{"TMPDIR", "PATH", "E2E_INHERITED_TOKEN", "E2E_INHERITED_REGION"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.instance, func(t *testing.T) {
			p, ok := procs[tt.instance]
			if !ok {
				t.Fatalf("no plugin process for %s", tt.instance)
			}
			env, err := harness.Environ(p.PID)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got, ok := env[k]; !ok || got != v {
					t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := env[k]; ok {
					t.Errorf("%s leaked into the plugin: %q", k, v)
				}
			}
			for k, v := range env {
				if hv, ok := host[k]; ok && hv == v && !slices.Contains(tt.allowed, k) {
					t.Errorf("host variable %s leaked into the plugin", k)
				}
			}
		})
	}
}
