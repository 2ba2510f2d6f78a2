package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScaffold writes the provider template under new names and checks
// what a plugin author gets; bad names, kinds and places are refused.
func TestScaffold(t *testing.T) {
	sdk, err := filepath.Abs("../../../sdk")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		s       scaffold
		wantErr string
		want    map[string][]string // file → substrings
	}{
		{
			name: "replace to a local sdk",
			s:    scaffold{kind: "provider", name: "acme_eu", sdkReplace: sdk},
			want: map[string][]string{
				"go.mod": {"module example.com/llmproxy-provider-acme_eu\n", "require github.com/llmproxy/llmproxy/sdk " + placeholderVersion,
					"replace github.com/llmproxy/llmproxy/sdk => " + sdk},
				"main.go":      {`Name: "acme_eu"`, "Command llmproxy-provider-acme_eu "},
				"main_test.go": {"sdktest.RunProvider"},
			},
		},
		{
			name: "released sdk and own module path",
			s:    scaffold{kind: "provider", name: "acme", module: "git.example.org/ai/acme", sdkVersion: "v1.4.0"},
			want: map[string][]string{"go.mod": {"module git.example.org/ai/acme\n", "require github.com/llmproxy/llmproxy/sdk v1.4.0\n"}},
		},
		{name: "upper case", s: scaffold{kind: "provider", name: "Acme", sdkVersion: "v1.0.0"}, wantErr: "lower-case"},
		{name: "path in the name", s: scaffold{kind: "provider", name: "../acme", sdkVersion: "v1.0.0"}, wantErr: "lower-case"},
		{name: "no such kind", s: scaffold{kind: "gizmo", name: "acme", sdkVersion: "v1.0.0"}, wantErr: `no template for plugin kind "gizmo"`},
		{name: "no sdk to require", s: scaffold{kind: "provider", name: "acme"}, wantErr: "-sdk-version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.dir = filepath.Join(t.TempDir(), "plugin")
			err := tt.s.write()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for file, subs := range tt.want {
				b, err := os.ReadFile(filepath.Join(tt.s.dir, file))
				if err != nil {
					t.Fatal(err)
				}
				for _, sub := range subs {
					if !strings.Contains(string(b), sub) {
						t.Errorf("%s lacks %q:\n%s", file, sub, b)
					}
				}
				if strings.Contains(string(b), `"template"`) {
					t.Errorf("%s still names the template:\n%s", file, b)
				}
			}
		})
	}
}

// TestScaffoldKeepsExistingWork: a directory that holds files is not
// written into.
func TestScaffoldKeepsExistingWork(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := scaffold{kind: "provider", name: "acme", dir: dir, sdkVersion: "v1.0.0"}
	if err := s.write(); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "main.go")); string(b) != "package main\n" {
		t.Errorf("main.go was overwritten: %s", b)
	}
}
