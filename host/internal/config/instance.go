package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Spec turns a plugin's schema into an hcldec spec.
func Spec(s schema.Schema) (hcldec.ObjectSpec, error) {
	spec := hcldec.ObjectSpec{}
	for _, a := range s.Attributes {
		expr, diags := hclsyntax.ParseExpression([]byte(a.Type), "schema", hcl.InitialPos)
		if diags.HasErrors() {
			return nil, fmt.Errorf("attribute %s: type %q: %s", a.Name, a.Type, diags.Error())
		}
		ty, diags := typeexpr.TypeConstraint(expr)
		if diags.HasErrors() {
			return nil, fmt.Errorf("attribute %s: type %q: %s", a.Name, a.Type, diags.Error())
		}
		spec[a.Name] = &hcldec.AttrSpec{Name: a.Name, Type: ty, Required: a.Required}
	}
	for _, b := range s.Blocks {
		nested, err := Spec(b.Schema)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", b.Name, err)
		}
		switch b.Nesting {
		case schema.NestingSingle, "":
			spec[b.Name] = &hcldec.BlockSpec{TypeName: b.Name, Nested: nested}
		case schema.NestingList:
			spec[b.Name] = &hcldec.BlockListSpec{TypeName: b.Name, Nested: nested}
		case schema.NestingMap:
			spec[b.Name] = &hcldec.BlockMapSpec{TypeName: b.Name, LabelNames: []string{"name"}, Nested: nested}
		default:
			return nil, fmt.Errorf("block %s: unknown nesting %q", b.Name, b.Nesting)
		}
	}
	return spec, nil
}

// DecodeInstance decodes an instance's config block against the plugin's
// schema and returns it as the JSON object Configure receives.
func DecodeInstance(in *Instance, s schema.Schema, baseDir string) ([]byte, hcl.Diagnostics) {
	spec, err := Spec(s)
	if err != nil {
		return nil, hcl.Diagnostics{errAt(in.DeclRange, "Plugin returned an invalid config schema", err.Error())}
	}
	var body hcl.Body = hcl.EmptyBody()
	if in.Config != nil {
		body = in.Config.Body
	}
	val, diags := hcldec.Decode(body, spec, EvalContext(baseDir))
	if diags.HasErrors() {
		return nil, diags
	}
	if val.IsNull() {
		val = cty.EmptyObjectVal
	}
	out, err := ctyjson.Marshal(val, val.Type())
	if err != nil {
		return nil, hcl.Diagnostics{errAt(in.DeclRange, "Cannot encode config", err.Error())}
	}
	return out, nil
}

// PluginDiagnostics turns the diagnostics a plugin's Configure returned
// into HCL diagnostics pointing at the attribute they name inside the
// instance's config block (or at the block itself).
func PluginDiagnostics(in *Instance, ds schema.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		sev := hcl.DiagError
		if d.Warning {
			sev = hcl.DiagWarning
		}
		subject := in.DeclRange
		if r, ok := attributeRange(in, d.Path); ok {
			subject = r
		}
		summary := d.Summary
		if len(d.Path) > 0 {
			summary = fmt.Sprintf("%s: %s", strings.Join(d.Path, "."), d.Summary)
		}
		out = append(out, &hcl.Diagnostic{
			Severity: sev,
			Summary:  fmt.Sprintf("%s %q: %s", "instance", in.Name, summary),
			Detail:   d.Detail,
			Subject:  &subject,
		})
	}
	return out
}

func attributeRange(in *Instance, path []string) (hcl.Range, bool) {
	if in.Config == nil || len(path) == 0 {
		return hcl.Range{}, false
	}
	body, ok := in.Config.Body.(*hclsyntax.Body)
	if !ok {
		return hcl.Range{}, false
	}
	for i, name := range path {
		if i == len(path)-1 {
			if a, ok := body.Attributes[name]; ok {
				return a.SrcRange, true
			}
		}
		found := false
		for _, b := range body.Blocks {
			if b.Type == name {
				if i == len(path)-1 {
					return b.DefRange(), true
				}
				body, found = b.Body, true
				break
			}
		}
		if !found {
			return body.SrcRange, true
		}
	}
	return hcl.Range{}, false
}
