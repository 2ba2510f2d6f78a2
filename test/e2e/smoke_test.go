package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// startDefault runs the host as `make run` does, on the embedded default
// config, with its listen address and data dir moved into the test's
// reach, and returns its URL.
func startDefault(t *testing.T) string {
	t.Helper()
	bin := harness.BinDir(t)
	addr := harness.FreeAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "llmproxy"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LLMPROXY_LISTEN="+addr, "LLMPROXY_DATA_DIR="+filepath.Join(dir, "objects"), "TMPDIR="+dir)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("llmproxy log:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the host on the embedded default config was not ready within 30s")
	return ""
}

// TestSmokeScript runs scripts/smoke-test.sh against the host serving
// the embedded default config (as `make run` does): every check passes
// with the dev key, and the script fails, naming the check, with a wrong
// key or a bucket the key may not use.
func TestSmokeScript(t *testing.T) {
	url := startDefault(t)
	script, err := filepath.Abs("../../scripts/smoke-test.sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		ok   bool
		want string
	}{
		{name: "dev key", ok: true, want: "smoke test: 6 passed, 0 failed"},
		{name: "wrong key", env: []string{"LLMPROXY_API_KEY=sk-wrong"}, want: "FAIL models: GET /v1/models answered 401"},
		{name: "bucket not allowed", env: []string{"SMOKE_BUCKET=elsewhere"}, want: "FAIL storage: put answered 403"},
		{name: "unknown model", env: []string{"SMOKE_MODEL=no-such-model"}, want: "FAIL models: no-such-model is not listed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("bash", script, url)
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.ok || !strings.Contains(string(out), tt.want) {
				t.Errorf("smoke-test.sh (err %v), want ok=%v and %q:\n%s", err, tt.ok, tt.want, out)
			}
		})
	}
}
