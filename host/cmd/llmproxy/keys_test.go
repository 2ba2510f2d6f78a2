package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestKeysHash: the digest is the hex SHA-256 of the key, read from the
// argument or the first line of stdin without its line ending.
func TestKeysHash(t *testing.T) {
	const digest = "f3abf2a6cc4f00987743db5f544ba345b4899ae31f326d8ee9c4816de153c9e0" // sha256("sk-test")
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
	}{
		{"argument", []string{"hash", "sk-test"}, "", 0, digest + "\n"},
		{"stdin", []string{"hash"}, "sk-test\n", 0, digest + "\n"},
		{"stdin with CRLF", []string{"hash"}, "sk-test\r\nignored\n", 0, digest + "\n"},
		{"stdin without newline", []string{"hash"}, "sk-test", 0, digest + "\n"},
		{"empty", []string{"hash"}, "\n", 1, ""},
		{"two keys", []string{"hash", "a", "b"}, "", 2, ""},
		{"no subcommand", nil, "", 2, ""},
		{"unknown subcommand", []string{"rotate"}, "", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			code := runKeys(tt.args, strings.NewReader(tt.stdin), &out, &errs)
			if code != tt.code || out.String() != tt.out {
				t.Errorf("exit %d, out %q (stderr %q); want %d, %q", code, out.String(), errs.String(), tt.code, tt.out)
			}
		})
	}
}
