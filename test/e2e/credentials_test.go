package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/plugins/secrets-kubernetes/kubefake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// rotatingUpstream is an OpenAI upstream during a key rotation: it accepts
// any of a changing set of keys (the old and the new key are both active
// while replicas roll over), remembers when it first saw each key, and
// hands accepted requests to the OpenAI fake under the fake's own key.
type rotatingUpstream struct {
	fake *openaifake.Server
	srv  *httptest.Server

	mu        sync.Mutex
	accepted  map[string]bool
	firstSeen map[string]time.Time
	rejected  int
}

func newRotatingUpstream(t *testing.T, keys ...string) *rotatingUpstream {
	u := &rotatingUpstream{
		fake:      openaifake.New(openaifake.Options{Key: spineFakeKey}),
		accepted:  map[string]bool{},
		firstSeen: map[string]time.Time{},
	}
	u.accept(keys...)
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *rotatingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	u.mu.Lock()
	ok := u.accepted[key]
	if _, seen := u.firstSeen[key]; !seen {
		u.firstSeen[key] = time.Now()
	}
	if !ok {
		u.rejected++
	}
	u.mu.Unlock()
	if !ok {
		// The fake answers an unknown key with OpenAI's 401 body.
		r.Header.Set("Authorization", "Bearer sk-not-"+spineFakeKey)
	} else {
		r.Header.Set("Authorization", "Bearer "+spineFakeKey)
	}
	u.fake.ServeHTTP(w, r)
}

// accept makes keys the only accepted ones.
func (u *rotatingUpstream) accept(keys ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.accepted = map[string]bool{}
	for _, k := range keys {
		u.accepted[k] = true
	}
}

func (u *rotatingUpstream) seen(key string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.firstSeen[key]
	return t, ok
}

func (u *rotatingUpstream) rejections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.rejected
}

// mountedSecret lays out a directory as the kubelet mounts a secret
// volume: data in a timestamped directory, a ..data symlink to it, and a
// symlink per key through ..data. update writes a new generation and
// flips ..data with an atomic rename, as the kubelet's atomic writer does.
type mountedSecret struct {
	t   *testing.T
	dir string
	gen int
}

func newMountedSecret(t *testing.T, key, value string) *mountedSecret {
	m := &mountedSecret{t: t, dir: t.TempDir()}
	m.update(key, value)
	if err := os.Symlink(filepath.Join("..data", key), filepath.Join(m.dir, key)); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *mountedSecret) update(key, value string) {
	m.gen++
	gen := fmt.Sprintf("..2026_12_03_10_00_%02d.%d", m.gen, m.gen)
	if err := os.Mkdir(filepath.Join(m.dir, gen), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, gen, key), []byte(value+"\n"), 0o600); err != nil {
		m.t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(m.dir, "..data"))
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
	if old != "" {
		os.RemoveAll(filepath.Join(m.dir, old))
	}
}

func credOpenAIBlock(name, upstream, sources string) string {
	return fmt.Sprintf(`
provider %q {
  type = "openai"
  credential "api_key" {
%s
  }
  config {
    base_url = "%s/v1"
  }
}
route "gpt-*" {
  target %q {}
}
`, name, sources, upstream, name)
}

// credLoad sends chat requests from workers goroutines until stop is
// closed and returns how many succeeded and the failures it saw.
func credLoad(h *harness.Host, workers int, stop <-chan struct{}) (ok *atomic.Int64, failures func() []string, wait func()) {
	ok = new(atomic.Int64)
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := spinePost(ctx, h, spineChatBody("gpt-4o", fmt.Sprintf("worker %d request %d", w, i), i%2 == 1))
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode != http.StatusOK:
						err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
					case strings.Contains(string(body), `"error"`):
						err = fmt.Errorf("error in the answer: %s", body)
					}
				}
				cancel()
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return ok, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), errs...)
		}, func() {
			wg.Wait()
		}
}

// credStatuses reads the credential details of one instance from /readyz.
func credStatuses(t *testing.T, h *harness.Host, instance string) []map[string]any {
	t.Helper()
	status, _, body := h.Do(t, "GET", "/readyz", "")
	if status != http.StatusOK {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	var r struct {
		Instances map[string]struct {
			Credentials []map[string]any `json:"credentials"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("/readyz: %v: %s", err, body)
	}
	return r.Instances[instance].Credentials
}

// TestCredentialsFileRotation serves an OpenAI instance whose key is a
// Kubernetes-style mounted secret under steady load, then flips the
// secret's ..data symlink to a new key: no request fails, the upstream
// sees the new key within 2 s, and once the old key is revoked every
// request still succeeds. Neither key appears in the log.
func TestCredentialsFileRotation(t *testing.T) {
	const oldKey, newKey = "sk-rotation-old-3b1f", "sk-rotation-new-9c7e"
	up := newRotatingUpstream(t, oldKey, newKey)
	secret := newMountedSecret(t, "api_key", oldKey)
	h := harness.Start(t, harness.APIKeyBlock+credOpenAIBlock("openai_rot", up.srv.URL,
		fmt.Sprintf(`    from "file" { path = %q }`, filepath.Join(secret.dir, "api_key"))), harness.Options{WaitFor: []string{"openai_rot"}})

	creds := credStatuses(t, h, "openai_rot")
	if len(creds) != 1 || creds[0]["rotation"] != "watched" || !strings.HasPrefix(fmt.Sprint(creds[0]["source"]), "file ") {
		t.Errorf("/readyz credentials = %v; want api_key from the file, watched", creds)
	}

	stop := make(chan struct{})
	ok, failures, wait := credLoad(h, 4, stop)
	time.Sleep(1500 * time.Millisecond)
	flipped := time.Now()
	secret.update("api_key", newKey)

	var seenAfter time.Duration
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if at, seen := up.seen(newKey); seen {
			seenAfter = at.Sub(flipped)
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wait()
			t.Fatalf("the upstream has not seen the new key 2s after the flip")
		}
	}
	t.Logf("the upstream saw the new key %v after the symlink flip", seenAfter)

	// Once the new key is out, the operator revokes the old one: the
	// plugin no longer uses it, so nothing fails.
	time.Sleep(300 * time.Millisecond)
	up.accept(newKey)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wait()

	if errs := failures(); len(errs) > 0 {
		t.Errorf("%d of %d requests failed during the rotation; first: %s", len(errs), int(ok.Load())+len(errs), errs[0])
	}
	if n := up.rejections(); n > 0 {
		t.Errorf("the upstream rejected %d requests", n)
	}
	t.Logf("%d requests served across the rotation", ok.Load())
	if ok.Load() < 20 {
		t.Errorf("only %d requests were served; the load did not run", ok.Load())
	}
	if logs := h.Logs(); strings.Contains(logs, oldKey) || strings.Contains(logs, newKey) {
		t.Error("a key appears in the host log")
	}
	if !h.WaitLog("credentials rotated", 5*time.Second) {
		t.Error("the rotation is not logged")
	}
	if st := spineInstances(t, h)["openai_rot"]; st.State != "ready" || st.Restarts != 0 {
		t.Errorf("after the rotation: %+v; want ready without a restart", st)
	}
}

// TestCredentialsRefreshOnUpstreamRejection has the upstream revoke the
// key while the new one sits in a file the host does not watch yet (its
// directory did not exist at start): the first rejected request asks for
// one immediate re-resolution, the chain then finds the file ahead of the
// inline value, and the next requests succeed without a restart.
func TestCredentialsRefreshOnUpstreamRejection(t *testing.T) {
	const oldKey, newKey = "sk-reject-old-51ad", "sk-reject-new-77e0"
	up := newRotatingUpstream(t, oldKey)
	dir := t.TempDir()
	later := filepath.Join(dir, "later", "api_key")
	h := harness.Start(t, harness.APIKeyBlock+credOpenAIBlock("openai_401", up.srv.URL, fmt.Sprintf(`
    from "file"  { path = %q }
    from "value" { value = %q }`, later, oldKey)), harness.Options{WaitFor: []string{"openai_401"}})

	creds := credStatuses(t, h, "openai_401")
	if len(creds) != 1 {
		t.Fatalf("/readyz credentials = %v", creds)
	}
	sources, _ := creds[0]["sources"].([]any)
	if len(sources) != 2 || sources[0].(map[string]any)["state"] != "unavailable" || sources[1].(map[string]any)["state"] != "used" {
		t.Errorf("/readyz sources = %v; want the file unavailable and the value used", sources)
	}

	if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "before", false)); status != 200 {
		t.Fatalf("before the rotation: %d %s", status, body)
	}
	if err := os.MkdirAll(filepath.Dir(later), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(later, []byte(newKey), 0o600); err != nil {
		t.Fatal(err)
	}
	up.accept(newKey)

	status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "rejected", false))
	if status != http.StatusBadGateway || !strings.Contains(string(body), "upstream_auth_failed") {
		t.Errorf("the first request after the revocation: %d %s; want 502 upstream_auth_failed", status, body)
	}
	var served time.Duration
	start := time.Now()
	for {
		status, _, body = h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "after", false))
		if status == 200 {
			served = time.Since(start)
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("no success 3s after the rejection (the watch poll is 30s): %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("served with the new key %v after the rejection", served)
	if _, seen := up.seen(newKey); !seen {
		t.Error("the upstream never saw the new key")
	}
	if st := spineInstances(t, h)["openai_401"]; st.State != "ready" || st.Restarts != 0 {
		t.Errorf("after the refresh: %+v; want ready (the success cleared the degradation) without a restart", st)
	}
	creds = credStatuses(t, h, "openai_401")
	if !strings.HasPrefix(fmt.Sprint(creds[0]["source"]), "file ") {
		t.Errorf("/readyz credentials after the refresh = %v; want the file used", creds)
	}
	if logs := h.Logs(); strings.Contains(logs, oldKey) || strings.Contains(logs, newKey) {
		t.Error("a key appears in the host log")
	}
}

// TestCredentialsKubernetesStore reads an OpenAI key through the
// Kubernetes API (secrets-kubernetes against a TLS API server that checks
// the service-account token), with a switched-off Vault store ahead of it
// in the chain that counts as unavailable. The plugin watches the secret:
// an update reaches the upstream within moments although the poll is a
// minute, and so does one hidden by a compaction of the API server's
// history (the resumed watch gets 410 and the plugin reads again).
func TestCredentialsKubernetesStore(t *testing.T) {
	const oldKey, newKey, saToken = "sk-kube-old-8d21", "sk-kube-new-43fa", "eyJhbGciOiJSUzI1NiJ9.e2e-sa.sig"
	kube := kubefake.New(saToken, "llm")
	t.Cleanup(kube.Close)
	kube.Put("openai-api-key", map[string]string{"api_key": oldKey})
	dir := t.TempDir()
	tokenPath, caPath := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	os.WriteFile(tokenPath, []byte(saToken), 0o600)
	os.WriteFile(caPath, kube.CAPEM(), 0o600)
	up := newRotatingUpstream(t, oldKey)

	h := harness.Start(t, harness.APIKeyBlock+fmt.Sprintf(`
secrets "vault" {
  type    = "vault"
  enabled = false
}
secrets "kube" {
  type = "kubernetes"
  config {
    host       = %q
    namespace  = "llm"
    token_path = %q
    ca_path    = %q
    # long enough that only the watch can find the updates in time
    poll_interval = "1m"
  }
}
`, kube.URL(), tokenPath, caPath)+credOpenAIBlock("openai_kube", up.srv.URL, `
    from "vault" {
      path  = "secret/data/llm/openai"
      field = "api_key"
    }
    from "kube" {
      secret = "openai-api-key"
      key    = "api_key"
    }`), harness.Options{WaitFor: []string{"kube", "openai_kube"}})

	creds := credStatuses(t, h, "openai_kube")
	if len(creds) != 1 {
		t.Fatalf("/readyz credentials = %v", creds)
	}
	sources, _ := creds[0]["sources"].([]any)
	if len(sources) != 2 || sources[0].(map[string]any)["state"] != "unavailable" || sources[1].(map[string]any)["state"] != "used" || creds[0]["version"] == "" || creds[0]["rotation"] != "polled" {
		t.Errorf("/readyz credentials = %v; want the disabled vault unavailable, kube used with a version", creds)
	}
	if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "from kube", false)); status != 200 {
		t.Fatalf("with the key from the Kubernetes API: %d %s", status, body)
	}

	// An update while both keys are active upstream: the plugin's watch
	// reports it and the host resolves again at once, long before the
	// one-minute poll, with no request failing.
	up.accept(oldKey, newKey)
	kube.Put("openai-api-key", map[string]string{"api_key": newKey})
	watchedSeen := kubeWaitKey(t, h, up, newKey)
	t.Logf("the watch delivered the update in %v", watchedSeen)

	// The API server compacts its history while the watch is down: the
	// resumed watch gets 410 Expired, the plugin reads the secret again
	// and finds the update it would have missed.
	const thirdKey = "sk-kube-third-0b9c"
	up.accept(newKey, thirdKey)
	kube.Compact("openai-api-key", map[string]string{"api_key": thirdKey})
	t.Logf("after a compaction (410), the update was found in %v", kubeWaitKey(t, h, up, thirdKey))
	if !h.WaitLog("resourceVersion expired; reading the secret again", 5*time.Second) {
		t.Error("the plugin did not log the expired watch it resumed")
	}
	up.accept(thirdKey)
	if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "third", false)); status != 200 {
		t.Errorf("with the third key only: %d %s", status, body)
	}
	if logs := h.Logs(); strings.Contains(logs, oldKey) || strings.Contains(logs, newKey) || strings.Contains(logs, thirdKey) || strings.Contains(logs, saToken) {
		t.Error("a secret appears in the host log")
	}
}

// kubeWaitKey sends requests until the upstream has seen key, failing on
// any failed request or after 3 s, and returns how long it took.
func kubeWaitKey(t *testing.T, h *harness.Host, up *rotatingUpstream, key string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if status, _, body := h.Do(t, "POST", "/v1/chat/completions", spineChatBody("gpt-4o", "watching", false)); status != 200 {
			t.Fatalf("while the update propagates: %d %s", status, body)
		}
		if _, seen := up.seen(key); seen {
			return time.Since(start)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("the upstream has not seen the updated key 3s after the update (the poll is 1m)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
