package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// opsWords is a prompt of n words; the echo plugin streams one word per
// chunk.
func opsWords(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", i)
	}
	return strings.Join(w, " ")
}

// opsStream is the outcome of one streamed chat request.
type opsStream struct {
	text   string
	done   bool   // ended with data: [DONE]
	code   string // the code of a final error event
	err    error  // transport or protocol failure
	status int
}

// opsReadStream reads a streamed chat response to its end. started, when
// not nil, is called once the first chunk has arrived.
func opsReadStream(resp *http.Response, started func()) opsStream {
	defer resp.Body.Close()
	out := opsStream{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		out.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		return out
	}
	sse := &spineSSE{r: bufio.NewReader(resp.Body)}
	var text strings.Builder
	first := true
	for {
		data, err := sse.next()
		if err != nil {
			out.text, out.err = text.String(), fmt.Errorf("stream cut without [DONE] or an error event: %w", err)
			return out
		}
		if data == "[DONE]" {
			out.text, out.done = text.String(), true
			return out
		}
		var ev struct {
			Error   *spineError `json:"error"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			out.err = fmt.Errorf("bad event %q: %w", data, err)
			return out
		}
		if ev.Error != nil {
			out.text = text.String()
			if ev.Error.Code != nil {
				out.code = *ev.Error.Code
			}
			// The error event is the last one.
			if rest, _ := io.ReadAll(resp.Body); strings.TrimSpace(string(rest)) != "" {
				out.err = fmt.Errorf("data after the error event: %q", rest)
			}
			return out
		}
		for _, c := range ev.Choices {
			text.WriteString(c.Delta.Content)
		}
		if first && started != nil {
			started()
		}
		first = false
	}
}

// opsPost sends a chat request with key.
func opsPost(ctx context.Context, url, key, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// TestShutdownWithOpenStreams sends SIGTERM while 50 streams are open:
// /readyz turns 503 at once; with a grace longer than the streams every
// one finishes whole, with a short one every one ends with an SSE error
// event saying the gateway shut down; either way the host exits 0 and
// leaves no plugin process behind.
func TestShutdownWithOpenStreams(t *testing.T) {
	const streams = 50
	const words = 40 // at 50ms per chunk, a 2 s stream
	tests := []struct {
		name  string
		grace string
		// cut: streams end with the shutdown error event, not [DONE].
		cut bool
	}{
		{name: "long grace", grace: "20s", cut: false},
		{name: "short grace", grace: "1s", cut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := harness.Start(t, harness.APIKeyBlock+spineSlowEchoBlock+`
provider "echo_two" {
  type = "echo"
}
`, harness.Options{WaitFor: []string{"echo", "echo_two"},
				Server: fmt.Sprintf("  shutdown_grace = %q\n  drain_delay = \"300ms\"", tt.grace)})
			procs := h.PluginProcs(t)
			if len(procs) != 2 {
				t.Fatalf("want 2 plugin processes, got %v", procs)
			}
			var started sync.WaitGroup
			started.Add(streams)
			results := make([]opsStream, streams)
			var wg sync.WaitGroup
			body := spineChatBody("echo", opsWords(words), true)
			for i := range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					once := sync.OnceFunc(started.Done)
					defer once()
					resp, err := opsPost(context.Background(), h.URL, harness.Key, body)
					if err != nil {
						results[i] = opsStream{err: err}
						return
					}
					results[i] = opsReadStream(resp, once)
				}()
			}
			started.Wait()
			begin := time.Now()
			if err := h.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// During drain_delay the listener is still open and /readyz
			// says the host is going away.
			time.Sleep(50 * time.Millisecond)
			code, _, rb := h.Do(t, "GET", "/readyz", "")
			if code != http.StatusServiceUnavailable || !strings.Contains(string(rb), `"draining"`) {
				t.Errorf("/readyz after SIGTERM: %d %s; want 503 draining", code, rb)
			}
			// After drain_delay the listener is closed: no new request is
			// taken while the open streams go on.
			time.Sleep(400 * time.Millisecond)
			if resp, err := opsPost(context.Background(), h.URL, harness.Key, spineChatBody("echo", "late", false)); err == nil {
				resp.Body.Close()
				t.Errorf("a new request after drain_delay was answered %d; want the connection refused", resp.StatusCode)
			}
			wg.Wait()
			took := time.Since(begin)
			if exit := h.ExitCode(t, 30*time.Second); exit != 0 {
				t.Errorf("exit code %d, want 0", exit)
			}
			want := "You said: " + opsWords(words)
			var whole, cutOff int
			for i, r := range results {
				switch {
				case r.err != nil:
					t.Errorf("stream %d: %v", i, r.err)
				case r.done:
					whole++
					if strings.Join(strings.Fields(r.text), " ") != want {
						t.Errorf("stream %d finished with %q, want %q", i, r.text, want)
					}
				case r.code == "server_shutting_down":
					cutOff++
				default:
					t.Errorf("stream %d ended with error code %q", i, r.code)
				}
			}
			t.Logf("grace %s: %d streams finished, %d cut with an error event, %v from SIGTERM to the last stream's end", tt.grace, whole, cutOff, took)
			if tt.cut && cutOff != streams {
				t.Errorf("%d of %d streams ended with the shutdown error event, want all", cutOff, streams)
			}
			if !tt.cut && whole != streams {
				t.Errorf("%d of %d streams finished, want all", whole, streams)
			}
			var list []harness.Proc
			for _, p := range procs {
				list = append(list, p)
			}
			for _, p := range harness.WaitGone(list, 5*time.Second) {
				t.Errorf("plugin pid %d (%s) outlived the host", p.PID, p.Comm)
			}
			for _, p := range list {
				if st, err := harness.ReadProcStat(p.PID); err == nil && st.Start == p.Start && st.PPID == os.Getpid() {
					t.Errorf("plugin pid %d was reparented to the test process", p.PID)
				}
			}
		})
	}
}

// opsReload is the reload part of /readyz.
type opsReload struct {
	OK           bool   `json:"ok"`
	Reloads      int    `json:"reloads"`
	Failures     int    `json:"failures"`
	ConfigSHA256 string `json:"config_sha256"`
	Error        string `json:"error"`
	Plugins      []struct {
		Instance, Path, Version, SHA256 string
	} `json:"plugins"`
}

func opsReadReload(h *harness.Host) (opsReload, error) {
	req, _ := http.NewRequest("GET", h.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+harness.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return opsReload{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Reload *opsReload `json:"reload"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return opsReload{}, err
	}
	if body.Reload == nil {
		return opsReload{}, fmt.Errorf("/readyz has no reload field")
	}
	return *body.Reload, nil
}

// opsConfig is one configuration of the reload test.
type opsConfig struct {
	name string
	// two adds the echo_two instance with the given chunk delay.
	two string
	// route is the instance the "echo" model goes to.
	route string
	// rotated is the value of the rotating key.
	rotated string
	// broken makes the config invalid (an echo config attribute that
	// is not a duration).
	broken bool
}

func (c opsConfig) hcl(h *harness.Host) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server {\n  listen = %q\n  plugins_dir = %q\n  shutdown_grace = \"10s\"\n}\nlogging {\n  level = \"debug\"\n}\n", h.Addr, h.PluginsDir)
	b.WriteString(harness.APIKeyBlock)
	fmt.Fprintf(&b, "api_key \"rotating\" {\n  key = %q\n  models = [\"*\"]\n}\n", c.rotated)
	attr := "chunk_delay"
	if c.broken {
		attr = "chunk_dleay" // not in the echo plugin's schema
	}
	fmt.Fprintf(&b, "provider \"echo\" {\n  type = \"echo\"\n  config {\n    %s = \"5ms\"\n  }\n}\n", attr)
	if c.two != "" {
		fmt.Fprintf(&b, "provider \"echo_two\" {\n  type = \"echo\"\n  config {\n    chunk_delay = %q\n  }\n}\n", c.two)
	}
	fmt.Fprintf(&b, "route \"echo\" {\n  target %q {}\n}\n", c.route)
	return b.String()
}

// TestReloadUnderLoad reloads the configuration 20 times while clients
// send JSON and streamed requests without pause: instances are added,
// changed and removed, the route moves between them, a key rotates, and
// every fifth config is broken. No request may fail and no stream may be
// cut; the unchanged instance keeps its process; removed instances'
// processes end; broken configs are refused with their diagnostics and
// leave the running one in place.
func TestReloadUnderLoad(t *testing.T) {
	base := opsConfig{name: "start", route: "echo", rotated: "sk-rot-0"}
	h := harness.Start(t, "", harness.Options{WaitFor: nil})
	// The harness wrote its own config; serve ours from the start.
	if err := os.WriteFile(h.ConfigPath, []byte(base.hcl(h)), 0o600); err != nil {
		t.Fatal(err)
	}
	opsSignalReload(t, h, 1, true)
	h.WaitInstance(t, "echo", "ready", 30*time.Second)
	echoPID := h.PluginProcs(t)["echo"].PID

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg                     sync.WaitGroup
		jsonOK, streamOK, fail atomic.Int64
		open, spanning         atomic.Int64 // streams open now, and open at a reload
		failures               sync.Map
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := w%2 == 1
			for i := 0; ctx.Err() == nil; i++ {
				text := opsWords(8)
				resp, err := opsPost(context.Background(), h.URL, harness.Key, spineChatBody("echo", text, stream))
				if err != nil {
					fail.Add(1)
					failures.Store(fmt.Sprintf("w%d/%d", w, i), err.Error())
					continue
				}
				if stream {
					open.Add(1)
					r := opsReadStream(resp, nil)
					open.Add(-1)
					if r.err != nil || !r.done || !strings.Contains(strings.Join(strings.Fields(r.text), " "), text) {
						fail.Add(1)
						failures.Store(fmt.Sprintf("w%d/%d", w, i), fmt.Sprintf("%+v", r))
						continue
					}
					streamOK.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), text) {
					fail.Add(1)
					failures.Store(fmt.Sprintf("w%d/%d", w, i), fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				jsonOK.Add(1)
			}
		}()
	}

	steps := []opsConfig{}
	for round := range 4 {
		rot := func(n int) string { return fmt.Sprintf("sk-rot-%d-%d", round, n) }
		steps = append(steps,
			// echo_two streams slowly (8 words, 30 or 20 ms apart), so
			// that changing and removing it catches streams midway.
			opsConfig{name: "add echo_two", two: "30ms", route: "echo", rotated: rot(1)},
			opsConfig{name: "route to echo_two", two: "30ms", route: "echo_two", rotated: rot(2)},
			opsConfig{name: "change echo_two", two: "20ms", route: "echo_two", rotated: rot(3)},
			opsConfig{name: "broken", two: "20ms", route: "echo_two", rotated: rot(3), broken: true},
			opsConfig{name: "remove echo_two", route: "echo", rotated: rot(4)},
		)
	}
	applied, prevKey := 1, base.rotated
	var twoProcs []harness.Proc
	for i, c := range steps {
		time.Sleep(150 * time.Millisecond) // let requests run under each config
		if c.name == "remove echo_two" || c.name == "change echo_two" {
			if p, ok := h.PluginProcs(t)["echo_two"]; ok {
				twoProcs = append(twoProcs, p)
			}
		}
		if err := os.WriteFile(h.ConfigPath, []byte(c.hcl(h)), 0o600); err != nil {
			t.Fatal(err)
		}
		spanning.Add(open.Load())
		if c.broken {
			st := opsSignalReload(t, h, applied, false)
			if st.OK || !strings.Contains(st.Error, "chunk_dleay") {
				t.Errorf("step %d (%s): reload status %+v; want refused with the chunk_dleay diagnostic", i, c.name, st)
			}
			if !h.WaitLog("chunk_dleay", 5*time.Second) {
				t.Errorf("step %d: the host did not log the diagnostic of the broken config", i)
			}
			if got := opsMetric(t, h, "llmproxy_config_last_reload_successful"); got != "0" {
				t.Errorf("step %d: llmproxy_config_last_reload_successful = %q after a refused reload, want 0", i, got)
			}
			// The running config still serves the key the broken one
			// would have kept too.
			continue
		}
		applied++
		st := opsSignalReload(t, h, applied, true)
		if !st.OK {
			t.Fatalf("step %d (%s): reload refused: %s", i, c.name, st.Error)
		}
		// The rotated key works at once and the previous one no longer.
		if code := opsStatus(h, c.rotated); code != http.StatusOK {
			t.Errorf("step %d (%s): new key answered %d", i, c.name, code)
		}
		if prevKey != c.rotated {
			if code := opsStatus(h, prevKey); code != http.StatusUnauthorized {
				t.Errorf("step %d (%s): the rotated-out key answered %d, want 401", i, c.name, code)
			}
		}
		prevKey = c.rotated
	}
	stop()
	wg.Wait()

	if p := h.PluginProcs(t)["echo"]; p.PID != echoPID {
		t.Errorf("the unchanged echo instance was restarted: pid %d, then %d", echoPID, p.PID)
	}
	if alive := harness.WaitGone(twoProcs, 15*time.Second); len(alive) > 0 {
		t.Errorf("%d plugin processes of changed or removed instances still run: %+v", len(alive), alive)
	}
	if _, ok := spineInstances(t, h)["echo_two"]; ok {
		t.Errorf("echo_two is still listed after its removal")
	}
	t.Logf("20 reloads (%d applied, 4 refused): %d JSON and %d streamed requests served, %d failed; %d streams open across reloads; %d echo_two processes retired",
		applied-1, jsonOK.Load(), streamOK.Load(), fail.Load(), spanning.Load(), len(twoProcs))
	if spanning.Load() == 0 {
		t.Errorf("no stream was open during a reload; the test proves nothing about cut streams")
	}
	failures.Range(func(k, v any) bool {
		t.Errorf("request %s failed: %s", k, v)
		return true
	})
	if jsonOK.Load() == 0 || streamOK.Load() == 0 {
		t.Errorf("the client loop served nothing")
	}
}

// opsSignalReload sends SIGHUP and waits until /readyz counts the reload
// as applied (applied reloads in all) or refused.
func opsSignalReload(t *testing.T, h *harness.Host, applied int, ok bool) opsReload {
	t.Helper()
	before, err := opsReadReload(h)
	if err != nil {
		t.Fatalf("read /readyz: %v", err)
	}
	if err := h.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := opsReadReload(h)
		if err == nil && (st.Reloads+st.Failures > before.Reloads+before.Failures) {
			if ok && st.Reloads != applied-1 && !st.OK {
				t.Fatalf("reload refused: %s", st.Error)
			}
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the reload did not finish within 60s\n%s", h.Logs())
	return opsReload{}
}

// opsStatus sends a chat request with key and returns the status.
func opsStatus(h *harness.Host, key string) int {
	resp, err := opsPost(context.Background(), h.URL, key, spineChatBody("echo", "hi", false))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// opsMetric returns the value of an unlabelled metric on /metrics.
func opsMetric(t *testing.T, h *harness.Host, name string) string {
	t.Helper()
	_, _, b := h.Do(t, "GET", "/metrics", "")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestReloadOnFileChangeAndNewPluginBinary runs the host with -watch: an
// edit of the config file is applied without a signal, and a plugin
// binary replaced in the plugins directory is picked up by the next
// reload, which restarts the instances running it and shows the new
// checksum in /readyz.
func TestReloadOnFileChangeAndNewPluginBinary(t *testing.T) {
	bin := harness.BinDir(t)
	plugins := t.TempDir()
	echo := filepath.Join(plugins, "llmproxy-provider-echo")
	orig, err := os.ReadFile(filepath.Join(bin, "plugins", "llmproxy-provider-echo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(echo, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := harness.FreeAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "llmproxy.hcl")
	write := func(routes string) {
		cfg := fmt.Sprintf("server {\n  listen = %q\n  plugins_dir = %q\n}\n%sprovider \"echo\" {\n  type = \"echo\"\n}\n%s",
			addr, plugins, harness.APIKeyBlock, routes)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("route \"echo\" {\n  target \"echo\" {}\n}\n")
	h := &harness.Host{URL: "http://" + addr, Addr: addr, ConfigPath: path, PluginsDir: plugins}
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-config", path, "-watch", "100ms")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Stdout, cmd.Stderr = h, h
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.Cmd = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("llmproxy log:\n%s", h.Logs())
		}
	})
	first := h.WaitInstance(t, "echo", "ready", 30*time.Second)
	firstProc, err := harness.LookupProc(first.PID)
	if err != nil {
		t.Fatal(err)
	}
	if code := opsModelStatus(h, "echo-too"); code != http.StatusNotFound {
		t.Fatalf("echo-too before the edit: %d, want 404", code)
	}

	// An edit of the file, no signal.
	write("route \"echo\" {\n  target \"echo\" {}\n}\nroute \"echo-too\" {\n  target \"echo\" {}\n}\n")
	deadline := time.Now().Add(10 * time.Second)
	for opsModelStatus(h, "echo-too") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the edited config was not applied within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := h.WaitInstance(t, "echo", "ready", time.Second); st.PID != first.PID {
		t.Errorf("a route change restarted the unchanged echo instance (pid %d, then %d)", first.PID, st.PID)
	}
	before, err := opsReadReload(h)
	if err != nil {
		t.Fatal(err)
	}

	// A new build of the plugin (here: the same program with a different
	// checksum), then a reload.
	if err := os.WriteFile(echo+".new", append(orig, []byte("\x00rebuilt")...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(echo+".new", echo); err != nil {
		t.Fatal(err)
	}
	st := opsSignalReload(t, h, before.Reloads+1, true)
	if !st.OK {
		t.Fatalf("reload refused: %s", st.Error)
	}
	var sum string
	for _, p := range st.Plugins {
		if p.Instance == "echo" {
			sum = p.SHA256
		}
	}
	if sum == "" || sum == opsSum(before, "echo") {
		t.Errorf("/readyz plugin checksum of echo %q, before %q: want the new binary's", sum, opsSum(before, "echo"))
	}
	next := h.WaitInstance(t, "echo", "ready", 30*time.Second)
	if next.PID == first.PID {
		t.Errorf("the echo instance still runs the old binary (pid %d)", first.PID)
	}
	if alive := harness.WaitGone([]harness.Proc{firstProc}, 10*time.Second); len(alive) > 0 {
		t.Errorf("the old echo process %d still runs", first.PID)
	}
	if code := opsModelStatus(h, "echo"); code != http.StatusOK {
		t.Errorf("echo after the new binary: %d", code)
	}
}

func opsSum(r opsReload, instance string) string {
	for _, p := range r.Plugins {
		if p.Instance == instance {
			return p.SHA256
		}
	}
	return ""
}

// opsModelStatus sends a chat request for model with the harness key.
func opsModelStatus(h *harness.Host, model string) int {
	resp, err := opsPost(context.Background(), h.URL, harness.Key, spineChatBody(model, "hi", false))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
