package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/secrets-azure-keyvault/kvfake"
	"github.com/llmproxy/llmproxy/plugins/secrets-gcp-secretmanager/smfake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// cloudStore is a cloud secret manager fake as the e2e tests drive it.
type cloudStore struct {
	// rotate stores a new version of the secret.
	rotate func(value string)
	// setDown starts or ends an outage.
	setDown func(bool)
	// secrets are values no log line may hold besides the keys.
	secrets []string
}

// storePoll is the poll interval the tests give the stores: a new
// version must reach the upstream within it (plus one request).
const storePoll = time.Second

// cloudStoreRotationAndOutage runs the scenario shared by the cloud
// secret managers against an OpenAI instance whose key comes from the
// store: under steady load a new secret version reaches the upstream
// within the poll period and nothing fails while the old key is revoked;
// an outage degrades the instance, which keeps serving with the key it
// has, and the store's return makes it ready again without a restart.
func cloudStoreRotationAndOutage(t *testing.T, h *harness.Host, up *rotatingUpstream, store cloudStore, instance, oldKey, newKey string) {
	t.Helper()
	creds := credStatuses(t, h, instance)
	if len(creds) != 1 || creds[0]["rotation"] == "" {
		t.Errorf("/readyz credentials = %v; want api_key from the store, with its rotation", creds)
	}

	stop := make(chan struct{})
	ok, failures, wait := credLoad(h, 4, stop)
	time.Sleep(1500 * time.Millisecond)
	rotated := time.Now()
	store.rotate(newKey)
	var seenAfter time.Duration
	for deadline := time.Now().Add(storePoll + 2*time.Second); ; time.Sleep(20 * time.Millisecond) {
		if at, seen := up.seen(newKey); seen {
			seenAfter = at.Sub(rotated)
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wait()
			t.Fatalf("the upstream has not seen the new key %v after the new version", time.Since(rotated))
		}
	}
	t.Logf("the upstream saw the new key %v after the new version (poll interval %v)", seenAfter, storePoll)
	time.Sleep(300 * time.Millisecond)
	up.accept(newKey)
	time.Sleep(1500 * time.Millisecond)

	// An outage while the load runs: the next poll fails.
	store.setDown(true)
	st := h.WaitInstance(t, instance, "degraded", storePoll+5*time.Second)
	if !strings.Contains(st.Reason, "credential refresh failed") {
		t.Errorf("degraded reason %q; want the failed refresh", st.Reason)
	}
	time.Sleep(1500 * time.Millisecond)
	store.setDown(false)
	back := time.Now()
	h.WaitInstance(t, instance, "ready", 35*time.Second)
	t.Logf("ready %v after the store returned", time.Since(back))
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wait()

	if errs := failures(); len(errs) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(errs), int(ok.Load())+len(errs), errs[0])
	}
	if n := up.rejections(); n > 0 {
		t.Errorf("the upstream rejected %d requests", n)
	}
	t.Logf("%d requests served across the rotation and the outage", ok.Load())
	if ok.Load() < 20 {
		t.Errorf("only %d requests were served; the load did not run", ok.Load())
	}
	if st := spineInstances(t, h)[instance]; st.State != "ready" || st.Restarts != 0 {
		t.Errorf("at the end: %+v; want ready without a restart", st)
	}
	logs := h.Logs()
	for _, s := range append(store.secrets, oldKey, newKey) {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%d bytes) appears in the host log", len(s))
		}
	}
	if !strings.Contains(logs, "credentials rotated") {
		t.Error("the rotation is not logged")
	}
}

// TestCredentialsAzureKeyVault serves an OpenAI instance whose key is a
// Key Vault secret read by secrets-azure-keyvault over TLS with the fake's
// CA, logged in to the fake Entra ID with AKS workload identity: the
// variables the webhook injects (AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST) reach the plugin
// through inherit_env, and the fake checks the federated assertion.
func TestCredentialsAzureKeyVault(t *testing.T) {
	const (
		oldKey, newKey = "sk-akv-old-6d0e", "sk-akv-new-2b9c"
		tenant         = "0b3c7d4e-e2e0-4a11-9d2f-5c8b1a2e3f40"
		clientID       = "e2e-llmproxy-app"
		assertion      = "eyJhbGciOiJSUzI1NiJ9.akv-e2e-projected-sa.sig"
	)
	kv := kvfake.New(kvfake.Identity{Tenant: tenant, ClientID: clientID, Assertion: assertion})
	t.Cleanup(kv.Close)
	kv.Set("openai-api-key", oldKey, "", time.Time{})
	dir := t.TempDir()
	ca, tokenFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "azure-identity-token")
	os.WriteFile(ca, kv.CAPEM(), 0o600)
	os.WriteFile(tokenFile, []byte(assertion), 0o600)
	up := newRotatingUpstream(t, oldKey, newKey)

	h := harness.Start(t, harness.APIKeyBlock+fmt.Sprintf(`
secrets "azure_keyvault" {
  type        = "azure-keyvault"
  inherit_env = ["AZURE_*"]
  config {
    vault_url                 = %q
    auth                      = "workload_identity"
    ca_file                   = %q
    verify_challenge_resource = false
    poll_interval             = %q
    timeout                   = "2s"
  }
}
`, kv.URL(), ca, storePoll.String())+credOpenAIBlock("openai_akv", up.srv.URL, `
    from "azure_keyvault" { secret = "openai-api-key" }`), harness.Options{
		WaitFor: []string{"azure_keyvault", "openai_akv"},
		Env: []string{"AZURE_TENANT_ID=" + tenant, "AZURE_CLIENT_ID=" + clientID,
			"AZURE_FEDERATED_TOKEN_FILE=" + tokenFile, "AZURE_AUTHORITY_HOST=" + kv.URL()},
	})

	cloudStoreRotationAndOutage(t, h, up, cloudStore{
		rotate:  func(v string) { kv.Set("openai-api-key", v, "", time.Time{}) },
		setDown: kv.SetDown,
		secrets: []string{assertion},
	}, "openai_akv", oldKey, newKey)
	if kv.Grants("assertion") == 0 || kv.Refused() != 0 {
		t.Errorf("Entra issued %d tokens for the federated assertion, the vault refused %d; want the workload identity login and no refusal", kv.Grants("assertion"), kv.Refused())
	}
}

// TestCredentialsGCPSecretManager serves an OpenAI instance whose key is
// a Secret Manager secret read by secrets-gcp-secretmanager over gRPC,
// with Application Default Credentials from the fake GCE metadata server
// (GCE_METADATA_HOST passed to the plugin with inherit_env).
func TestCredentialsGCPSecretManager(t *testing.T) {
	const oldKey, newKey = "sk-gsm-old-1f7a", "sk-gsm-new-c04d"
	sm, err := smfake.New("llmproxy-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Close)
	sm.Add("openai-api-key", oldKey)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, sm.CAPEM(), 0o600)
	up := newRotatingUpstream(t, oldKey, newKey)

	h := harness.Start(t, harness.APIKeyBlock+fmt.Sprintf(`
secrets "gcp_secret_manager" {
  type        = "gcp-secretmanager"
  inherit_env = ["GCE_METADATA_HOST"]
  config {
    project       = "llmproxy-e2e"
    endpoint      = %q
    ca_file       = %q
    poll_interval = %q
    timeout       = "2s"
  }
}
`, sm.Endpoint(), ca, storePoll.String())+credOpenAIBlock("openai_gsm", up.srv.URL, `
    from "gcp_secret_manager" { secret = "openai-api-key" }`),
		harness.Options{WaitFor: []string{"gcp_secret_manager", "openai_gsm"}, Env: []string{"GCE_METADATA_HOST=" + sm.MetadataHost()}})

	cloudStoreRotationAndOutage(t, h, up, cloudStore{
		rotate:  func(v string) { sm.Add("openai-api-key", v) },
		setDown: sm.SetDown,
	}, "openai_gsm", oldKey, newKey)
	if st := sm.Stats(); st.MetadataTokens == 0 || st.Refused != 0 {
		t.Errorf("fake stats %+v; want metadata-server tokens and no refused call", st)
	}
}
