package plugins

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// TestWorkloadIdentityEnvironment checks that an instance with auth =
// "workload_identity" gets its cloud's identity variables and nothing else
// of the host's environment, and that other instances get none.
func TestWorkloadIdentityEnvironment(t *testing.T) {
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/llmproxy")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "host-secret-never-forwarded")
	t.Setenv("AZURE_CLIENT_ID", "azure-client")
	t.Setenv("OPENAI_API_KEY", "sk-never-forwarded")
	src := `
provider "wi" {
  type = "bedrock"
  config {
    region = "us-east-1"
    auth   = "workload_identity"
  }
}
provider "keys" {
  type = "bedrock"
  config { region = "us-east-1" }
}
provider "dynamic" {
  type = "bedrock"
  config { auth = env("NO_SUCH_VARIABLE_HERE", "workload_identity") }
}
`
	f, diags := config.Parse([]byte(src), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	opts := &Options{Logger: hclog.NewNullLogger(), Settings: map[string]string{}}
	env := func(i int) string {
		return strings.Join(newInstance(f.Providers[i], providerDriver{}, opts).environment(), "\n")
	}
	wi, keys, dyn := env(0), env(1), env(2)
	for _, want := range []string{"AWS_ROLE_ARN=arn:aws:iam::1:role/llmproxy", "AWS_WEB_IDENTITY_TOKEN_FILE="} {
		if !strings.Contains(wi, want) || !strings.Contains(dyn, want) {
			t.Errorf("workload-identity environment lacks %s:\n%s", want, wi)
		}
	}
	for _, never := range []string{"AWS_SECRET_ACCESS_KEY", "AZURE_CLIENT_ID", "OPENAI_API_KEY"} {
		if strings.Contains(wi, never) {
			t.Errorf("workload-identity environment leaks %s", never)
		}
	}
	if strings.Contains(keys, "AWS_") {
		t.Errorf("an instance without workload identity got AWS variables:\n%s", keys)
	}
	if !f.UsesWorkloadIdentity() {
		t.Error("UsesWorkloadIdentity = false")
	}
	if got := []string{f.Providers[0].Auth(), f.Providers[1].Auth()}; !slices.Equal(got, []string{"workload_identity", ""}) {
		t.Errorf("Auth() = %q", got)
	}
}
