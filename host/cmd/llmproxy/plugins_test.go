package main

import (
	"bytes"
	"flag"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/llmproxy/llmproxy/sdk/schema"
)

// TestWriteSchema: nested blocks' attributes are listed under the block's
// name, each row with its type, whether it is required and its
// description on one line.
func TestWriteSchema(t *testing.T) {
	s := schema.Schema{
		Attributes: []schema.Attribute{{Name: "base_url", Type: "string", Required: true, Description: "Where to\n  send requests."}},
		Blocks: []schema.Block{{Name: "retry", Nesting: schema.NestingSingle, Description: "Retries.",
			Schema: schema.Schema{Attributes: []schema.Attribute{{Name: "max", Type: "number"}}}}},
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
	if n := writeSchema(tw, "", s); n != 3 {
		t.Errorf("rows = %d, want 3", n)
	}
	tw.Flush()
	want := []string{
		"base_url  string         yes Where to send requests.",
		"retry { } block (single)     Retries.",
		"retry.max number         no",
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), strings.Join(strings.Fields(w), " ")) {
			t.Errorf("output lacks %q:\n%s", w, b.String())
		}
	}
}

// TestPickPlugin: a plugin is named by type, kind-type or file name; an
// ambiguous or unknown name is an error that says what there is.
func TestPickPlugin(t *testing.T) {
	found := []installed{
		{file: "llmproxy-provider-local", kind: "provider", typ: "local"},
		{file: "llmproxy-storage-local", kind: "storage", typ: "local"},
		{file: "llmproxy-provider-echo", kind: "provider", typ: "echo"},
	}
	tests := []struct{ name, file, err string }{
		{"echo", "llmproxy-provider-echo", ""},
		{"provider-echo", "llmproxy-provider-echo", ""},
		{"llmproxy-storage-local", "llmproxy-storage-local", ""},
		{"local", "", "names several plugins"},
		{"nosuch", "", "have provider-local, storage-local, provider-echo"},
	}
	for _, tt := range tests {
		p, err := pickPlugin(found, tt.name)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || p.file != tt.file {
			t.Errorf("%s: got %q %v, want %q", tt.name, p.file, err, tt.file)
		}
	}
}

// TestParseInterleaved: flags may follow the positional arguments.
func TestParseInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	dir := fs.String("dir", "", "")
	pos, err := parseInterleaved(fs, []string{"provider", "-dir", "d", "acme"})
	if err != nil || !slices.Equal(pos, []string{"provider", "acme"}) || *dir != "d" {
		t.Errorf("got %v %q %v", pos, *dir, err)
	}
}
