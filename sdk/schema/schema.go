// Package schema describes a plugin's configuration to the host and
// carries back what is wrong with it.
//
// A plugin returns a Schema from Describe. The host decodes the instance's
// HCL config block against it (so type errors point at file:line:column
// before the plugin sees anything) and sends the result to Configure as
// JSON. Configure answers with Diagnostics whose Path names an attribute,
// which the host maps back to a source position in the config file.
package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Schema is the shape of a config block: its attributes and nested blocks.
type Schema struct {
	Attributes []Attribute
	Blocks     []Block
}

// Attribute is one attribute of a config block.
type Attribute struct {
	Name string
	// Type is an HCL type expression: "string", "number", "bool",
	// "list(string)", "map(string)", "object({...})" or "any".
	Type        string
	Description string
	Required    bool
	// Sensitive values are redacted in logs and diagnostics.
	Sensitive bool
}

// Nesting says how often a nested block may appear.
type Nesting string

// Nesting modes.
const (
	NestingSingle Nesting = "single"
	NestingList   Nesting = "list"
	NestingMap    Nesting = "map"
)

// Block is a nested block type.
type Block struct {
	Name        string
	Nesting     Nesting
	Schema      Schema
	Description string
}

// Credential is a secret an instance needs. The host resolves it through
// the instance's credential strategies and hands it to Configure.
type Credential struct {
	Name        string
	Description string
	Required    bool
}

// Diagnostic is one problem with an instance's configuration.
type Diagnostic struct {
	// Warning marks a diagnostic that does not stop the instance.
	Warning bool
	Summary string
	Detail  string
	// Path names the attribute, e.g. []string{"base_url"}.
	Path []string
}

// Diagnostics is a list of problems. It is an error when it holds at least
// one error-severity Diagnostic.
type Diagnostics []Diagnostic

// Error implements error.
func (d Diagnostics) Error() string {
	var b strings.Builder
	for i, x := range d {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(x.Path) > 0 {
			fmt.Fprintf(&b, "%s: ", strings.Join(x.Path, "."))
		}
		b.WriteString(x.Summary)
		if x.Detail != "" {
			b.WriteString(": ")
			b.WriteString(x.Detail)
		}
	}
	return b.String()
}

// HasErrors reports whether any Diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if !x.Warning {
			return true
		}
	}
	return false
}

// Duration reads the optional duration attribute named path of a
// configuration: empty gives def; a positive Go duration ("30s", "5m") is
// returned; anything else adds an error Diagnostic about the attribute to
// d and gives def.
func (d *Diagnostics) Duration(path, value string, def time.Duration) time.Duration {
	if value == "" {
		return def
	}
	v, err := time.ParseDuration(value)
	if err != nil || v <= 0 {
		*d = append(*d, Diagnostic{Summary: path + " must be a positive Go duration", Path: []string{path}})
		return def
	}
	return v
}

// Errorf returns a one-element Diagnostics about the attribute at path.
func Errorf(path []string, format string, args ...any) Diagnostics {
	return Diagnostics{{Summary: fmt.Sprintf(format, args...), Path: path}}
}

// Config is an instance's configuration as a plugin's Configure receives
// it.
type Config struct {
	// Instance is the configured instance name, e.g. "openai_prod".
	Instance string
	// JSON is the config block, decoded against the schema, as a JSON
	// object.
	JSON []byte
	// Credentials are the secrets the host resolved, by credential name.
	Credentials map[string]string
	// Settings carries host settings a plugin may honour, e.g.
	// "public_url" (the host's externally visible base URL) and
	// "log_level".
	Settings map[string]string
}

// Decode unmarshals the config block into v. A malformed block is
// reported as Diagnostics.
func (c *Config) Decode(v any) error {
	if len(c.JSON) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.JSON, v); err != nil {
		return Diagnostics{{Summary: "invalid config", Detail: err.Error()}}
	}
	return nil
}
