package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/plugins/provider-oci/ocifake"
	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	"github.com/llmproxy/llmproxy/sdk/sdktest/identityfake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// fakePod writes the files a pod on EKS sees under root: the Kubernetes
// service account and the IRSA web identity token.
func fakePod(t *testing.T, root, irsaToken string) (tokenFile string) {
	t.Helper()
	files := map[string]string{
		"/var/run/secrets/kubernetes.io/serviceaccount/token":     "eyJhbGciOiJSUzI1NiJ9.k8s-sa.sig",
		"/var/run/secrets/kubernetes.io/serviceaccount/namespace": "llm",
		"/var/run/secrets/eks.amazonaws.com/serviceaccount/token": irsaToken,
	}
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(root, "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
}

// TestWorkloadIdentityOnEKS runs the host as if in an EKS pod: platform
// detection reads the fake pod filesystem and probes a metadata service
// (the identity fake answering IMDSv2), reports EKS in its start line and
// in /readyz; the Bedrock instance with auth = "workload_identity" gets
// only the AWS identity variables, exchanges the IRSA token at the fake
// STS, and the fake Bedrock verifies SigV4 with the issued temporary keys.
// A Vertex instance beside it takes its token from a GKE-style metadata
// server. Static keys in the host's environment never reach a plugin.
func TestWorkloadIdentityOnEKS(t *testing.T) {
	const irsa = "eyJhbGciOiJSUzI1NiJ9.irsa-e2e.sig"
	const role = "arn:aws:iam::111122223333:role/llmproxy-e2e"
	id := identityfake.New(identityfake.Options{WebIdentityToken: irsa, RoleARN: role, GoogleProject: vertexfake.DefaultProject})
	t.Cleanup(id.Close)
	bedrock := bedrockfake.New(bedrockfake.Options{Region: "us-east-1", Keys: id.AWSKeys})
	if err := bedrock.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bedrock.Close)
	vertex := vertexfake.New(vertexfake.Options{AcceptToken: id.Issued})
	if err := vertex.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vertex.Close() })

	root := t.TempDir()
	tokenFile := fakePod(t, root, irsa)
	const hostSecret = "host-static-secret-never-forwarded"
	hcl := harness.APIKeyBlock + fmt.Sprintf(`
provider "bedrock_wi" {
  type = "bedrock"
  config {
    region   = "us-east-1"
    endpoint = %q
    auth     = "workload_identity"
  }
}
provider "vertex_wi" {
  type = "vertex"
  config {
    project  = %q
    location = %q
    endpoint = %q
    auth     = "workload_identity"
  }
}
route "anthropic.claude-3-haiku-20240307-v1:0" {
  target "bedrock_wi" {}
}
route "gemini-2.5-flash" {
  target "vertex_wi" {}
}
`, bedrock.URL(), vertex.Project(), vertex.Location(), vertex.URL())
	h := harness.Start(t, hcl, harness.Options{
		Server:  `platform = "probe"`,
		WaitFor: []string{"bedrock_wi", "vertex_wi"},
		Env: []string{
			"LLMPROXY_PLATFORM_ROOT=" + root,
			"LLMPROXY_PLATFORM_METADATA_URL=" + id.URL(),
			"KUBERNETES_SERVICE_HOST=10.100.0.1", "KUBERNETES_SERVICE_PORT=443",
			"AWS_ROLE_ARN=" + role, "AWS_WEB_IDENTITY_TOKEN_FILE=" + tokenFile, "AWS_ENDPOINT_URL_STS=" + id.URL(),
			"AWS_EC2_METADATA_DISABLED=true",
			"GCE_METADATA_HOST=" + id.Host(), "HOME=" + t.TempDir(),
			// Static keys in the host's environment: forwarded, they
			// would make the workload-identity instance refuse to start.
			"AWS_ACCESS_KEY_ID=AKIDHOSTSTATIC", "AWS_SECRET_ACCESS_KEY=" + hostSecret,
		},
	})

	for _, model := range []string{"anthropic.claude-3-haiku-20240307-v1:0", "gemini-2.5-flash"} {
		status, _, body := h.Do(t, http.MethodPost, "/v1/chat/completions", spineChatBody(model, "hello", false))
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", model, status, body)
		}
	}
	if got := bedrock.LastRequest().Header.Get("Authorization"); !strings.Contains(got, "Credential=ASIAWEB") {
		t.Fatalf("Bedrock was signed with %q, want keys from AssumeRoleWithWebIdentity", got)
	}
	if id.Calls("sts") != 1 || id.Calls("gce") != 1 {
		t.Fatalf("STS answered %d, the metadata server %d token requests; want 1 each", id.Calls("sts"), id.Calls("gce"))
	}

	// The start line and the admin detail of /readyz.
	logs := h.Logs()
	// The identity fake answers both as EC2's IMDSv2 and as a GCE
	// metadata server.
	if !strings.Contains(logs, "platform: kubernetes (namespace llm); platform eks,gke; identities aws/irsa,gcp/gke_metadata,aws/instance_metadata,gcp/instance_metadata; metadata aws,gcp (") {
		t.Errorf("no platform line as expected in the log:\n%s", grepLines(logs, "platform"))
	}
	status, _, body := h.Do(t, http.MethodGet, "/readyz", "")
	var ready struct {
		Platform struct {
			Kubernetes struct {
				Namespace string `json:"namespace"`
				APIServer string `json:"api_server"`
			} `json:"kubernetes"`
			Platforms []string `json:"platforms"`
			Metadata  []string `json:"metadata"`
			Probed    bool     `json:"probed"`
		} `json:"platform"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || status != http.StatusOK {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	p := ready.Platform
	if p.Kubernetes.Namespace != "llm" || p.Kubernetes.APIServer != "10.100.0.1:443" || !slices.Equal(p.Platforms, []string{"eks", "gke"}) ||
		!slices.Equal(p.Metadata, []string{"aws", "gcp"}) || !p.Probed {
		t.Errorf("/readyz platform = %+v", p)
	}

	// What each plugin process was given.
	procs := h.PluginProcs(t)
	env, err := harness.Environ(procs["bedrock_wi"].PID)
	if err != nil {
		t.Fatal(err)
	}
	if env["AWS_ROLE_ARN"] != role || env["AWS_WEB_IDENTITY_TOKEN_FILE"] != tokenFile {
		t.Errorf("bedrock plugin environment lacks the IRSA variables: %v", env)
	}
	for k := range env {
		if k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY" || k == "GCE_METADATA_HOST" {
			t.Errorf("bedrock plugin got %s", k)
		}
	}
	if strings.Contains(logs, hostSecret) || strings.Contains(logs, irsa) {
		t.Error("a secret appears in the host log")
	}
}

// TestWorkloadIdentityOnAKS runs an Azure OpenAI instance with auth =
// "workload_identity" as the AKS webhook sets a pod up: the host forwards
// AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
// AZURE_AUTHORITY_HOST; the plugin's azidentity exchanges the projected
// token at an https Entra fake (trusted through the instance's
// SSL_CERT_FILE), which checks the assertion, client and tenant; the Azure
// OpenAI fake accepts only the token Entra issued.
func TestWorkloadIdentityOnAKS(t *testing.T) {
	const saToken = "eyJhbGciOiJSUzI1NiJ9.aks-e2e.sig"
	const tenant, client = "72f988bf-0000-4000-8000-2d7cd011db47", "llmproxy-aks-app"
	id := identityfake.New(identityfake.Options{WebIdentityToken: saToken, AzureTenant: tenant, AzureClientID: client})
	t.Cleanup(id.Close)
	az := azurefake.New(azurefake.Options{AcceptToken: id.Issued}).Start()
	t.Cleanup(az.Close)

	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "azure-identity-token"), filepath.Join(dir, "entra-ca.pem")
	if err := os.WriteFile(tokenFile, []byte(saToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, id.TLSCertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	hcl := harness.APIKeyBlock + fmt.Sprintf(`
provider "azure_aks" {
  type = "azure"
  env  = { SSL_CERT_FILE = %q }
  config {
    endpoint = %q
    auth     = "workload_identity"
  }
}
route "gpt-4o" {
  target "azure_aks" {}
}
`, caFile, az.URL())
	h := harness.Start(t, hcl, harness.Options{
		WaitFor: []string{"azure_aks"},
		Env: []string{"AZURE_FEDERATED_TOKEN_FILE=" + tokenFile, "AZURE_CLIENT_ID=" + client, "AZURE_TENANT_ID=" + tenant,
			"AZURE_AUTHORITY_HOST=" + id.TLSURL(), "AZURE_CLIENT_SECRET=host-secret-never-forwarded"},
	})
	for i := range 3 {
		status, _, body := h.Do(t, http.MethodPost, "/v1/chat/completions", spineChatBody("gpt-4o", fmt.Sprint("hello ", i), i == 1))
		if status != http.StatusOK || strings.Contains(string(body), `"error"`) {
			t.Fatalf("chat %d: status %d: %s", i, status, body)
		}
	}
	if id.Calls("entra") != 1 {
		t.Fatalf("Entra issued %d tokens for 3 requests, want 1 (cached)", id.Calls("entra"))
	}
	env, err := harness.Environ(h.PluginProcs(t)["azure_aks"].PID)
	if err != nil {
		t.Fatal(err)
	}
	if env["AZURE_FEDERATED_TOKEN_FILE"] != tokenFile || env["AZURE_CLIENT_ID"] != client {
		t.Errorf("plugin environment lacks the AKS variables: %v", env)
	}
	if _, ok := env["AZURE_CLIENT_SECRET"]; ok {
		t.Error("the plugin got AZURE_CLIENT_SECRET")
	}
	if strings.Contains(h.Logs(), saToken) {
		t.Error("the federated token appears in the host log")
	}
}

// TestOCIResourcePrincipalThroughHost runs an OCI instance with auth =
// "resource_principal" (v2.2, as OCI Functions and OKE set it up) without
// inherit_env: the host forwards the OCI_RESOURCE_PRINCIPAL_* variables,
// oci-go-sdk reads the RPST and its session key from the files they name,
// and ocifake verifies the request signature made with that key under
// keyId "ST$<rpst>".
func TestOCIResourcePrincipalThroughHost(t *testing.T) {
	f := ocifake.New(ocifake.Options{Key: ociTestKey(t)})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	rpst := seg(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." +
		seg(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "res_tenant": ocifake.DefaultTenancy,
			"res_compartment": f.Compartment(), "res_type": "fnfunc"}) + "." + base64.RawURLEncoding.EncodeToString([]byte("sig"))
	f.TrustKey("ST$"+rpst, f.Key().Public)
	dir := t.TempDir()
	rpstFile, pemFile := filepath.Join(dir, "rpst"), filepath.Join(dir, "private.pem")
	if err := os.WriteFile(rpstFile, []byte(rpst), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pemFile, []byte(f.Key().PrivatePEM), 0o600); err != nil {
		t.Fatal(err)
	}
	hcl := harness.APIKeyBlock + fmt.Sprintf(`
provider "oci_rp" {
  type = "oci"
  config {
    auth           = "resource_principal"
    endpoint       = %q
    compartment_id = %q
  }
}
route "meta.*" {
  target "oci_rp" {}
}
`, f.URL(), f.Compartment())
	h := harness.Start(t, hcl, harness.Options{WaitFor: []string{"oci_rp"}, Env: []string{
		"OCI_RESOURCE_PRINCIPAL_VERSION=2.2", "OCI_RESOURCE_PRINCIPAL_RPST=" + rpstFile,
		"OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM=" + pemFile, "OCI_RESOURCE_PRINCIPAL_REGION=us-chicago-1",
	}})
	status, _, body := h.Do(t, http.MethodPost, "/v1/chat/completions", spineChatBody(ociGenericModel, "hello", false))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if auth := f.LastRequest().Header.Get("Authorization"); !strings.Contains(auth, `keyId="ST$`+rpst+`"`) {
		t.Fatalf("OCI saw Authorization %q, want the resource principal's session token", auth)
	}
}
