package docs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// quickStart returns the sh blocks of README.md's "Quick start" section,
// in order.
func quickStart(t *testing.T) []Block {
	t.Helper()
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	start := strings.Index(text, "\n## Quick start\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Quick start" section`)
	}
	end := strings.Index(text[start+1:], "\n## ")
	if end < 0 {
		end = len(text)
	} else {
		end += start + 1
	}
	offset := strings.Count(text[:start], "\n")
	var out []Block
	for _, b := range Blocks([]byte(text[start:end])) {
		if b.Lang == "sh" {
			b.Line += offset
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatal("the quick start has no sh blocks")
	}
	return out
}

// recorder replaces curl in the walk-through script: every call is
// numbered, and its arguments, response headers and body are kept for
// the test to check. It runs the real curl, so the script sees the same
// output a reader does.
const recorder = `set -euo pipefail
curl() {
	local n
	n=$(( $(cat "$WALK/count") + 1 ))
	echo "$n" > "$WALK/count"
	printf '%s\0' "$@" > "$WALK/$n.args"
	command curl -D "$WALK/$n.headers" "$@" | tee "$WALK/$n.body"
}
`

// TestReadmeQuickStart runs the curl commands of README.md's quick start,
// in order, against the host started as `make run` starts it (the
// embedded default config), and checks each answer's status and shape.
func TestReadmeQuickStart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start needs %s: %v", tool, err)
		}
	}
	bin := harness.BinDir(t)
	work := t.TempDir() // the reader's working directory
	addr := harness.FreeAddr(t)

	// `make run` is ./bin/llmproxy with no arguments. The environment is
	// a fresh machine's: no provider keys.
	host := exec.Command(filepath.Join(bin, "llmproxy"))
	host.Dir = work
	tmp, err := os.MkdirTemp("", "llmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	host.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "TMPDIR=" + tmp, "LLMPROXY_LISTEN=" + addr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proc, _, err := harness.Launch(ctx, "llmproxy", filepath.Join(t.TempDir(), "host.log"), host, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop(10 * time.Second)
	if _, err := harness.WaitInstances(ctx, "http://"+addr, []string{"echo", "dev"}, proc, time.Minute); err != nil {
		t.Fatal(err)
	}

	blocks := quickStart(t)
	var script strings.Builder
	script.WriteString(recorder)
	want := 0
	for _, b := range blocks {
		want += len(regexp.MustCompile(`\bcurl\b`).FindAllString(b.Text, -1))
		script.WriteString(strings.NewReplacer("localhost:8080", addr, "127.0.0.1:8080", addr).Replace(b.Text))
		script.WriteString("\n")
	}
	walk := t.TempDir()
	if err := os.WriteFile(filepath.Join(walk, "count"), []byte("0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Dir = work
	sh.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "WALK=" + walk}
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s\nscript:\n%s\nhost log:\n%s", err, out, script.String(), proc.LogTail())
	}

	calls := readCalls(t, walk)
	if len(calls) != want {
		t.Fatalf("%d curl calls ran, the quick start has %d:\n%s", len(calls), want, out)
	}
	for i, c := range calls {
		t.Run(fmt.Sprintf("%d %s %s", i+1, c.method, c.url.Path), func(t *testing.T) {
			checkCall(t, c)
		})
	}
}

// call is one recorded curl invocation and its answer.
type call struct {
	method string
	url    *url.URL
	data   string // the -d / --data-binary argument
	status int
	header map[string]string // lower-case names
	body   []byte
}

func readCalls(t *testing.T, walk string) []call {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(walk, "count"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	var out []call
	for i := 1; i <= n; i++ {
		args, _ := os.ReadFile(filepath.Join(walk, fmt.Sprintf("%d.args", i)))
		c := call{method: "GET", header: map[string]string{}}
		list := strings.Split(strings.TrimSuffix(string(args), "\x00"), "\x00")
		for j := 0; j < len(list); j++ {
			a := list[j]
			switch {
			case a == "-X" && j+1 < len(list):
				c.method = list[j+1]
				j++
			case (a == "-d" || a == "--data" || a == "--data-binary") && j+1 < len(list):
				c.data = list[j+1]
				if c.method == "GET" {
					c.method = "POST"
				}
				j++
			case a == "-H" && j+1 < len(list):
				j++
			case strings.Contains(a, "://") || strings.HasPrefix(a, "127.0.0.1:"):
				u := a
				if !strings.Contains(u, "://") {
					u = "http://" + u
				}
				if c.url, err = url.Parse(u); err != nil {
					t.Fatalf("call %d: url %q: %v", i, a, err)
				}
			}
		}
		if c.url == nil {
			t.Fatalf("call %d has no URL: %q", i, list)
		}
		headers, err := os.ReadFile(filepath.Join(walk, fmt.Sprintf("%d.headers", i)))
		if err != nil {
			t.Fatalf("call %d (%s %s) got no answer", i, c.method, c.url)
		}
		sc := bufio.NewScanner(strings.NewReader(string(headers)))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(l, "HTTP/") {
				f := strings.Fields(l)
				if len(f) > 1 {
					c.status, _ = strconv.Atoi(f[1])
				}
			} else if k, v, ok := strings.Cut(l, ":"); ok {
				c.header[strings.ToLower(k)] = strings.TrimSpace(v)
			}
		}
		c.body, _ = os.ReadFile(filepath.Join(walk, fmt.Sprintf("%d.body", i)))
		out = append(out, c)
	}
	return out
}

// checkCall checks an answer by what was asked. A request the test does
// not know fails, so that the README and this test change together.
func checkCall(t *testing.T, c call) {
	path := c.url.Path
	switch {
	case path == "/v1/chat/completions" && strings.Contains(c.data, `"stream":true`):
		wantStatus(t, c, 200)
		if !strings.HasPrefix(c.header["content-type"], "text/event-stream") {
			t.Errorf("content type %q", c.header["content-type"])
		}
		var text strings.Builder
		done := false
		for _, l := range strings.Split(string(c.body), "\n") {
			payload, ok := strings.CutPrefix(l, "data: ")
			if !ok {
				continue
			}
			if payload == "[DONE]" {
				done = true
				continue
			}
			var chunk struct {
				Object  string `json:"object"`
				Choices []struct {
					Delta struct{ Content string } `json:"delta"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(payload), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
				t.Fatalf("bad chunk %q: %v", payload, err)
			}
			for _, ch := range chunk.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
		if !done || !strings.Contains(text.String(), "hi") {
			t.Errorf("stream: [DONE] %v, text %q", done, text.String())
		}
	case path == "/v1/chat/completions":
		wantStatus(t, c, 200)
		var resp struct {
			Object  string `json:"object"`
			Choices []struct {
				Message struct{ Role, Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				TotalTokens int `json:"total_tokens"`
			} `json:"usage"`
		}
		decode(t, c, &resp)
		if resp.Object != "chat.completion" || len(resp.Choices) != 1 || resp.Choices[0].Message.Role != "assistant" || resp.Usage.TotalTokens == 0 {
			t.Fatalf("not a chat completion: %s", c.body)
		}
		content := resp.Choices[0].Message.Content
		if strings.Contains(c.data, `"document"`) {
			if !strings.Contains(content, `[document "quantum.md"`) || !strings.Contains(content, "Qubits") {
				t.Errorf("the reply does not show the document: %q", content)
			}
		} else if !strings.Contains(content, "hi") {
			t.Errorf("reply %q", content)
		}
	case path == "/v1/models":
		wantStatus(t, c, 200)
		var list struct {
			Object string                `json:"object"`
			Data   []struct{ ID string } `json:"data"`
		}
		decode(t, c, &list)
		found := false
		for _, m := range list.Data {
			found = found || m.ID == "echo"
		}
		if list.Object != "list" || !found {
			t.Errorf("model list without echo: %s", c.body)
		}
	case path == "/readyz":
		wantStatus(t, c, 200)
		var ready struct {
			Instances map[string]struct{ State, Reason string } `json:"instances"`
		}
		decode(t, c, &ready)
		if ready.Instances["echo"].State != "ready" || ready.Instances["dev"].State != "ready" {
			t.Errorf("echo and dev should be ready: %s", c.body)
		}
		if st := ready.Instances["openai_prod"]; st.State == "ready" || !strings.Contains(st.Reason, "OPENAI_API_KEY") {
			t.Errorf("openai_prod without a key should say why it is not ready: %+v", st)
		}
	case strings.HasPrefix(path, "/-local/dev/put/") && c.method == "PUT":
		wantStatus(t, c, 200)
		var put struct {
			Key  string `json:"key"`
			Size int    `json:"size"`
		}
		decode(t, c, &put)
		if put.Key == "" || put.Size == 0 {
			t.Errorf("upload answer: %s", c.body)
		}
	case strings.HasPrefix(path, "/-local/dev/presign/"):
		wantStatus(t, c, 200)
		var p struct {
			URL string `json:"url"`
		}
		decode(t, c, &p)
		if u, err := url.Parse(p.URL); err != nil || u.Host != c.url.Host {
			t.Errorf("presigned URL %q should point at the host %s", p.URL, c.url.Host)
		}
	default:
		t.Fatalf("the quick start calls %s %s, which this test does not check: add a case", c.method, c.url)
	}
}

func wantStatus(t *testing.T, c call, status int) {
	t.Helper()
	if c.status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.url, c.status, status, c.body)
	}
}

func decode(t *testing.T, c call, v any) {
	t.Helper()
	if err := json.Unmarshal(c.body, v); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %s", c.method, c.url, err, c.body)
	}
}
