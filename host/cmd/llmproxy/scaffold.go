package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/sdk/template"
)

// sdkModule is the module path of the plugin SDK.
const sdkModule = "github.com/llmproxy/llmproxy/sdk"

// placeholderVersion is the version a module requires of the SDK when a
// replace directive points at a local copy: any version does, and this
// one says that none is meant.
const placeholderVersion = "v0.0.0-00010101000000-000000000000"

// pluginType is what a plugin type may look like: it becomes part of a
// file name and the value of `type = "..."` in HCL.
var pluginType = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// scaffold is what `plugins new` makes.
type scaffold struct {
	kind, name string
	// dir is the new module's directory; it must not exist or be empty.
	dir string
	// module is the new module's path.
	module string
	// sdkReplace, when set, is the absolute path of a local SDK directory
	// the new module's go.mod replaces the SDK with; sdkRelative says the
	// user named it relatively, and go.mod then does too.
	sdkReplace  string
	sdkRelative bool
	// sdkVersion is the SDK version to require without sdkReplace.
	sdkVersion string
}

func runPluginsNew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("llmproxy plugins new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of the new module (default ./llmproxy-<kind>-<name>)")
	module := fs.String("module", "", "module path of the new module (default example.com/llmproxy-<kind>-<name>)")
	sdkReplace := fs.String("sdk-replace", "", "a local SDK directory (relative to the working directory) to build against with a replace directive")
	sdkVersion := fs.String("sdk-version", "", "SDK version to require (default: the one this llmproxy was built with)")
	noTidy := fs.Bool("no-tidy", false, "do not run `go mod tidy` in the new module")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "usage: llmproxy plugins new <kind> <name> [-dir D] [-module M] [-sdk-replace ../sdk] (kinds: %s)\n", strings.Join(template.Kinds(), ", "))
		return 2
	}
	s := scaffold{kind: pos[0], name: pos[1], dir: *dir, module: *module, sdkVersion: *sdkVersion}
	if *sdkReplace != "" {
		abs, err := filepath.Abs(*sdkReplace)
		if err != nil {
			fmt.Fprintln(stderr, "llmproxy plugins new:", err)
			return 2
		}
		s.sdkReplace, s.sdkRelative = abs, !filepath.IsAbs(*sdkReplace)
	}
	if err := s.write(); err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins new:", err)
		return 1
	}
	bin := plugins.BinaryName(s.kind, s.name)
	fmt.Fprintf(stdout, "created %s: module %s, plugin %s\n", s.dir, s.module, bin)
	if !*noTidy {
		if err := goModTidy(s.dir, stderr); err != nil {
			fmt.Fprintf(stderr, "llmproxy plugins new: %v\nrun `go mod tidy` in %s once it can succeed\n", err, s.dir)
			return 1
		}
	}
	fmt.Fprintf(stdout, "next:\n  cd %s\n  go test ./...\n  go build -o <plugins dir>/%s .\n", s.dir, bin)
	return 0
}

// write creates the module: the kind's template with its name replaced,
// and a go.mod.
func (s *scaffold) write() error {
	if !pluginType.MatchString(s.name) {
		return fmt.Errorf("plugin name %q: use lower-case letters and digits, words joined by _ (e.g. acme or acme_eu)", s.name)
	}
	files, err := template.Files(s.kind)
	if err != nil {
		return err
	}
	bin := plugins.BinaryName(s.kind, s.name)
	if s.dir == "" {
		s.dir = bin
	}
	if s.module == "" {
		s.module = "example.com/" + bin
	}
	if s.sdkReplace == "" && s.sdkVersion == "" {
		s.sdkVersion = builtSDKVersion()
		if s.sdkVersion == "" {
			return errors.New("this llmproxy was built from a source tree, so there is no SDK release to require: " +
				"pass -sdk-version vX.Y.Z, or -sdk-replace with the path of the SDK in that tree")
		}
	}
	if entries, err := os.ReadDir(s.dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", s.dir)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	for name, src := range files {
		out, err := s.rename(name, src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.dir, name), out, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(s.dir, "go.mod"), s.goMod(), 0o644)
}

// rename gives the template's plugin its new name. The main file must
// carry the template's name, so that a template that changes shape fails
// here rather than producing a plugin with the wrong name.
func (s *scaffold) rename(file string, src []byte) ([]byte, error) {
	oldName := `Name: "template"`
	if file == "main.go" && !bytes.Contains(src, []byte(oldName)) {
		return nil, fmt.Errorf("template %s/main.go does not set %s", s.kind, oldName)
	}
	out := bytes.ReplaceAll(src, []byte(oldName), []byte(`Name: "`+s.name+`"`))
	return bytes.ReplaceAll(out, []byte(plugins.BinaryName(s.kind, "template")), []byte(plugins.BinaryName(s.kind, s.name))), nil
}

// goMod returns the new module's go.mod.
func (s *scaffold) goMod() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "module %s\n\ngo %s\n\n", s.module, goVersion())
	if s.sdkReplace != "" {
		rel := s.sdkReplace
		if absDir, err := filepath.Abs(s.dir); err == nil && s.sdkRelative {
			if r, err := filepath.Rel(absDir, s.sdkReplace); err == nil {
				rel = r
				if !strings.HasPrefix(rel, ".") {
					rel = "./" + rel
				}
			}
		}
		fmt.Fprintf(&b, "require %s %s\n\nreplace %s => %s\n", sdkModule, placeholderVersion, sdkModule, filepath.ToSlash(rel))
	} else {
		fmt.Fprintf(&b, "require %s %s\n", sdkModule, s.sdkVersion)
	}
	return b.Bytes()
}

// builtSDKVersion is the released SDK version this binary was built with,
// or "" when it was built against a local copy.
func builtSDKVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == sdkModule && d.Replace == nil && d.Version != placeholderVersion && d.Version != "(devel)" {
			return d.Version
		}
	}
	return ""
}

// goVersion is the language version for the new go.mod: the one this
// binary was built with, without its patch level.
func goVersion() string {
	v := "1.26"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if m := regexp.MustCompile(`^go(\d+\.\d+)`).FindStringSubmatch(bi.GoVersion); m != nil {
			v = m[1]
		}
	}
	return v + ".0"
}

// goModTidy completes the new module's requirements and go.sum. It runs
// outside any Go workspace, as the module will be built on its own.
func goModTidy(dir string, stderr io.Writer) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return errors.New("the go command is not on PATH")
	}
	cmd := exec.Command(goBin, "mod", "tidy")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod tidy: %w", err)
	}
	return nil
}
