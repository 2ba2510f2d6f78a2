package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/test/harness"
)

// nodePlugin is the path of the JavaScript provider plugin built by make
// build (plugins/provider-nodeecho).
func nodePlugin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(harness.BinDir(t), "plugins", "llmproxy-provider-nodeecho")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run `make build`: %v", p, err)
	}
	return p
}

// startNodePlugin starts the plugin the way the host does (go-plugin,
// gRPC only, AutoMTLS, no inherited environment) and returns the go-plugin
// client and the provider client it dispenses. Both end with the test.
func startNodePlugin(t *testing.T, versions map[int]goplugin.PluginSet) (*goplugin.Client, *provider.Client, error) {
	t.Helper()
	cmd := exec.Command(nodePlugin(t))
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=" + t.TempDir()}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  provider.Handshake,
		VersionedPlugins: versions,
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     20 * time.Second,
		GRPCDialOptions:  provider.DialOptions(),
	})
	t.Cleanup(client.Kill)
	proto, err := client.Client()
	if err != nil {
		return client, nil, err
	}
	raw, err := proto.Dispense(provider.PluginName)
	if err != nil {
		return client, nil, err
	}
	return client, raw.(*provider.Client), nil
}

// TestNodePluginConformance runs the SDK's provider conformance suite
// against the JavaScript plugin, started over go-plugin with mutual TLS as
// the host starts it: the plugin contract is the proto, not the Go SDK.
func TestNodePluginConformance(t *testing.T) {
	client, c, err := startNodePlugin(t, provider.ClientPlugins())
	if err != nil {
		t.Fatalf("start the node plugin: %v", err)
	}
	if client.NegotiatedVersion() != 1 {
		t.Fatalf("negotiated protocol v%d, want v1", client.NegotiatedVersion())
	}
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Client:        c,
		Config:        &provider.Config{Instance: "node", JSON: []byte(`{"prefix":"Node says: "}`)},
		Model:         "node-echo",
		Deterministic: true,
	})

	ctx := context.Background()
	t.Run("Ping", func(t *testing.T) {
		proto, _ := client.Client()
		if err := proto.Ping(); err != nil {
			t.Errorf("go-plugin health check: %v", err)
		}
	})
	t.Run("ConfigDiagnostics", func(t *testing.T) {
		for _, tc := range []struct {
			json, path string
		}{
			{`{"colour":"blue"}`, "colour"},
			{`{"chunk_delay_ms":"slow"}`, "chunk_delay_ms"},
			{`{"prefix":3}`, "prefix"},
		} {
			diags, err := c.Configure(ctx, &provider.Config{Instance: "node", JSON: []byte(tc.json)})
			if err != nil {
				t.Fatalf("Configure(%s): %v", tc.json, err)
			}
			if !diags.HasErrors() || len(diags[0].Path) != 1 || diags[0].Path[0] != tc.path {
				t.Errorf("Configure(%s): want an error at %q, got %+v", tc.json, tc.path, diags)
			}
		}
	})
	t.Run("ErrorDetail", func(t *testing.T) {
		_, err := c.ChatCompletion(ctx, &provider.Request{Meta: provider.Meta{Model: "node-echo"}, Body: []byte(`{"model":"node-echo","messages":[]}`)})
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 400 || oe.Type != openai.TypeInvalidRequest || oe.Param != "messages" || oe.Code != "invalid_value" {
			t.Errorf("want 400 invalid_request_error invalid_value on messages, got %#v", err)
		}
	})
	t.Run("StreamErrorDetail", func(t *testing.T) {
		st, err := c.ChatCompletionStream(ctx, &provider.Request{Meta: provider.Meta{Model: "node-echo"}, Body: []byte(`{"model":"node-echo","stream":true,"messages":[{"content":"no role"}]}`)})
		if err == nil {
			_, err = st.Recv()
		}
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != "messages[0]" {
			t.Errorf("want 400 on messages[0] before the first chunk, got %#v", err)
		}
		// The plugin keeps serving after a refused stream.
		if _, err := c.ChatCompletion(ctx, &provider.Request{Meta: provider.Meta{Model: "node-echo"}, Body: []byte(`{"model":"node-echo","messages":[{"role":"user","content":"still there"}]}`)}); err != nil {
			t.Errorf("chat after a refused stream: %v", err)
		}
	})
	t.Run("Unimplemented", func(t *testing.T) {
		_, err := c.Embeddings(ctx, &provider.Request{Meta: provider.Meta{Model: "node-echo"}, Body: []byte(`{"model":"node-echo","input":"x"}`)})
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Code != "unsupported_operation" {
			t.Errorf("Embeddings: want unsupported_operation, got %v", err)
		}
	})
	t.Run("Shutdown", func(t *testing.T) {
		client.Kill()
		if !client.Exited() {
			t.Errorf("the plugin process did not exit when the host closed it")
		}
	})
}

// TestNodePluginRefusesOtherProtocol checks that a host speaking only
// another protocol version gets a clear refusal, not a broken connection.
func TestNodePluginRefusesOtherProtocol(t *testing.T) {
	_, _, err := startNodePlugin(t, map[int]goplugin.PluginSet{2: {provider.PluginName: &provider.Plugin{}}})
	if err == nil || !strings.Contains(err.Error(), "incompatible API version") {
		t.Fatalf("want go-plugin's incompatible-version error, got %v", err)
	}
}

const nodeEchoBlock = `
provider "node" {
  type = "nodeecho"
  config {
    prefix = "Node says: "
  }
}
route "node-echo" {
  target "node" {}
}
`

// TestNodePluginThroughHost chats through the host with the JavaScript
// plugin in the plugins dir, in JSON and streamed.
func TestNodePluginThroughHost(t *testing.T) {
	nodePlugin(t)
	h := harness.Start(t, harness.APIKeyBlock+nodeEchoBlock, harness.Options{WaitFor: []string{"node"}})

	status, _, body := h.Do(t, "POST", "/v1/chat/completions", `{"model":"node-echo","messages":[{"role":"user","content":"hello from the host"}]}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var cc openai.ChatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		t.Fatal(err)
	}
	if got := *cc.Choices[0].Message.Content; got != "Node says: hello from the host" || cc.Usage == nil || cc.Usage.CompletionTokens != 6 {
		t.Errorf("completion: %s", body)
	}

	status, hdr, body := h.Do(t, "POST", "/v1/chat/completions",
		`{"model":"node-echo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}`)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: status %d, content type %q: %s", status, hdr.Get("Content-Type"), body)
	}
	acc := &openai.Accumulator{}
	done := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		if err := acc.Add([]byte(data)); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
	}
	got := acc.Completion()
	if !done || *got.Choices[0].Message.Content != "Node says: one two three" || got.Choices[0].FinishReason != "stop" || acc.UsageChunks != 1 {
		t.Errorf("stream folded to %+v (done=%v, usage chunks=%d)\n%s", got, done, acc.UsageChunks, body)
	}

	// A request the plugin refuses reaches the client in the OpenAI error
	// shape with the status, type and param the plugin chose.
	status, _, body = h.Do(t, "POST", "/v1/chat/completions", `{"model":"node-echo","messages":[{"content":"no role"}]}`)
	var e struct {
		Error openai.Error `json:"error"`
	}
	if err := json.Unmarshal(body, &e); status != 400 || err != nil || e.Error.Type != openai.TypeInvalidRequest {
		t.Errorf("refused request: status %d: %s", status, body)
	}

	status, _, body = h.Do(t, "POST", "/v1/chat/completions", `{"model":"node-echo","stream":true,"messages":[{"content":"no role"}]}`)
	if status != 400 || !strings.Contains(string(body), "messages[0]") {
		t.Errorf("refused stream: status %d: %s", status, body)
	}

	// A plugin process that dies is replaced by the host's supervisor,
	// like a Go plugin, and serves again.
	before := h.WaitInstance(t, "node", "ready", 5*time.Second)
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin pid %d: %v", before.PID, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.Instances()
		if err == nil && st["node"].State == "ready" && st["node"].PID != before.PID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node plugin was not restarted: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	status, _, body = h.Do(t, "POST", "/v1/chat/completions", `{"model":"node-echo","messages":[{"role":"user","content":"again"}]}`)
	if status != 200 || !strings.Contains(string(body), "Node says: again") {
		t.Errorf("after restart: status %d: %s", status, body)
	}
}

// TestNodePluginOperatorCommands checks that the operator commands treat
// the JavaScript plugin like any other: listed with its version, protocol
// and capabilities, described from its schema, and verified end to end
// (start, handshake, describe, configure, health).
func TestNodePluginOperatorCommands(t *testing.T) {
	plugins := filepath.Dir(nodePlugin(t))
	dir := t.TempDir()
	res := harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "list", "-plugins-dir", plugins)
	if res.Code != 0 || !regexp.MustCompile(`(?m)^nodeecho\s+provider\s+0\.1\.0\s+v1\s+chat,chat_stream,models,health\s+[0-9a-f]{64}$`).MatchString(res.Stdout) {
		t.Errorf("plugins list: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "describe", "nodeecho", "-plugins-dir", plugins)
	if res.Code != 0 || !strings.Contains(res.Stdout, "chunk_delay_ms") || !strings.Contains(res.Stdout, "Text every reply starts with") {
		t.Errorf("plugins describe: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = harness.RunLLMProxy(t, dir, []string{"LLMPROXY_CONFIG="}, "plugins", "verify", "-plugins-dir", plugins)
	if res.Code != 0 || !strings.Contains(res.Stdout, "ok    llmproxy-provider-nodeecho 0.1.0 (protocol v1): start, handshake, describe, configure, health") {
		t.Errorf("plugins verify: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
