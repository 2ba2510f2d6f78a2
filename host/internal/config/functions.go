package config

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// EvalContext returns the functions config expressions may call:
// env(name[, default]) reads an environment variable (an error when unset
// and no default is given) and file(path) reads a file relative to
// baseDir, trimming one trailing newline.
func EvalContext(baseDir string) *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{
		"env":  envFunc,
		"file": fileFunc(baseDir),
	}}
}

var envFunc = function.New(&function.Spec{
	Description: "Reads an environment variable.",
	Params:      []function.Parameter{{Name: "name", Type: cty.String}},
	VarParam:    &function.Parameter{Name: "default", Type: cty.String},
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		name := args[0].AsString()
		if v, ok := os.LookupEnv(name); ok {
			return cty.StringVal(v), nil
		}
		if len(args) > 1 {
			return args[1], nil
		}
		return cty.NilVal, function.NewArgErrorf(0, "environment variable %s is not set; set it or give a default: env(%q, \"...\")", name, name)
	},
})

func fileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Description: "Reads a file.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(baseDir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, function.NewArgErrorf(0, "cannot read %s: %v", p, err)
			}
			return cty.StringVal(strings.TrimSuffix(string(b), "\n")), nil
		},
	})
}
