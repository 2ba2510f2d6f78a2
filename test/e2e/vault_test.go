package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
	"github.com/llmproxy/llmproxy/plugins/secrets-vault/vaultfake"
	"github.com/llmproxy/llmproxy/test/harness"
)

const (
	vaultRootToken = "hvs.e2e-root-5c2a91"
	vaultModel     = "anthropic.claude-3-haiku-20240307-v1:0"
)

// vaultBedrock is a Vault whose AWS engine mints keys with a short lease,
// and a Bedrock fake that accepts exactly the keys Vault minted while
// their lease lasts, recording each access key id it sees.
type vaultBedrock struct {
	vault   *vaultfake.Server
	bedrock *bedrockfake.Fake
	url     string

	mu   sync.Mutex
	seen map[string]bool
}

func startVaultBedrock(t *testing.T, lease time.Duration) *vaultBedrock {
	t.Helper()
	return startVaultBedrockWith(t, vaultfake.Options{LeaseTTL: lease})
}

// startVaultBedrockWith is startVaultBedrock with more Vault options; the
// root token and the AWS role are set here.
func startVaultBedrockWith(t *testing.T, o vaultfake.Options) *vaultBedrock {
	t.Helper()
	vb := &vaultBedrock{seen: map[string]bool{}}
	o.RootToken, o.AWSRole = vaultRootToken, "bedrock"
	vb.vault = vaultfake.New(o)
	vb.vault.Start()
	t.Cleanup(vb.vault.Close)
	vb.bedrock = bedrockfake.New(bedrockfake.Options{Region: "us-east-1", Keys: func(id string) (string, string, bool) {
		secret, token, ok := vb.vault.Keys(id)
		if ok {
			vb.mu.Lock()
			vb.seen[id] = true
			vb.mu.Unlock()
		}
		return secret, token, ok
	}})
	if err := vb.bedrock.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vb.bedrock.Close)
	return vb
}

func (vb *vaultBedrock) keysSeen() int {
	vb.mu.Lock()
	defer vb.mu.Unlock()
	return len(vb.seen)
}

func (vb *vaultBedrock) hcl() string {
	return fmt.Sprintf(`
secrets "vault" {
  type = "vault"
  config {
    address = %q
  }
  credential "token" {
    from "value" { value = %q }
  }
}
provider "bedrock_vault" {
  type = "bedrock"
  credential "access_key_id" {
    from "vault" {
      path  = "aws/creds/bedrock"
      field = "access_key"
    }
  }
  credential "secret_access_key" {
    from "vault" {
      path  = "aws/creds/bedrock"
      field = "secret_key"
    }
  }
  credential "session_token" {
    from "vault" {
      path  = "aws/creds/bedrock"
      field = "security_token"
    }
  }
  config {
    region   = "us-east-1"
    endpoint = %q
  }
}
route %q {
  target "bedrock_vault" {}
}
`, vb.vault.URL(), vaultRootToken, vb.bedrock.URL(), vaultModel)
}

// vaultChat sends one chat request and returns an error unless it
// succeeded.
func vaultChat(h *harness.Host, text string, stream bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := spinePost(ctx, h, spineChatBody(vaultModel, text, stream))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

// TestVaultBedrockRotation serves a Bedrock instance whose AWS keys come
// from Vault's AWS engine with a 3-second lease, under a request loop of
// more than 60 seconds: the host resolves the lease again at about two
// thirds of its life and pushes the keys to the plugin, so there are at
// least ten rotations, no failed request, and Bedrock sees the new keys.
func TestVaultBedrockRotation(t *testing.T) {
	vb := startVaultBedrock(t, 3*time.Second)
	h := harness.Start(t, harness.APIKeyBlock+vb.hcl(), harness.Options{WaitFor: []string{"vault", "bedrock_vault"}})

	const duration = 62 * time.Second
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		firstErr   string
		wg         sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if err := vaultChat(h, fmt.Sprintf("w%d r%d", w, i), i%3 == 2); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				// A steady loop, not a benchmark.
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()

	minted, seen := vb.vault.Minted(), vb.keysSeen()
	rotations := strings.Count(h.Logs(), "credentials rotated")
	t.Logf("%d requests in %v, %d failed; Vault minted %d key pairs, Bedrock saw %d, the host logged %d rotations",
		ok.Load()+failed.Load(), duration, failed.Load(), minted, seen, rotations)
	if failed.Load() > 0 {
		t.Errorf("%d requests failed; first: %s", failed.Load(), firstErr)
	}
	if rotations < 10 || seen < 11 {
		t.Errorf("%d rotations, %d keys seen by Bedrock; want at least 10 rotations and 11 keys", rotations, seen)
	}
	if st := spineInstances(t, h)["bedrock_vault"]; st.State != "ready" || st.Restarts != 0 {
		t.Errorf("bedrock_vault after the loop: %+v; want ready without restarts", st)
	}
	vaultNoSecretsInLogs(t, h, vb)
}

// vaultNoSecretsInLogs greps the host log, plugin output included, for
// the Vault token and every secret key and session token Vault minted.
func vaultNoSecretsInLogs(t *testing.T, h *harness.Host, vb *vaultBedrock) {
	t.Helper()
	logs := h.Logs()
	for _, s := range append(vb.vault.SecretKeys(), vaultRootToken) {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%d bytes) appears in the host log", len(s))
			return
		}
	}
}

// TestVaultOutageDuringRefresh takes Vault down while a lease is live:
// the failed refresh degrades the instance, which keeps serving with the
// old keys; once they expire the instance fails with the reason; when
// Vault returns, the next refresh recovers it.
func TestVaultOutageDuringRefresh(t *testing.T) {
	const lease = 4 * time.Second
	vb := startVaultBedrock(t, lease)
	h := harness.Start(t, harness.APIKeyBlock+vb.hcl(), harness.Options{WaitFor: []string{"vault", "bedrock_vault"}})
	if err := vaultChat(h, "before", false); err != nil {
		t.Fatal(err)
	}
	// Wait for a fresh lease, then cut Vault off before its refresh.
	before := vb.vault.Minted()
	for start := time.Now(); vb.vault.Minted() == before; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > lease {
			t.Fatal("no refresh within a lease")
		}
	}
	issued := time.Now()
	vb.vault.SetDown(true)

	st := h.WaitInstance(t, "bedrock_vault", "degraded", lease)
	if !strings.Contains(st.Reason, "credential refresh failed") || !strings.Contains(st.Reason, "503") {
		t.Errorf("degraded reason %q; want the failed refresh and Vault's 503", st.Reason)
	}
	// The old keys still work until they expire.
	served := 0
	for time.Since(issued) < lease-700*time.Millisecond {
		if err := vaultChat(h, "degraded", false); err != nil {
			t.Fatalf("%v into the lease, while degraded: %v", time.Since(issued), err)
		}
		served++
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("served %d requests with the old keys while degraded", served)

	st = h.WaitInstance(t, "bedrock_vault", "failed", 3*time.Second)
	if !strings.Contains(st.Reason, "credentials expired at") || !strings.Contains(st.Reason, "503") {
		t.Errorf("failed reason %q; want the expiry and Vault's 503", st.Reason)
	}
	status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody(vaultModel, "expired", false))
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "credentials expired") {
		t.Errorf("a request while failed: %d %s; want 503 naming the expired credentials", status, body)
	}

	vb.vault.SetDown(false)
	back := time.Now()
	h.WaitInstance(t, "bedrock_vault", "ready", 35*time.Second)
	t.Logf("ready %v after Vault returned", time.Since(back))
	if err := vaultChat(h, "recovered", false); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if st := spineInstances(t, h)["bedrock_vault"]; st.Restarts != 0 {
		t.Errorf("the plugin was restarted %d times; credentials alone must not restart it", st.Restarts)
	}
	vaultNoSecretsInLogs(t, h, vb)
}

// TestVaultLeaseRenewAndRevoke serves Bedrock on renewable AWS engine
// leases of 3 s with a 9 s maximum lifetime under a request loop: the
// host renews each lease instead of reading a new one until the maximum
// is near, then reads a new lease and revokes the replaced one; at
// shutdown it revokes the lease in use. No request fails.
func TestVaultLeaseRenewAndRevoke(t *testing.T) {
	vb := startVaultBedrockWith(t, vaultfake.Options{LeaseTTL: 3 * time.Second, RenewableLeases: true, MaxLeaseTTL: 9 * time.Second})
	h := harness.Start(t, harness.APIKeyBlock+vb.hcl(), harness.Options{WaitFor: []string{"vault", "bedrock_vault"}})
	firstKey := fmt.Sprintf("ASIAVAULT%011d", 1)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(17 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := vaultChat(h, fmt.Sprintf("r%d", i), i%3 == 2); err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			continue
		}
		ok.Add(1)
		time.Sleep(25 * time.Millisecond)
	}
	renewed, minted := vb.vault.Renewed(), vb.vault.Minted()
	t.Logf("%d requests, %d failed; Vault renewed %d times and minted %d key pairs; Bedrock saw %d", ok.Load()+failed.Load(), failed.Load(), renewed, minted, vb.keysSeen())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed; first: %v", failed.Load(), firstErr.Load())
	}
	// Per 9 s lease: renewals at about 2, 4 and 6 s, a new read near 8 s.
	if renewed < 4 || renewed > 10 || minted < 2 || minted > 3 {
		t.Errorf("renewed %d, minted %d; want renewals instead of reads until the maximum lifetime (about 3 renewals and 1 read per 9 s)", renewed, minted)
	}
	// Vault also counts the last renewal of each lease, which no longer
	// extends it enough: the host reads a new lease instead.
	if n := strings.Count(h.Logs(), "credentials renewed"); n < 4 || n > renewed {
		t.Errorf("the host logged %d renewals, Vault saw %d; want at least 4, each seen by Vault", n, renewed)
	}
	if !vb.vault.Revoked(firstKey) {
		t.Error("the replaced lease was not revoked")
	}
	lastKey := fmt.Sprintf("ASIAVAULT%011d", vb.vault.Minted())
	if vb.vault.Revoked(lastKey) {
		t.Fatal("the lease in use was revoked while serving")
	}
	h.Stop()
	if !vb.vault.Revoked(lastKey) {
		t.Errorf("the lease in use at shutdown was not revoked (%d revoke calls)", vb.vault.Calls("revoke"))
	}
	vaultNoSecretsInLogs(t, h, vb)
}
