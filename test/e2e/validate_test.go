package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// TestValidateChecksPluginSchemasAndCredentials runs `llmproxy validate`
// (and its older name, -check) on configs whose host-level syntax is
// fine but which a plugin would refuse at start: each problem is reported
// at file:line:column with the offending line, and the exit code is 1.
func TestValidateChecksPluginSchemasAndCredentials(t *testing.T) {
	tests := []struct {
		name    string
		hcl     string
		at      string // the text the diagnostic points at
		explain []string
	}{
		{
			name: "unknown argument",
			hcl: `provider "openai_prod" {
  type = "openai"
  credential "api_key" {
    from "env" { name = "OPENAI_API_KEY" }
  }
  config {
    base_url = "https://api.openai.com/v1"
    colour   = "red"
  }
}
`,
			at:      `colour   = "red"`,
			explain: []string{"Unsupported argument", `"colour"`},
		},
		{
			name: "type error",
			hcl: `provider "claude" {
  type = "anthropic"
  credential "api_key" {
    from "env" { name = "ANTHROPIC_API_KEY" }
  }
  config {
    default_max_tokens = "lots"
  }
}
`,
			at:      `"lots"`,
			explain: []string{"Incorrect attribute value type", "a number is required"},
		},
		{
			name: "missing credential",
			hcl: `provider "claude" {
  type = "anthropic"
}

route "claude-*" {
  target "claude" {}
}
`,
			at:      `provider "claude" {`,
			explain: []string{`credential "api_key" has no source`, "plugin anthropic requires"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "llmproxy.hcl")
			if err := os.WriteFile(path, []byte(tt.hcl), 0o600); err != nil {
				t.Fatal(err)
			}
			line, col := spineLineOf(t, path, tt.at)
			for _, args := range [][]string{{"validate", "-config", path}, {"-check", "-config", path}} {
				res := harness.RunLLMProxy(t, dir, nil, args...)
				if res.Code != 1 {
					t.Fatalf("llmproxy %v: exit %d, want 1\n%s", args, res.Code, res.Stderr)
				}
				spineCheckPointsAt(t, res.Stderr, path, line, col, tt.at)
				for _, s := range tt.explain {
					if !strings.Contains(res.Stderr, s) {
						t.Errorf("llmproxy %v: the message lacks %q:\n%s", args, s, res.Stderr)
					}
				}
				if strings.Contains(res.Stderr, "config is valid") {
					t.Errorf("llmproxy %v calls a broken config valid:\n%s", args, res.Stderr)
				}
			}
		})
	}
}

// TestValidateWarnsAboutAbsentSecrets accepts a config whose credential
// is declared but has no value in this environment: the host would start
// without that instance, so validate warns, naming the source, and exits
// 0. The secret's variable is set for a second run, which is silent.
func TestValidateWarnsAboutAbsentSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "llmproxy.hcl")
	const variable = "LLMPROXY_E2E_VALIDATE_KEY"
	src := `provider "openai_prod" {
  type = "openai"
  credential "api_key" {
    from "env" { name = "` + variable + `" }
  }
}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	res := harness.RunLLMProxy(t, dir, []string{variable + "="}, "validate", "-config", path)
	if res.Code != 0 || !strings.Contains(res.Stderr, "config is valid") {
		t.Fatalf("exit %d:\n%s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "Warning") || !strings.Contains(res.Stderr, "env "+variable) {
		t.Errorf("no warning naming the unset variable:\n%s", res.Stderr)
	}
	res = harness.RunLLMProxy(t, dir, []string{variable + "=sk-secret-value"}, "validate", "-config", path)
	if res.Code != 0 || strings.Contains(res.Stderr, "Warning") {
		t.Errorf("with the variable set: exit %d:\n%s", res.Code, res.Stderr)
	}
	if strings.Contains(res.Stderr, "sk-secret-value") {
		t.Errorf("validate printed the secret:\n%s", res.Stderr)
	}
}

// TestValidateRequirePlugins: a plugin binary that is not installed is a
// warning (the host starts without that instance) unless
// -require-plugins makes it an error.
func TestValidateRequirePlugins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "llmproxy.hcl")
	if err := os.WriteFile(path, []byte("provider \"x\" {\n  type = \"nosuchprovider\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := harness.RunLLMProxy(t, dir, nil, "validate", "-config", path)
	if res.Code != 0 || !strings.Contains(res.Stderr, "llmproxy-provider-nosuchprovider not found") {
		t.Errorf("without -require-plugins: exit %d:\n%s", res.Code, res.Stderr)
	}
	res = harness.RunLLMProxy(t, dir, nil, "validate", "-require-plugins", "-config", path)
	if res.Code != 1 {
		t.Errorf("with -require-plugins: exit %d, want 1:\n%s", res.Code, res.Stderr)
	}
	spineCheckPointsAt(t, res.Stderr, path, 1, 1, `provider "x" {`)
}

// TestPluginsDirPaths: -plugins-dir on the command line is relative to
// the working directory, plugins_dir in the file relative to the file.
func TestPluginsDirPaths(t *testing.T) {
	bin := harness.BinDir(t)
	work := t.TempDir()
	// The working directory holds ./plugins, a link to the built plugins;
	// the config lives elsewhere, where no ./plugins exists.
	if err := os.Symlink(filepath.Join(bin, "plugins"), filepath.Join(work, "plugins")); err != nil {
		t.Fatal(err)
	}
	etc := t.TempDir()
	cfg := filepath.Join(etc, "llmproxy.hcl")
	src := "provider \"echo\" {\n  type = \"echo\"\n}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	res := harness.RunLLMProxy(t, work, nil, "validate", "-require-plugins", "-config", cfg, "-plugins-dir", "plugins")
	if res.Code != 0 {
		t.Errorf("-plugins-dir plugins from %s: exit %d:\n%s", work, res.Code, res.Stderr)
	}
	res = harness.RunLLMProxy(t, etc, nil, "validate", "-require-plugins", "-config", cfg, "-plugins-dir", "plugins")
	if res.Code != 1 || !strings.Contains(res.Stderr, filepath.Join(etc, "plugins")) {
		t.Errorf("-plugins-dir plugins from %s, where there is none: exit %d:\n%s", etc, res.Code, res.Stderr)
	}

	// In the file, the same relative path is relative to the file.
	inFile := "server {\n  plugins_dir = \"plugins\"\n}\n" + src
	if err := os.WriteFile(cfg, []byte(inFile), 0o600); err != nil {
		t.Fatal(err)
	}
	res = harness.RunLLMProxy(t, work, nil, "validate", "-require-plugins", "-config", cfg)
	if res.Code != 1 || !strings.Contains(res.Stderr, filepath.Join(etc, "plugins")) {
		t.Errorf("plugins_dir in %s, run from %s: exit %d, want a miss in %s:\n%s", cfg, work, res.Code, filepath.Join(etc, "plugins"), res.Stderr)
	}
	if err := os.Symlink(filepath.Join(bin, "plugins"), filepath.Join(etc, "plugins")); err != nil {
		t.Fatal(err)
	}
	res = harness.RunLLMProxy(t, t.TempDir(), nil, "validate", "-require-plugins", "-config", cfg)
	if res.Code != 0 {
		t.Errorf("plugins_dir beside the file: exit %d:\n%s", res.Code, res.Stderr)
	}
}

// TestMinimalConfigServesChat starts the host on a file holding one
// provider and one route and nothing else: no server block (plugins are
// found beside the binary), no api_key block (requests without a key are
// served, as the host listens on loopback only).
func TestMinimalConfigServesChat(t *testing.T) {
	bin := harness.BinDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "llmproxy.hcl")
	src := "provider \"echo\" {\n  type = \"echo\"\n}\n\nroute \"echo\" {\n  target \"echo\" {}\n}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := harness.FreeAddr(t)
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-config", cfg, "-listen", addr)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LLMPROXY_CONFIG=")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, _, err := harness.Launch(ctx, "llmproxy", filepath.Join(dir, "host.log"), cmd, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Stop(10 * time.Second)
	url := "http://" + addr
	// No key: the implicit local key of a config without api_key blocks,
	// which may see /readyz's details.
	if _, err := harness.WaitInstances(ctx, url, []string{"echo"}, host, 30*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"echo","messages":[{"role":"user","content":"hello there"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || out.Object != "chat.completion" || len(out.Choices) != 1 || !strings.Contains(out.Choices[0].Message.Content, "hello there") {
		t.Fatalf("status %d, %+v\nlog:\n%s", resp.StatusCode, out, host.LogTail())
	}
	// A key that is presented must still be a configured one.
	req, _ := http.NewRequest("GET", url+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sk-not-configured")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown key: status %d, want 401", r2.StatusCode)
	}
}

// TestNoKeyRefusesNonLoopback: without an api_key block the host refuses
// to listen beyond loopback, and validate says so, also when -listen
// names the address.
func TestNoKeyRefusesNonLoopback(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "llmproxy.hcl")
	src := "server {\n  listen = \"0.0.0.0:0\"\n}\nprovider \"echo\" {\n  type = \"echo\"\n}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"validate", "-config", cfg}, {"-config", cfg}, {"-check", "-config", cfg}} {
		res := harness.RunLLMProxy(t, dir, nil, args...)
		if res.Code == 0 || !strings.Contains(res.Stderr, "api_key") || !strings.Contains(res.Stderr, "loopback") {
			t.Errorf("llmproxy %v: exit %d:\n%s", args, res.Code, res.Stderr)
		}
	}
	loopback := filepath.Join(dir, "loopback.hcl")
	if err := os.WriteFile(loopback, []byte("provider \"echo\" {\n  type = \"echo\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := harness.RunLLMProxy(t, dir, nil, "validate", "-config", loopback); res.Code != 0 {
		t.Errorf("loopback by default: exit %d:\n%s", res.Code, res.Stderr)
	}
	if res := harness.RunLLMProxy(t, dir, nil, "validate", "-config", loopback, "-listen", "0.0.0.0:0"); res.Code != 1 {
		t.Errorf("-listen 0.0.0.0:0: exit %d, want 1:\n%s", res.Code, res.Stderr)
	}
}

// TestAbsentCredentialsLogAtInfo: an instance whose secret is simply not
// provided is logged at INFO with what would enable it, not as an error;
// a credential source that is broken (a directory where a file should be)
// is still an ERROR.
func TestAbsentCredentialsLogAtInfo(t *testing.T) {
	const variable = "LLMPROXY_E2E_ABSENT_KEY"
	broken := t.TempDir() // a directory: reading it as a file fails
	h := harness.Start(t, harness.APIKeyBlock+`
provider "echo" {
  type = "echo"
}
provider "claude" {
  type = "anthropic"
  credential "api_key" {
    from "env" { name = "`+variable+`" }
  }
}
provider "claude_broken" {
  type = "anthropic"
  credential "api_key" {
    from "file" { path = "`+broken+`" }
  }
}
`, harness.Options{Env: []string{variable + "="}, WaitFor: []string{"echo"}})
	h.WaitInstance(t, "claude", "failed", 10*time.Second)
	h.WaitInstance(t, "claude_broken", "failed", 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	var absentLine, brokenLine string
	for time.Now().Before(deadline) && (absentLine == "" || brokenLine == "") {
		for _, l := range strings.Split(h.Logs(), "\n") {
			switch {
			case strings.Contains(l, "plugin.claude:") && strings.Contains(l, "disabled"):
				absentLine = l
			case strings.Contains(l, "plugin.claude_broken:") && strings.Contains(l, "not ready"):
				brokenLine = l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(absentLine, "[INFO]") || !strings.Contains(absentLine, "disabled: set "+variable+" to enable") {
		t.Errorf("absent credential: log line %q, want an INFO line saying \"disabled: set %s to enable\"\n%s", absentLine, variable, h.Logs())
	}
	if !strings.Contains(brokenLine, "[ERROR]") {
		t.Errorf("broken credential source: log line %q, want an ERROR\n%s", brokenLine, h.Logs())
	}
	for _, l := range strings.Split(h.Logs(), "\n") {
		if strings.Contains(l, "plugin.claude:") && strings.Contains(l, "[ERROR]") {
			t.Errorf("absent credential logged as an error: %s", l)
		}
	}
}

// TestValidateChecksWhatTheHostBuilds: problems the host only finds when
// it builds its keys and storage rules (after the HCL decoded cleanly)
// fail validate too.
func TestValidateChecksWhatTheHostBuilds(t *testing.T) {
	tests := []struct{ name, hcl, want, at string }{
		{"two keys with one secret", `api_key "a" {
  key = "sk-same"
}
api_key "b" {
  key = "sk-same"
}
`, "same secret as another key", `api_key "b" {`},
		{"presign bounds", `storage "files" {
  type = "local"
  presign {
    min_ttl = "1h"
    max_ttl = "1m"
  }
  config {
    root = "objects"
  }
}
`, "presign bounds must satisfy", `storage "files" {`},
		{"telemetry protocol", `telemetry {
  endpoint = "localhost:4317"
  protocol = "udp"
}
`, `telemetry: protocol must be "grpc" or "http/protobuf"`, `telemetry {`},
		{"telemetry sample ratio", `telemetry {
  sample_ratio = 2
}
`, "sample_ratio must be between 0 and 1", `telemetry {`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "llmproxy.hcl")
			if err := os.WriteFile(path, []byte(tt.hcl), 0o600); err != nil {
				t.Fatal(err)
			}
			res := harness.RunLLMProxy(t, dir, nil, "validate", "-config", path)
			if res.Code != 1 || !strings.Contains(res.Stderr, tt.want) {
				t.Errorf("exit %d, want 1 and %q:\n%s", res.Code, tt.want, res.Stderr)
			}
			line, col := spineLineOf(t, path, tt.at)
			spineCheckPointsAt(t, res.Stderr, path, line, col, tt.at)
		})
	}
}
