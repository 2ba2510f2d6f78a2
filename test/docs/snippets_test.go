package docs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// root is the repository root, relative to this package.
const root = "../.."

// minimalConfig is what a ```hcl fragment``` snippet is merged into: a key,
// an instance and a route, so that a fragment may be a route, a key or an
// instance alone.
const minimalConfig = `
api_key "docs" {
  key    = "sk-docs-test"
  models = ["*"]
}
provider "docs_echo" {
  type = "echo"
}
route "docs-echo" {
  target "docs_echo" {}
}
`

// documents lists the Markdown files whose snippets must run: README.md,
// plugins/*/README.md, and every .md under sdk/ and docs/.
func documents(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md")}
	plugins, err := filepath.Glob(filepath.Join(root, "plugins", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, plugins...)
	for _, dir := range []string{"sdk", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return filepath.SkipDir
				}
				return err
			}
			if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(files)
	return files
}

// snippet is one HCL block of a document.
type snippet struct {
	doc string // path relative to the repository root
	Block
}

func (s snippet) name() string { return fmt.Sprintf("%s:%d", s.doc, s.Line) }

// source is the config file the snippet is checked as: blank lines first,
// so that diagnostics carry the line numbers of the Markdown file, then
// the snippet, then (for a fragment) the minimal config.
func (s snippet) source() string {
	var b strings.Builder
	b.WriteString(strings.Repeat("\n", s.Line-1))
	b.WriteString(s.Text)
	if s.Has("fragment") {
		b.WriteString(minimalConfig)
	}
	return b.String()
}

func snippets(t *testing.T) []snippet {
	t.Helper()
	var out []snippet
	for _, path := range documents(t) {
		md, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		for _, b := range Blocks(md) {
			if b.Lang == "hcl" {
				out = append(out, snippet{doc: rel, Block: b})
			}
		}
	}
	return out
}

// TestConfigSnippets checks every fenced hcl block of the documentation
// with `llmproxy validate -require-plugins`: the real loader, each
// instance's config block against the schema its plugin describes, and
// the credentials each plugin requires. A block whose fence says
// "invalid" must fail; every other block must pass.
func TestConfigSnippets(t *testing.T) {
	bin := harness.BinDir(t)
	all := snippets(t)
	if len(all) < 10 {
		t.Fatalf("found only %d hcl snippets; is the repository root %s?", len(all), root)
	}
	dir := t.TempDir()
	for i, s := range all {
		t.Run(s.name(), func(t *testing.T) {
			for _, p := range check(t, bin, dir, i, s) {
				t.Error(p)
			}
		})
	}
}

// check validates one snippet and returns what is wrong with it, or
// nothing.
func check(t *testing.T, bin, dir string, i int, s snippet) []string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%03d-%s.hcl", i, strings.NewReplacer("/", "_", ".", "_").Replace(s.doc)))
	if err := os.WriteFile(path, []byte(s.source()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := validate(t, bin, dir, path)
	// Diagnostics name the temporary file; point them at the document
	// instead.
	out = strings.ReplaceAll(out, path, s.doc)
	// The quoted source lines hold the expectations themselves.
	var said []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "# validate:") {
			said = append(said, l)
		}
	}
	messages := collapse(strings.Join(said, "\n"))
	var problems []string
	for _, want := range s.expectations() {
		pos := fmt.Sprintf("%s:%d:", s.doc, want.line)
		if !strings.Contains(out, pos) || !strings.Contains(messages, collapse(want.text)) {
			problems = append(problems, fmt.Sprintf("%s: llmproxy validate does not report %q at %s:\n%s", s.name(), want.text, pos, out))
		}
	}
	switch {
	case s.Has("invalid") && code == 0:
		problems = append(problems, fmt.Sprintf("%s: the snippet is marked invalid but llmproxy validate accepts it:\n%s", s.name(), s.Text))
	case s.Has("invalid") && code != 1:
		problems = append(problems, fmt.Sprintf("%s: llmproxy validate exited %d, want 1:\n%s", s.name(), code, out))
	case !s.Has("invalid") && code != 0:
		problems = append(problems, fmt.Sprintf("%s: llmproxy validate exited %d:\n%s", s.name(), code, out))
	}
	return problems
}

// TestSnippetKinds runs the snippet check on made-up snippets of each
// kind, so that a check that passes everything cannot go unnoticed.
func TestSnippetKinds(t *testing.T) {
	bin := harness.BinDir(t)
	dir := t.TempDir()
	tests := []struct {
		name, info, text string
		ok               bool
	}{
		{"whole file", "hcl", "provider \"e\" {\n  type = \"echo\"\n}\n", true},
		{"type as a label", "hcl", "provider \"echo\" \"e\" {\n}\n", false},
		{"fragment using the minimal config", "hcl fragment", "route \"docs-*\" {\n  target \"docs_echo\" {}\n}\n", true},
		{"the same route as a whole file", "hcl", "route \"docs-*\" {\n  target \"docs_echo\" {}\n}\n", false},
		{"plugin schema", "hcl", "provider \"e\" {\n  type = \"echo\"\n  config {\n    colour = \"red\"\n  }\n}\n", false},
		{"plugin not installed", "hcl", "provider \"e\" {\n  type = \"nosuchplugin\"\n}\n", false},
		{"invalid, but not as it says", "hcl invalid", "provider \"e\" { # validate: Missing required argument\n  type = \"echo\"\n  prefix = 1\n}\n", false},
		{"invalid, reported as marked", "hcl invalid", "provider \"e\" {\n  type = \"echo\"\n  config {\n    colour = \"red\" # validate: Unsupported argument\n  }\n}\n", true},
		{"marked invalid but valid", "hcl invalid", "provider \"e\" {\n  type = \"echo\"\n}\n", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Blocks([]byte("# Doc\n\n```" + tt.info + "\n" + tt.text + "```\n"))
			if len(b) != 1 {
				t.Fatalf("%d blocks", len(b))
			}
			problems := check(t, bin, dir, i, snippet{doc: "made-up.md", Block: b[0]})
			if tt.ok && len(problems) > 0 {
				t.Errorf("want no problems, got:\n%s", strings.Join(problems, "\n"))
			}
			if !tt.ok && len(problems) == 0 {
				t.Errorf("want a problem, got none")
			}
		})
	}
}

// expectation is a message `llmproxy validate` must print about a line.
type expectation struct {
	line int
	text string
}

// expectations returns the "# validate: <message>" comments of an
// invalid snippet: each message must be reported at its line.
func (s snippet) expectations() []expectation {
	var out []expectation
	for i, l := range strings.Split(s.Text, "\n") {
		if _, msg, ok := strings.Cut(l, "# validate:"); ok {
			out = append(out, expectation{line: s.Line + i, text: strings.TrimSpace(msg)})
		}
	}
	return out
}

// collapse turns every run of white space into one space, so that a
// message wrapped across lines still matches.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// validate runs `llmproxy validate` on path with the plugins beside the
// binary and no provider credentials in the environment.
func validate(t *testing.T, bin, dir, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "llmproxy"), "validate", "-require-plugins", "-config", path)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir()}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run llmproxy validate: %v", err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}
