// Package harness starts the real llmproxy binary, with the real plugin
// binaries, for end-to-end tests and benchmarks.
//
// The binaries come from `make build`: LLMPROXY_BIN names the directory
// holding llmproxy and plugins/ (default: ../bin relative to the test
// module). A test describes the gateway in HCL; the harness fills in the
// listen address and plugins dir, starts the process, waits until the
// instances it names are ready, and stops it when the test ends.
package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Key is the API key every harness config accepts.
const Key = "sk-e2e-test-key"

// BinDir returns the directory holding the built binaries.
func BinDir(t testing.TB) string {
	dir := os.Getenv("LLMPROXY_BIN")
	if dir == "" {
		dir = "../bin"
		if _, err := os.Stat(dir); err != nil {
			dir = "../../bin"
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("bin dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(abs, "llmproxy")); err != nil {
		t.Fatalf("llmproxy binary not found in %s: run `make build` first (or set LLMPROXY_BIN)", abs)
	}
	return abs
}

// Host is a running llmproxy process.
type Host struct {
	URL  string
	Addr string
	Cmd  *exec.Cmd
	// ConfigPath is the config file the host was started with.
	ConfigPath string
	PluginsDir string

	mu     sync.Mutex
	logs   bytes.Buffer
	exited chan struct{}
}

// Logs returns what the host has logged so far.
func (h *Host) Logs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.String()
}

// WaitLog reports whether the host's log contains substr within the
// given time. A line the host has written may not be in Logs yet: the
// host's output reaches the test through a pipe that a goroutine of this
// process copies, so a check right after the event it logs must wait.
func (h *Host) WaitLog(substr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if strings.Contains(h.Logs(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *Host) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.Write(p)
}

// FreeAddr returns a free 127.0.0.1 address.
func FreeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Options tune Start.
type Options struct {
	// PluginsDir overrides the built plugins directory.
	PluginsDir string
	// Env is extra environment for the host.
	Env []string
	// WaitFor names instances that must be ready before Start returns.
	WaitFor []string
	// Server is extra lines for the server block the harness writes, e.g.
	// `health_interval = "1s"`.
	Server string
}

// Start runs llmproxy with the given HCL config body (without a server
// block, which the harness writes) and stops it when the test ends.
func Start(t testing.TB, hcl string, opts Options) *Host {
	t.Helper()
	bin := BinDir(t)
	addr := FreeAddr(t)
	plugins := opts.PluginsDir
	if plugins == "" {
		plugins = filepath.Join(bin, "plugins")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("server {\n  listen = %q\n  plugins_dir = %q\n  max_body_bytes = 1048576\n%s\n}\nlogging {\n  level = \"debug\"\n  access_log = true\n}\n%s\n", addr, plugins, opts.Server, hcl)
	path := filepath.Join(dir, "llmproxy.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Host{URL: "http://" + addr, Addr: addr, ConfigPath: path, PluginsDir: plugins, exited: make(chan struct{})}
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-config", path)
	// Plugins put their data-path sockets under TMPDIR: a short private
	// one per host keeps socket paths short and leaves nothing behind,
	// even when a test kills the host outright.
	tmp, err := os.MkdirTemp("", "llmp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	cmd.Env = append(append(os.Environ(), "TMPDIR="+tmp), opts.Env...)
	cmd.Stdout, cmd.Stderr = h, h
	if err := cmd.Start(); err != nil {
		t.Fatalf("start llmproxy: %v", err)
	}
	h.Cmd = cmd
	go func() {
		cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			t.Logf("llmproxy log:\n%s", h.Logs())
		}
	})
	h.waitReady(t, opts.WaitFor)
	return h
}

// Stop sends SIGTERM and waits for the host to exit.
func (h *Host) Stop() {
	if h.Cmd.Process == nil {
		return
	}
	h.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		h.Cmd.Process.Kill()
		<-h.exited
	}
}

// Exited is closed when the host process ends.
func (h *Host) Exited() <-chan struct{} { return h.exited }

// InstanceStatus is one entry of /readyz.
type InstanceStatus struct {
	State    string `json:"state"`
	Reason   string `json:"reason"`
	PID      int    `json:"pid"`
	Restarts int    `json:"restarts"`
}

// Instances reads the instance details of /readyz as the harness key,
// which is an admin key.
func (h *Host) Instances() (map[string]InstanceStatus, error) {
	req, err := http.NewRequest("GET", h.URL+"/readyz", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Instances map[string]InstanceStatus `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body.Instances, nil
}

func (h *Host) waitReady(t testing.TB, names []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			t.Fatalf("llmproxy exited during start:\n%s", h.Logs())
		default:
		}
		st, err := h.Instances()
		if err == nil {
			ok := true
			for _, n := range names {
				if st[n].State != "ready" {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, _ := h.Instances()
	t.Fatalf("instances %v not ready after 30s: %+v\n%s", names, st, h.Logs())
}

// WaitInstance waits until instance reaches state, or fails the test.
func (h *Host) WaitInstance(t testing.TB, name, state string, within time.Duration) InstanceStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	var last InstanceStatus
	for time.Now().Before(deadline) {
		if st, err := h.Instances(); err == nil {
			last = st[name]
			if last.State == state {
				return last
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("instance %s did not reach %s within %v (last %+v)", name, state, within, last)
	return last
}

// Do sends a request with the harness key and returns status, headers and
// body.
func (h *Host) Do(t testing.TB, method, path, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+Key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// APIKeyBlock is the HCL of the harness key with full rights.
const APIKeyBlock = `
api_key "e2e" {
  key         = "` + Key + `"
  models      = ["*"]
  passthrough = ["*"]
  instances   = ["*"]
  storage_ops = ["*"]
  admin       = true
}
`

// EchoBlock is an echo instance and its routes.
const EchoBlock = `
provider "echo" {
  type = "echo"
}
route "echo" {
  target "echo" {}
}
route "echo-embed" {
  target "echo" {}
}
`
