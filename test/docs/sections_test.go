package docs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pluginSections are the sections of every plugin README, in order.
var pluginSections = []string{
	"Configuration",
	"Credentials",
	"What maps natively",
	"What is refused and why",
	"Limits",
	"Testing",
}

// TestPluginReadmeSections checks that every plugin README has the same
// sections in the same order, so that an operator finds the same answer
// in the same place for every provider and store.
func TestPluginReadmeSections(t *testing.T) {
	readmes, err := filepath.Glob(filepath.Join(root, "plugins", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(readmes) < 9 {
		t.Fatalf("found %d plugin READMEs", len(readmes))
	}
	for _, path := range readmes {
		rel, _ := filepath.Rel(root, path)
		t.Run(rel, func(t *testing.T) {
			md, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := sections(md); !slices.Equal(got, pluginSections) {
				t.Errorf("sections %q, want %q", got, pluginSections)
			}
		})
	}
}

// sections returns the level-2 headings of a Markdown document, outside
// code blocks.
func sections(md []byte) []string {
	var out []string
	inCode := ""
	for _, l := range strings.Split(string(md), "\n") {
		trimmed := strings.TrimLeft(l, " ")
		if f := fenceOf(trimmed); f != "" {
			switch {
			case inCode == "":
				inCode = f
			case f[0] == inCode[0] && len(f) >= len(inCode):
				inCode = ""
			}
			continue
		}
		if inCode == "" && strings.HasPrefix(l, "## ") {
			out = append(out, strings.TrimSpace(l[3:]))
		}
	}
	return out
}
