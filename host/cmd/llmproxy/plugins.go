package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// runPlugins is the plugins command: new, list, describe and verify.
func runPlugins(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "llmproxy plugins: want a command: new, list, describe or verify")
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "new":
		return runPluginsNew(args[1:], stdout, stderr)
	case "list":
		return runPluginsList(args[1:], stdout, stderr)
	case "describe":
		return runPluginsDescribe(args[1:], stdout, stderr)
	case "verify":
		return runPluginsVerify(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "llmproxy plugins: unknown command %q (want new, list, describe or verify)\n", args[0])
	return 2
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, as in `plugins new provider acme -dir x`, and
// returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// pluginsDirFlags adds the flags that say where the plugins are: the
// plugins dir of the config (the embedded default's without -config), or
// -plugins-dir, relative to the working directory.
func pluginsDirFlags(fs *flag.FlagSet) func() (string, *config.File, error) {
	configPath := fs.String("config", os.Getenv("LLMPROXY_CONFIG"), "HCL config file whose plugins dir and plugin pins to use")
	dir := fs.String("plugins-dir", "", "plugins directory, overriding the config's (relative to the working directory)")
	return func() (string, *config.File, error) {
		cfg, _, diags := loadConfig(*configPath, *dir)
		if diags.HasErrors() {
			return "", nil, fmt.Errorf("config: %w", diags)
		}
		return cfg.Server.PluginsDir, cfg, nil
	}
}

// installed is a plugin binary found in the plugins dir.
type installed struct {
	file, kind, typ, path string
}

// installedPlugins lists the plugin binaries in dir, sorted by file name.
func installedPlugins(dir string) ([]installed, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("plugins dir %s does not exist (build the plugins with `make build`, or pass -plugins-dir)", dir)
	}
	var out []installed
	for _, file := range plugins.Installed(dir) {
		kind, typ, ok := strings.Cut(strings.TrimPrefix(file, plugins.BinaryPrefix), "-")
		if !ok || typ == "" {
			continue
		}
		out = append(out, installed{file: file, kind: kind, typ: typ, path: filepath.Join(dir, file)})
	}
	slices.SortFunc(out, func(a, b installed) int { return strings.Compare(a.file, b.file) })
	return out, nil
}

// inspectTimeout bounds starting and asking one plugin.
const inspectTimeout = 30 * time.Second

func runPluginsList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("llmproxy plugins list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	where := pluginsDirFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	dir, _, err := where()
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins list:", err)
		return 2
	}
	found, err := installedPlugins(dir)
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins list:", err)
		return 1
	}
	fmt.Fprintf(stdout, "plugins in %s\n\n", dir)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tPROTOCOL\tCAPABILITIES\tSHA256")
	failed := 0
	for _, p := range found {
		sum, _ := plugins.FileSHA256(p.path)
		ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
		d, err := plugins.Describe(ctx, p.kind, p.path, nil)
		cancel()
		if errors.Is(err, plugins.ErrNoClient) {
			// Started and handshaken; only its description is unknown.
			fmt.Fprintf(tw, "%s\t%s\t-\tv%d\t-\t%s\n", p.typ, p.kind, d.Protocol, sum)
			continue
		}
		if err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t%s\n", p.typ, p.kind, sum)
			fmt.Fprintf(stderr, "%s: %v\n", p.file, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tv%d\t%s\t%s\n", p.typ, p.kind, d.Version, d.Protocol, strings.Join(d.Capabilities, ","), sum)
	}
	tw.Flush()
	if failed > 0 {
		fmt.Fprintf(stderr, "%d plugin(s) could not be described; `llmproxy plugins verify` says more\n", failed)
		return 1
	}
	return 0
}

func runPluginsDescribe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("llmproxy plugins describe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	where := pluginsDirFlags(fs)
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "usage: llmproxy plugins describe <name> (e.g. openai, provider-openai or llmproxy-provider-openai)")
		return 2
	}
	dir, _, err := where()
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins describe:", err)
		return 2
	}
	found, err := installedPlugins(dir)
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins describe:", err)
		return 1
	}
	p, err := pickPlugin(found, names[0])
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins describe:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	d, err := plugins.Describe(ctx, p.kind, p.path, nil)
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins describe:", err)
		return 1
	}
	sum, _ := plugins.FileSHA256(p.path)
	fmt.Fprintf(stdout, "%s %s (%s %q, protocol v%d)\n", p.file, d.Version, p.kind, d.Name, d.Protocol)
	fmt.Fprintf(stdout, "path:         %s\nsha256:       %s\ncapabilities: %s\n", p.path, sum, strings.Join(d.Capabilities, ", "))

	fmt.Fprintf(stdout, "\nconfig {} block of a %s with type = %q:\n", p.kind, p.typ)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ATTRIBUTE\tTYPE\tREQUIRED\tDESCRIPTION")
	n := writeSchema(tw, "", d.Schema)
	tw.Flush()
	if n == 0 {
		fmt.Fprintln(stdout, "  (none: the plugin takes no config block)")
	}

	fmt.Fprintln(stdout, "\ncredentials (credential \"<name>\" { from ... } blocks):")
	if len(d.Credentials) == 0 {
		fmt.Fprintln(stdout, "  (none)")
		return 0
	}
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tREQUIRED\tDESCRIPTION")
	for _, c := range d.Credentials {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, yesNo(c.Required), oneLine(c.Description))
	}
	tw.Flush()
	return 0
}

// pickPlugin finds the plugin a user named by type ("openai"), kind and
// type ("provider-openai") or file name.
func pickPlugin(found []installed, name string) (installed, error) {
	name = strings.TrimPrefix(name, plugins.BinaryPrefix)
	var match []installed
	for _, p := range found {
		if name == p.kind+"-"+p.typ || name == p.typ {
			match = append(match, p)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		var have []string
		for _, p := range found {
			have = append(have, p.kind+"-"+p.typ)
		}
		return installed{}, fmt.Errorf("no plugin %q installed (have %s)", name, strings.Join(have, ", "))
	}
	return installed{}, fmt.Errorf("%q names several plugins; say which, e.g. %s-%s", name, match[0].kind, match[0].typ)
}

// writeSchema writes one row per attribute, nested blocks' attributes
// under their block's name, and returns the number of rows.
func writeSchema(w io.Writer, prefix string, s schema.Schema) int {
	n := 0
	for _, a := range s.Attributes {
		fmt.Fprintf(w, "  %s%s\t%s\t%s\t%s\n", prefix, a.Name, a.Type, yesNo(a.Required), oneLine(a.Description))
		n++
	}
	for _, b := range s.Blocks {
		fmt.Fprintf(w, "  %s%s { }\tblock (%s)\t\t%s\n", prefix, b.Name, b.Nesting, oneLine(b.Description))
		n += 1 + writeSchema(w, prefix+b.Name+".", b.Schema)
	}
	return n
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func runPluginsVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("llmproxy plugins verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	where := pluginsDirFlags(fs)
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	dir, cfg, err := where()
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins verify:", err)
		return 2
	}
	found, err := installedPlugins(dir)
	if err != nil {
		fmt.Fprintln(stderr, "llmproxy plugins verify:", err)
		return 1
	}
	if len(names) > 0 {
		var picked []installed
		for _, n := range names {
			p, err := pickPlugin(found, n)
			if err != nil {
				fmt.Fprintln(stderr, "llmproxy plugins verify:", err)
				return 1
			}
			picked = append(picked, p)
		}
		found = picked
	}
	pins := map[string]string{}
	for _, p := range cfg.Plugins {
		pins[p.Name] = strings.ToLower(p.SHA256)
	}
	failed := 0
	for _, p := range found {
		ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
		d, steps, err := plugins.SelfCheck(ctx, p.kind, p.path, nil)
		cancel()
		if err == nil && d.Name != "" && d.Name != p.typ {
			err = fmt.Errorf("the binary is named for %q but describes itself as %q; instances of type %q would run a different plugin", p.typ, d.Name, p.typ)
		}
		if pin := pins[p.kind+"-"+p.typ]; err == nil && pin != "" {
			if sum, _ := plugins.FileSHA256(p.path); sum != pin {
				err = fmt.Errorf("sha256 %s does not match the pin %s in the config", sum, pin)
			} else {
				steps = append(steps, "sha256 pin")
			}
		}
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL  %s: %v\n", p.file, err)
			continue
		}
		fmt.Fprintf(stdout, "ok    %s %s(protocol v%d): %s\n", p.file, versionSpace(d.Version), d.Protocol, strings.Join(steps, ", "))
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d plugin(s) failed\n", failed, len(found))
		return 1
	}
	fmt.Fprintf(stdout, "%d plugin(s) ok\n", len(found))
	return 0
}

// versionSpace is v followed by a space, or nothing when v is unknown.
func versionSpace(v string) string {
	if v == "" {
		return ""
	}
	return v + " "
}

// flagExit is the exit code for a flag parse error: 0 for -h, else 2.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
