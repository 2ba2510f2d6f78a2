// Package golden compares test output with golden files under testdata/,
// for the scenario tests of provider plugins: the upstream request a
// plugin sent, the OpenAI answer, the stream, or the error a client saw.
// Run a plugin's tests with -update to rewrite the files after checking a
// change:
//
//	go test ./... -run TestGolden -update
package golden

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Compare compares got with the file dir/name, or writes it there when the
// test runs with -update.
func Compare(t testing.TB, dir, name string, got []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update after checking the change):\ngot:\n%s\nwant:\n%s",
			path, got, want)
	}
}

// JSON indents the JSON document b for a golden file, with a final newline.
func JSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// Error renders err, which must be an *openai.Error, as the client sees
// it: status, retry delay and body.
func Error(t testing.TB, err error) []byte {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error is not an *openai.Error: %v", err)
	}
	out, _ := json.MarshalIndent(map[string]any{
		"status":         oe.Status,
		"retry_after_ms": oe.RetryAfter.Milliseconds(),
		"body":           oe.Body(),
	}, "", "  ")
	return append(out, '\n')
}

// Status is the HTTP status of err when it is an *openai.Error, else 0.
func Status(err error) int {
	var oe *openai.Error
	if errors.As(err, &oe) {
		return oe.Status
	}
	return 0
}

// Streamed returns the chat request body with "stream": true and
// stream_options.include_usage set, for the streamed half of a scenario.
func Streamed(t testing.TB, body []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["stream"] = json.RawMessage("true")
	m["stream_options"] = json.RawMessage(`{"include_usage":true}`)
	out, _ := json.Marshal(m)
	return out
}
