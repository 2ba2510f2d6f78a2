package config

import (
	"strings"
	"testing"
)

func TestSecretsBlocks(t *testing.T) {
	const vault = `
secrets "vault" {
  type = "vault"
  config {
    address = "http://127.0.0.1:8200"
  }
  credential "token" {
    from "env" { name = "VAULT_TOKEN" }
  }
}
`
	tests := []struct {
		name string
		src  string
		// want is a diagnostic summary and the line it must point at; empty
		// means the config is valid.
		want string
		line int
	}{
		{name: "a source names the block", src: vault + `
provider "openai" {
  type = "openai"
  credential "api_key" {
    from "vault" {
      path  = "secret/data/openai"
      field = "api_key"
    }
    from "env" { name = "OPENAI_API_KEY" }
  }
}
`},
		{name: "unknown backend", src: vault + `
provider "openai" {
  type = "openai"
  credential "api_key" {
    from "kubernetes" {
      secret = "openai"
      key    = "api_key"
    }
  }
}
`, want: "Unknown credential source", line: 15},
		{name: "backend source without a reference", src: vault + `
provider "openai" {
  type = "openai"
  credential "api_key" {
    from "vault" { field = "api_key" }
  }
}
`, want: "Incomplete credential source", line: 15},
		{name: "backend attribute on a built-in source", src: `
provider "openai" {
  type = "openai"
  credential "api_key" {
    from "env" {
      name   = "OPENAI_API_KEY"
      secret = "openai"
    }
  }
}
`, want: "Unexpected attribute in credential source", line: 5},
		{name: "a store reading itself", src: `
secrets "vault" {
  type = "vault"
  credential "token" {
    from "vault" { path = "auth/token" }
  }
}
`, want: "Secrets block reads itself", line: 5},
		{name: "names are shared with instances", src: vault + `
provider "vault" {
  type = "echo"
}
`, want: "Duplicate instance name", line: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse([]byte(tt.src), "test.hcl", t.TempDir())
			if tt.want == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected diagnostics: %v", diags)
				}
				if len(f.Secrets) != 1 || f.Secrets[0].Name != "vault" || f.Secrets[0].Type != "vault" {
					t.Fatalf("secrets blocks: %+v", f.Secrets)
				}
				src := f.Providers[0].Credentials[0].Sources[0]
				if ref := src.Reference(); len(ref) != 1 || ref["path"] != "secret/data/openai" || src.Field != "api_key" || src.Builtin() {
					t.Fatalf("source %+v, reference %v", src, ref)
				}
				return
			}
			for _, d := range diags {
				if strings.Contains(d.Summary, tt.want) {
					if d.Subject == nil || d.Subject.Start.Line != tt.line {
						t.Fatalf("%q at %v; want line %d", d.Summary, d.Subject, tt.line)
					}
					return
				}
			}
			t.Fatalf("diagnostics %v; want %q", diags, tt.want)
		})
	}
}
