package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/docs"
	"github.com/llmproxy/llmproxy/test/harness"
)

// repoRoot is the repository root, relative to this package.
const repoRoot = "../.."

// TestWritingAPluginTutorial follows docs/writing-a-plugin.md from an
// empty directory: every ```sh run``` block runs in order with bash, the
// ```sh serve``` block starts the host, and the two curl calls must come
// back with the upstream's answer, relayed by the plugin the tutorial
// scaffolded and built. Only the addresses change: the host's and the
// upstream's become free ports, the upstream the OpenAI fake.
func TestWritingAPluginTutorial(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the tutorial builds a plugin: the go command must be on PATH")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the tutorial chats with curl: it must be on PATH (make deps installs it)")
	}
	bin, err := filepath.Abs(harness.BinDir(t))
	if err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(src, "docs", "writing-a-plugin.md"))
	if err != nil {
		t.Fatal(err)
	}

	fake := openaifake.New(openaifake.Options{})
	fake.Start()
	t.Cleanup(fake.Close)
	addr := harness.FreeAddr(t)
	addresses := strings.NewReplacer("http://127.0.0.1:9000/v1", fake.URL()+"/v1", "127.0.0.1:8080", addr)

	work := t.TempDir()
	env := []string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"LLMPROXY_SRC=" + src,
		"GOWORK=off", // the new module stands alone, as it would outside this repository
		"LLMPROXY_CONFIG=",
	}
	for _, k := range []string{"HOME", "GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOFLAGS", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	var (
		host    *harness.Process
		outputs []string
		ran     int
	)
	for _, b := range docs.Blocks(md) {
		if b.Lang != "sh" {
			continue
		}
		script := addresses.Replace(b.Text)
		switch {
		case b.Has("run"):
			ran++
			if host == nil && strings.Contains(script, "curl") {
				t.Fatalf("line %d: a curl call before the host was started", b.Line)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
			cmd.Dir, cmd.Env = work, env
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("docs/writing-a-plugin.md:%d: %v\n%s\n--- output:\n%s", b.Line, err, script, out)
			}
			outputs = append(outputs, string(out))
		case b.Has("serve"):
			if host != nil {
				t.Fatalf("line %d: a second serve block", b.Line)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.Command("bash", "-c", strings.TrimSpace(script)) // bash execs the one command
			cmd.Dir, cmd.Env = work, env
			host, _, err = harness.Launch(ctx, "llmproxy", filepath.Join(work, "host.log"), cmd, false, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer host.Stop(10 * time.Second)
			// The tutorial's config has no api_key block: a request without a
			// key is the implicit local key, which sees /readyz's details.
			if _, err := harness.WaitInstances(ctx, "http://"+addr, []string{"acme"}, host, time.Minute, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ran < 5 || host == nil {
		t.Fatalf("the tutorial has %d run blocks and serve=%v; the test expects scaffold, build, configure and two chats", ran, host != nil)
	}
	if _, err := os.Stat(filepath.Join(work, "plugins", "llmproxy-provider-acme")); err != nil {
		t.Errorf("the tutorial did not drop the plugin into plugins/: %v", err)
	}
	chat, stream := outputs[len(outputs)-2], outputs[len(outputs)-1]
	if !strings.Contains(chat, `"object":"chat.completion"`) || !strings.Contains(chat, `"model":"gpt-4o-mini"`) {
		t.Errorf("the chat answer is not the upstream's chat.completion:\n%s\nhost log:\n%s", chat, host.LogTail())
	}
	if !strings.Contains(stream, "data: [DONE]") || !strings.Contains(stream, `"object":"chat.completion.chunk"`) {
		t.Errorf("the streamed answer is not an SSE stream of chunks:\n%s", stream)
	}
	if !strings.Contains(outputs[2], "ok    llmproxy-provider-acme 0.1.0 (protocol v1)") {
		t.Errorf("plugins verify did not pass the scaffolded plugin:\n%s", outputs[2])
	}
}

// TestPluginsCommands runs the operator commands over the built plugins:
// list shows every installed binary with its version, protocol,
// capabilities and true sha256; describe prints a plugin's schema and
// credentials with their descriptions; verify passes them all, and fails
// a binary whose checksum no longer matches the config's pin or that is
// not a plugin at all.
func TestPluginsCommands(t *testing.T) {
	bin := harness.BinDir(t)
	plugins := filepath.Join(bin, "plugins")
	dir := t.TempDir()

	res := harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "list", "-plugins-dir", plugins)
	if res.Code != 0 {
		t.Fatalf("plugins list: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	sum := fileSum(t, filepath.Join(plugins, "llmproxy-provider-echo"))
	row := regexp.MustCompile(`(?m)^echo\s+provider\s+\S+\s+v1\s+\S*chat,chat_stream\S*\s+` + sum + `$`)
	if !row.MatchString(res.Stdout) {
		t.Errorf("plugins list has no row for echo with protocol v1, chat capabilities and sha256 %s:\n%s", sum, res.Stdout)
	}
	for _, head := range []string{"NAME", "KIND", "VERSION", "PROTOCOL", "CAPABILITIES", "SHA256"} {
		if !strings.Contains(res.Stdout, head) {
			t.Errorf("plugins list lacks the %s column:\n%s", head, res.Stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^s3\s+storage\s+\S+\s+v1\s+\S*presign`).MatchString(res.Stdout) {
		t.Errorf("plugins list has no storage row for s3:\n%s", res.Stdout)
	}

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"by type", []string{"describe", "openai"}, []string{
			`llmproxy-provider-openai`, `protocol v1`, "ATTRIBUTE", "base_url", "string", "API base URL",
			"credentials", "api_key", "yes", "OpenAI API key"}},
		{"by kind and type", []string{"describe", "storage-s3"}, []string{"llmproxy-storage-s3", "bucket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, append([]string{"plugins"}, append(tt.args, "-plugins-dir", plugins)...)...)
			if res.Code != 0 {
				t.Fatalf("exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, res.Stdout)
				}
			}
		})
	}
	res = harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "describe", "nosuch", "-plugins-dir", plugins)
	if res.Code != 1 || !strings.Contains(res.Stderr, `no plugin "nosuch" installed`) {
		t.Errorf("describe of a missing plugin: exit %d\n%s", res.Code, res.Stderr)
	}

	res = harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "verify", "-plugins-dir", plugins)
	if res.Code != 0 || !strings.Contains(res.Stdout, "ok    llmproxy-provider-echo") ||
		!strings.Contains(res.Stdout, "describe, configure") {
		t.Errorf("plugins verify over the built plugins: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	// A plugins dir with echo, a pin on it that does not match, and a
	// file named like a plugin that is not one.
	bad := t.TempDir()
	if err := os.Symlink(filepath.Join(plugins, "llmproxy-provider-echo"), filepath.Join(bad, "llmproxy-provider-echo")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "llmproxy-provider-fake"), []byte("#!/bin/sh\necho not a plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(bad, "llmproxy.hcl")
	pin := strings.Repeat("ab", 32)
	if err := os.WriteFile(cfg, []byte("server {\n  plugins_dir = \".\"\n}\n\nplugin \"provider-echo\" {\n  sha256 = \""+pin+"\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res = harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "verify", "-config", cfg)
	if res.Code != 1 {
		t.Errorf("verify with a bad pin and a bad binary: exit %d, want 1\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, w := range []string{"FAIL  llmproxy-provider-echo: sha256 " + sum + " does not match the pin " + pin, "FAIL  llmproxy-provider-fake", "2 of 2 plugin(s) failed"} {
		if !strings.Contains(res.Stdout, w) {
			t.Errorf("verify output lacks %q:\n%s", w, res.Stdout)
		}
	}
}

// TestKeysHash: the digest `keys hash` prints, from stdin or an argument,
// is one the host accepts as key_sha256 for that key, and no other.
func TestKeysHash(t *testing.T) {
	const key = "sk-e2e-keys-hash"
	want := sha256.Sum256([]byte(key))
	dir := t.TempDir()

	cmd := exec.Command(filepath.Join(harness.BinDir(t), "llmproxy"), "keys", "hash")
	cmd.Stdin = strings.NewReader(key + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys hash from stdin: %v", err)
	}
	digest := strings.TrimSpace(string(out))
	if digest != hex.EncodeToString(want[:]) {
		t.Fatalf("keys hash = %q, want the hex SHA-256 of the key", digest)
	}
	if res := harness.RunLLMProxy(t, dir, nil, "keys", "hash", key); strings.TrimSpace(res.Stdout) != digest {
		t.Errorf("keys hash with the key as argument = %q, want %q", res.Stdout, digest)
	}
	cmd = exec.Command(filepath.Join(harness.BinDir(t), "llmproxy"), "keys", "hash")
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Run(); err == nil {
		t.Errorf("keys hash of an empty key succeeded")
	}

	h := harness.Start(t, harness.APIKeyBlock+`api_key "hashed" {
  key_sha256 = "`+digest+`"
  models     = ["*"]
}
provider "echo" {
  type = "echo"
}
route "echo" {
  target "echo" {}
}
`, harness.Options{WaitFor: []string{"echo"}})
	for _, tt := range []struct {
		key    string
		status int
	}{{key, http.StatusOK}, {key + "x", http.StatusUnauthorized}} {
		req, _ := http.NewRequest("POST", h.URL+"/v1/chat/completions", strings.NewReader(`{"model":"echo","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+tt.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("key %q: status %d, want %d", tt.key, resp.StatusCode, tt.status)
		}
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFutureProtocolRefused installs a plugin that announces only plugin
// protocol v2, as one built against a future SDK major would. It passes
// the magic cookie and completes its half of the handshake; the host
// must refuse it, naming both versions, in `plugins verify` and in the
// instance's state when serving, and go on serving the rest.
func TestFutureProtocolRefused(t *testing.T) {
	dir := t.TempDir()
	// The magic cookie and the handshake line (core version | protocol
	// version | network | address | protocol) are the go-plugin wire
	// protocol; the cookie is the one in sdk/internal/rpc.
	const cookieKey, cookieValue = "LLMPROXY_PLUGIN", "d3c1c3b6-6f0c-4f52-9a53-llmproxy"
	script := fmt.Sprintf("#!/bin/sh\n[ \"$%s\" = %q ] || { echo 'run me from llmproxy' >&2; exit 1; }\n"+
		"echo '1|2|unix|%s/plugin.sock|grpc|'\nexec sleep 60\n", cookieKey, cookieValue, dir)
	if err := os.WriteFile(filepath.Join(dir, "llmproxy-provider-future"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(harness.BinDir(t), "plugins", "llmproxy-provider-echo"), filepath.Join(dir, "llmproxy-provider-echo")); err != nil {
		t.Fatal(err)
	}
	const refusal = "refused: it speaks plugin protocol v2, this host speaks v1; it was built for a newer host: upgrade llmproxy"

	res := harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "verify", "-plugins-dir", dir)
	if res.Code != 1 || !strings.Contains(res.Stdout, "FAIL  llmproxy-provider-future: plugin "+filepath.Join(dir, "llmproxy-provider-future")+" "+refusal) ||
		!strings.Contains(res.Stdout, "ok    llmproxy-provider-echo") {
		t.Errorf("plugins verify: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	h := harness.Start(t, harness.APIKeyBlock+`provider "future" {
  type = "future"
}
provider "echo" {
  type = "echo"
}
route "echo" {
  target "echo" {}
}
`, harness.Options{PluginsDir: dir, WaitFor: []string{"echo"}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.Instances()
		if err == nil && st["future"].State != "starting" && st["future"].State != "" {
			// failed, not restarting: a restart cannot change the
			// plugin's protocol.
			if !strings.Contains(st["future"].Reason, refusal) || st["future"].State != "failed" {
				t.Errorf("future instance: state %q, reason %q; want failed, saying %q", st["future"].State, st["future"].Reason, refusal)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the future instance did not settle: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _, body := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`); status != http.StatusOK {
		t.Errorf("echo beside the refused plugin: %d %s", status, body)
	}
}

// TestOldSDKPluginOnNewHost builds a plugin against the SDK as released
// for protocol v1 (testdata/sdk-v1.0.0, kept unchanged) and runs it on
// the current host: verify passes it, and chat, JSON and streamed, goes
// through it to the upstream. A change to the SDK that is not additive
// breaks this test.
func TestOldSDKPluginOnNewHost(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command must be on PATH to build the old plugin")
	}
	plugins := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "llmproxy-provider-baseline"), ".")
	build.Dir = filepath.Join("testdata", "plugin-sdk-v1.0.0")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin against SDK v1.0.0: %v\n%s", err, out)
	}

	res := harness.RunLLMProxy(t, plugins, []string{"LLMPROXY_CONFIG="}, "plugins", "verify", "-plugins-dir", plugins)
	if res.Code != 0 || !strings.Contains(res.Stdout, "ok    llmproxy-provider-baseline 0.1.0 (protocol v1)") {
		t.Fatalf("plugins verify: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	fake := openaifake.New(openaifake.Options{})
	fake.Start()
	t.Cleanup(fake.Close)
	h := harness.Start(t, harness.APIKeyBlock+`
provider "old" {
  type = "baseline"
  config {
    base_url = "`+fake.URL()+`/v1"
  }
  credential "api_key" {
    from "value" { value = "`+openaifake.DefaultKey+`" }
  }
}
route "gpt-4o-mini" {
  target "old" {}
}
`, harness.Options{PluginsDir: plugins, WaitFor: []string{"old"}})
	status, _, body := h.Do(t, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"object":"chat.completion"`) {
		t.Errorf("chat through the old plugin: %d %s", status, body)
	}
	status, _, body = h.Do(t, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if status != http.StatusOK || !strings.Contains(string(body), "chat.completion.chunk") || !strings.Contains(string(body), "data: [DONE]") {
		t.Errorf("stream through the old plugin: %d %s", status, body)
	}
}
