// Package template holds the starting points for new plugins, as source:
// each kind's directory is a complete, tested plugin that `llmproxy plugins
// new <kind> <name>` copies into a new module and renames.
//
// The templates live here, inside the SDK module, so that `go test` on the
// SDK builds and tests them against the SDK they will be built with; FS
// carries the same files into the host binary.
package template

import (
	"embed"
	"fmt"
	"io/fs"
)

// FS holds the template files, one directory per plugin kind
// ("provider/main.go", "provider/main_test.go", …).
//
//go:embed provider/*.go
var FS embed.FS

// Kinds lists the plugin kinds that have a template.
func Kinds() []string {
	entries, _ := fs.ReadDir(FS, ".")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// Files returns the template files of kind by file name.
func Files(kind string) (map[string][]byte, error) {
	entries, err := fs.ReadDir(FS, kind)
	if err != nil {
		return nil, fmt.Errorf("no template for plugin kind %q (have %v)", kind, Kinds())
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := fs.ReadFile(FS, kind+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read template %s/%s: %w", kind, e.Name(), err)
		}
		out[e.Name()] = b
	}
	return out, nil
}
