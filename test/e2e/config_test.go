package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// spineCheckPointsAt asserts that out locates a problem at file:line:column
// and shows the offending source line as a snippet.
func spineCheckPointsAt(t *testing.T, out, file string, line, col int, snippet string) {
	t.Helper()
	if !strings.Contains(out, file) {
		t.Errorf("the message does not name the file %s:\n%s", file, out)
	}
	pos := regexp.MustCompile(regexp.QuoteMeta(file) + fmt.Sprintf(`:%d:%d\b`, line, col))
	if !pos.MatchString(out) {
		t.Errorf("the message does not point at %s:%d:%d:\n%s", file, line, col, spineExcerpt(out, snippet))
	}
	if !strings.Contains(out, snippet) {
		t.Errorf("the message does not show the snippet %q:\n%s", snippet, out)
	}
}

// spineExcerpt returns the lines of out around the first one holding needle,
// or all of out when no line does, to keep failure messages readable.
func spineExcerpt(out, needle string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, needle) {
			return strings.Join(lines[max(0, i-6):min(len(lines), i+6)], "\n")
		}
	}
	return out
}

// spineLineOf returns the 1-based line and column at which needle first occurs
// in the file at path.
func spineLineOf(t *testing.T, path, needle string) (int, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if c := strings.Index(l, needle); c >= 0 {
			return i + 1, c + 1
		}
	}
	t.Fatalf("%q is not in %s", needle, path)
	return 0, 0
}

// TestConfigErrors runs `llmproxy -config bad.hcl` on broken configs: the
// host must refuse to start, exit non-zero and say where the mistake is.
func TestConfigErrors(t *testing.T) {
	const unset = "LLMPROXY_E2E_SURELY_UNSET_VAR"
	if _, ok := os.LookupEnv(unset); ok {
		t.Fatalf("%s must not be set in the test environment", unset)
	}
	tests := []struct {
		name string
		hcl  string
		// line and col locate the mistake; snippet is the source shown.
		line, col int
		snippet   string
		// explain are substrings of the explanation.
		explain []string
	}{
		{
			name: "syntax error",
			hcl:  "server {\n  listen = \"127.0.0.1:0\"\n}\n\nprovider \"echo\" {\n  type = \"echo\"\n  config {\n    prefix = \n  }\n}\n",
			line: 8, col: 14,
			snippet: "prefix =",
			explain: []string{"expression"},
		},
		{
			name: "unclosed block",
			hcl:  "server {\n  listen = \"127.0.0.1:0\"\n\nroute \"echo\" {\n  target \"echo\" {}\n}\n",
			line: 1, col: 8,
			snippet: "server {",
			explain: []string{"closing brace"},
		},
		{
			name: "unknown attribute",
			hcl:  "server {\n  listen = \"127.0.0.1:0\"\n  listn  = \"127.0.0.1:9\"\n}\n",
			line: 3, col: 3,
			snippet: `listn  = "127.0.0.1:9"`,
			explain: []string{"listn", "not expected"},
		},
		{
			name: "unknown block",
			hcl:  "server {\n  listen = \"127.0.0.1:0\"\n}\n\nprovidr \"echo\" {\n  type = \"echo\"\n}\n",
			line: 5, col: 1,
			snippet: `providr "echo" {`,
			explain: []string{"providr"},
		},
		{
			name: "unset environment variable",
			hcl:  "server {\n  listen = \"127.0.0.1:0\"\n}\n\napi_key \"ci\" {\n  key    = env(\"" + unset + "\")\n  models = [\"*\"]\n}\n",
			line: 6, col: 17,
			snippet: `key    = env("` + unset + `")`,
			explain: []string{unset, "not set", `env("` + unset + `", `},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bad.hcl")
			if err := os.WriteFile(path, []byte(tt.hcl), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"-config", path}, {"-check", "-config", path}} {
				res := harness.RunLLMProxy(t, dir, nil, args...)
				if res.Code == 0 {
					t.Fatalf("llmproxy %v exited 0 on a broken config:\n%s", args, res.Stderr)
				}
				if res.Stdout != "" {
					t.Errorf("llmproxy %v wrote to stdout: %q", args, res.Stdout)
				}
				spineCheckPointsAt(t, res.Stderr, path, tt.line, tt.col, tt.snippet)
				for _, s := range tt.explain {
					if !strings.Contains(res.Stderr, s) {
						t.Errorf("llmproxy %v: the message lacks %q:\n%s", args, s, res.Stderr)
					}
				}
			}
		})
	}
}

// TestCheckDefaultConfig validates the embedded default config with
// -check, as printed by -print-default-config and as a file.
func TestCheckDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	noConfig := []string{"LLMPROXY_CONFIG="}
	res := harness.RunLLMProxy(t, dir, noConfig, "-check")
	if res.Code != 0 || !strings.Contains(res.Stderr, "config is valid") {
		t.Fatalf("llmproxy -check on the embedded default: exit %d\n%s", res.Code, res.Stderr)
	}
	printed := harness.RunLLMProxy(t, dir, noConfig, "-print-default-config")
	if printed.Code != 0 || !strings.Contains(printed.Stdout, `provider "echo"`) {
		t.Fatalf("llmproxy -print-default-config: exit %d, stdout %q\n%s", printed.Code, printed.Stdout, printed.Stderr)
	}
	path := filepath.Join(dir, "default.hcl")
	if err := os.WriteFile(path, []byte(printed.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := harness.RunLLMProxy(t, dir, nil, "-check", "-config", path); res.Code != 0 {
		t.Fatalf("llmproxy -check -config <printed default>: exit %d\n%s", res.Code, res.Stderr)
	}
}

// TestPluginConfigValidation gives the echo plugin a config it rejects:
// the host keeps serving its other instances, reports the instance as
// failed with the plugin's reason, and logs where in the file the bad
// attribute is.
func TestPluginConfigValidation(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+`
provider "echo" {
  type = "echo"
  config {
    chunk_delay = "soon"
  }
}
route "echo" {
  target "echo" {}
}
provider "echo_ok" {
  type = "echo"
}
route "echo-ok" {
  target "echo_ok" {}
}
`, harness.Options{WaitFor: []string{"echo_ok"}})
	st := h.WaitInstance(t, "echo", "failed", 15*time.Second)
	for _, s := range []string{"chunk_delay", `"soon"`} {
		if !strings.Contains(st.Reason, s) {
			t.Errorf("the failed instance's reason %q lacks %s", st.Reason, s)
		}
	}
	line, col := spineLineOf(t, h.ConfigPath, "chunk_delay")
	// The log is structured: the quoted source line appears escaped.
	const logged = `source="chunk_delay = \"soon\""`
	spineWaitFor(t, "the diagnostic in the log", func() bool { return strings.Contains(h.Logs(), logged) })
	spineCheckPointsAt(t, h.Logs(), h.ConfigPath, line, col, logged)

	status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("echo", "hi", false))
	if status != http.StatusServiceUnavailable {
		t.Errorf("model echo of the failed instance: %d %s; want 503", status, body)
	} else if e := spineParseError(t, body); !strings.Contains(e.Message, "chunk_delay") {
		t.Errorf("the 503 does not say why the instance is down: %s", body)
	}
	if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("echo-ok", "hi", false)); status != http.StatusOK {
		t.Errorf("the healthy instance does not serve: %d %s", status, body)
	}
}

// TestPluginChecksumPin pins the echo plugin binary to a SHA-256: a wrong
// pin fails that plugin's instances with a reason that says how to fix it
// while other plugins serve, and the right pin lets it run.
func TestPluginChecksumPin(t *testing.T) {
	bin := filepath.Join(harness.BinDir(t), "plugins", "llmproxy-provider-echo")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("read the echo plugin: %v", err)
	}
	sum := sha256.Sum256(b)
	right := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)

	tests := []struct {
		name  string
		pin   string
		state string
		// reason holds substrings of the failed instance's reason.
		reason []string
	}{
		{name: "right checksum", pin: right, state: "ready"},
		{name: "right checksum in upper case", pin: strings.ToUpper(right), state: "ready"},
		{name: "wrong checksum", pin: wrong, state: "failed",
			reason: []string{"sha256", right, wrong, `plugin "provider-echo"`, "sha256 ="}},
		{name: "malformed checksum", pin: "abc123", state: "failed",
			reason: []string{"sha256", "64 hex digits", "provider-echo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := spineFake(t)
			h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+spineOpenAIBlock("openai_prod", fake, true)+
				fmt.Sprintf("plugin \"provider-echo\" {\n  sha256 = %q\n}\n", tt.pin),
				harness.Options{WaitFor: []string{"openai_prod"}})
			st := h.WaitInstance(t, "echo", tt.state, 15*time.Second)
			for _, s := range tt.reason {
				if !strings.Contains(st.Reason, s) {
					t.Errorf("reason %q lacks %q", st.Reason, s)
				}
			}
			if tt.state == "failed" && st.PID != 0 {
				t.Errorf("a refused plugin has pid %d", st.PID)
			}
			wantEcho := http.StatusOK
			if tt.state != "ready" {
				wantEcho = http.StatusServiceUnavailable
			}
			if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("echo", "pinned?", false)); status != wantEcho {
				t.Errorf("model echo: %d %s; want %d", status, body, wantEcho)
			}
			if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "unpinned", false)); status != http.StatusOK {
				t.Errorf("the openai instance does not serve beside the pinned plugin: %d %s", status, body)
			}
		})
	}
}
