package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/llmproxy/llmproxy/test/harness"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the console screenshots to docs/console/*.png")

// consoleBrowser starts a headless Chromium (the Debian package) with a
// fresh profile and returns a chromedp context on one tab.
func consoleBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("chromium not found: run scripts/install-deps.sh or `apt-get install -y chromium`")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first run starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// consoleDo runs steps in the console's tab, each run bounded so that a
// missing element fails the test instead of hanging it.
func consoleDo(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	return chromedp.Do(c, steps...)
}

// consoleRead runs one action that returns a value.
func consoleRead[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	return chromedp.Run(c, a)
}

// consoleScreenshot saves the page as docs/console/name.png when
// -update-screenshots is set.
func consoleScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	png, err := consoleRead(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// consoleWaitJS waits until a JavaScript expression is true.
func consoleWaitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))
}

type cssSel = chromedp.CSS

// TestConsole drives the web console in headless Chromium against a real
// host: sign in with an admin key, watch instance health, read the routes,
// create a key through the admin API, chat with it in the playground with
// a streamed answer and an attached document uploaded to a storage
// instance, see the request appear in the usage, revoke the key and sign
// out.
func TestConsole(t *testing.T) {
	root := t.TempDir()
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+fmt.Sprintf(`
store {
  driver = "sqlite"
  path   = %q
}
api_key "viewer" {
  key    = "sk-console-viewer-0123456789"
  models = ["*"]
}
storage "docs" {
  type = "local"
  config {
    root           = %q
    create_buckets = true
  }
}
route "echo-cached" {
  target "echo" { model = "echo" }
  cache { ttl = "5m" }
}
`, filepath.Join(t.TempDir(), "llmproxy.db"), root), harness.Options{WaitFor: []string{"echo", "docs"}})
	ctx := consoleBrowser(t)
	ui := h.URL + "/ui/"

	t.Run("sign-in refused", func(t *testing.T) {
		err := consoleDo(ctx,
			chromedp.Navigate(ui),
			chromedp.WaitVisible(cssSel(`#key`)),
			chromedp.SendKeys(cssSel(`#key`), "sk-console-viewer-0123456789"),
			chromedp.Click(cssSel(`#login-submit`)),
			chromedp.WaitVisible(cssSel(`#login-error`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := consoleRead(ctx, chromedp.Text(cssSel(`#login-error`)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "not an admin key") {
			t.Errorf("a key without admin rights signed in, or the message is unclear: %q", msg)
		}
	})

	t.Run("sign in", func(t *testing.T) {
		err := consoleDo(ctx,
			chromedp.Navigate(ui),
			chromedp.WaitVisible(cssSel(`#key`)),
			chromedp.SendKeys(cssSel(`#key`), harness.Key),
			chromedp.Click(cssSel(`#login-submit`)),
			chromedp.WaitVisible(cssSel(`nav`)),
			consoleWaitJS(`document.body.dataset.loaded === "instances"`),
		)
		if err != nil {
			t.Fatal(err)
		}
		html, err := consoleRead(ctx, chromedp.OuterHTML(cssSel(`html`)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(html, harness.Key) {
			t.Error("the admin key is in the console page")
		}
		cookie, err := consoleRead(ctx, chromedp.Evaluate[string](`document.cookie`))
		if err != nil {
			t.Fatal(err)
		}
		if cookie != "" {
			t.Errorf("the session cookie is readable by scripts: %q", cookie)
		}
		// The session cookie alone does not reach the admin API: a
		// request without the CSRF header, as a form on another site
		// would send, is refused.
		status, err := consoleRead(ctx, chromedp.Evaluate[int](`fetch("/ui/api/admin/v1/keys", {method: "POST", body: "{}"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusForbidden {
			t.Errorf("a console API call without the CSRF header got %d, want 403", status)
		}
	})

	t.Run("instances", func(t *testing.T) {
		err := consoleDo(ctx,
			chromedp.WaitVisible(cssSel(`tr[data-instance="echo"] .badge.ready`)),
			chromedp.WaitVisible(cssSel(`tr[data-instance="docs"] .badge.ready`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		state, err := consoleRead(ctx, chromedp.Text(cssSel(`#ready-status`)))
		if err != nil {
			t.Fatal(err)
		}
		if state != "ready" {
			t.Errorf("ready status %q", state)
		}
		// Health is live: the page polls /readyz while it is shown.
		err = consoleDo(ctx, consoleWaitJS(`(() => { window.__pid = window.__pid || document.querySelector('tr[data-instance="echo"]'); return document.querySelector('tr[data-instance="echo"]') !== window.__pid; })()`))
		if err != nil {
			t.Errorf("the instances table was not refreshed: %v", err)
		}
		consoleScreenshot(t, ctx, "instances")
	})

	t.Run("routes", func(t *testing.T) {
		err := consoleDo(ctx,
			chromedp.Click(cssSel(`nav a[data-page="routes"]`)),
			consoleWaitJS(`document.body.dataset.loaded === "routes"`),
			chromedp.WaitVisible(cssSel(`tr[data-route="echo"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		cached, err := consoleRead(ctx, chromedp.Text(cssSel(`tr[data-route="echo-cached"] td:last-child`)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(cached, "5m") {
			t.Errorf("cache column of echo-cached: %q", cached)
		}
		consoleScreenshot(t, ctx, "routes")
	})

	var secret string
	t.Run("create a key", func(t *testing.T) {
		err := consoleDo(ctx,
			chromedp.Click(cssSel(`nav a[data-page="keys"]`)),
			consoleWaitJS(`document.body.dataset.loaded === "keys"`),
			chromedp.SendKeys(cssSel(`#key-name`), "console-playground"),
			chromedp.SendKeys(cssSel(`#key-group`), "demo"),
			chromedp.SetValue(cssSel(`#key-models`), "echo*"),
			chromedp.SendKeys(cssSel(`#key-instances`), "docs"),
			chromedp.SendKeys(cssSel(`#key-ops`), "put, get"),
			chromedp.Click(cssSel(`#key-create`)),
			chromedp.WaitVisible(cssSel(`#new-key-secret`)),
			chromedp.WaitVisible(cssSel(`tr[data-key="console-playground"]`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		if secret, err = consoleRead(ctx, chromedp.Text(cssSel(`#new-key-secret`))); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "sk-llmp-") {
			t.Fatalf("the new key's secret %q does not look like one", secret)
		}
		// The secret is a working key with the rights given.
		status, _, body := h.Do(t, "GET", "/v1/models", "", "Authorization", "Bearer "+secret)
		if status != 200 || !strings.Contains(string(body), `"echo"`) {
			t.Fatalf("GET /v1/models with the new key: %d %s", status, body)
		}
		consoleScreenshot(t, ctx, "keys")
	})

	t.Run("playground", func(t *testing.T) {
		if secret == "" {
			t.Fatal("no key was created")
		}
		doc := filepath.Join(t.TempDir(), "handbook.md")
		if err := os.WriteFile(doc, []byte("# Handbook\n\nThe launch code word is heliotrope.\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := consoleDo(ctx,
			chromedp.Click(cssSel(`#new-key-use`)),
			consoleWaitJS(`document.body.dataset.loaded === "playground"`),
			chromedp.WaitReady(cssSel(`#pg-model option[value="echo"]`)),
			chromedp.SetValue(cssSel(`#pg-model`), "echo"),
			chromedp.SetValue(cssSel(`#pg-storage`), "local/docs"),
			chromedp.SetUploadFiles(cssSel(`#pg-file`), []string{doc}),
			chromedp.SendKeys(cssSel(`#pg-prompt`), "What is the code word in the handbook?"),
			chromedp.Click(cssSel(`#pg-send`)),
			consoleWaitJS(`(s => s === "done" || s.startsWith("Failed"))(document.getElementById("pg-status").textContent)`),
		)
		if err != nil {
			t.Fatal(err)
		}
		status, err := consoleRead(ctx, chromedp.Text(cssSel(`#pg-status`)))
		if err != nil {
			t.Fatal(err)
		}
		if status != "done" {
			t.Fatalf("playground: %s", status)
		}
		out, err := consoleRead(ctx, chromedp.Text(cssSel(`#pg-output`)))
		if err != nil {
			t.Fatal(err)
		}
		meta, err := consoleRead(ctx, chromedp.Text(cssSel(`#pg-meta`)))
		if err != nil {
			t.Fatal(err)
		}
		// The echo model reports the documents it was given, with their
		// text: the document went to storage and came back through the
		// chat's storage reference.
		if !strings.Contains(out, "handbook.md") || !strings.Contains(out, "heliotrope") {
			t.Errorf("the answer does not show the attached document: %q", out)
		}
		m := regexp.MustCompile(`^(\d+) chunks`).FindStringSubmatch(meta)
		if m == nil {
			t.Fatalf("no chunk count in %q", meta)
		}
		if n, _ := strconv.Atoi(m[1]); n < 2 {
			t.Errorf("the answer came in %d chunk(s), want a stream of several", n)
		}
		if matches, _ := filepath.Glob(filepath.Join(root, "console", "handbook.md", ".v-*")); len(matches) == 0 {
			t.Error("the document is not in the storage instance")
		}
		consoleScreenshot(t, ctx, "playground")
	})

	t.Run("usage", func(t *testing.T) {
		err := consoleDo(ctx,
			chromedp.Click(cssSel(`nav a[data-page="usage"]`)),
			consoleWaitJS(`document.body.dataset.loaded === "usage"`),
		)
		if err != nil {
			t.Fatal(err)
		}
		// Usage records are written asynchronously: refresh until the
		// playground's request is there.
		deadline := time.Now().Add(20 * time.Second)
		for {
			if err := consoleDo(ctx, chromedp.Click(cssSel(`#usage-refresh`)), chromedp.Sleep(300*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			total, err := consoleRead(ctx, chromedp.Text(cssSel(`#usage-total-requests`)))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := consoleRead(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#usage-models tr[data-group="echo"]').length`))
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.Atoi(strings.ReplaceAll(total, ",", ""))
			if n >= 1 && rows == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the playground's request did not appear in the usage (total %q, echo rows %d)", total, rows)
			}
		}
		bars, err := consoleRead(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#usage-svg rect.bar').length`))
		if err != nil {
			t.Fatal(err)
		}
		if bars < 1 {
			t.Error("the usage chart has no bar")
		}
		consoleScreenshot(t, ctx, "usage")
	})

	t.Run("revoke", func(t *testing.T) {
		if secret == "" {
			t.Fatal("no key was created")
		}
		err := consoleDo(ctx,
			chromedp.Click(cssSel(`nav a[data-page="keys"]`)),
			consoleWaitJS(`document.body.dataset.loaded === "keys"`),
			// Accept the confirmation the button asks for.
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`)(ctx, t)
				return err
			}),
			chromedp.Click(cssSel(`tr[data-key="console-playground"] button[data-revoke]`)),
			chromedp.WaitVisible(cssSel(`tr[data-key="console-playground"].revoked`)),
		)
		if err != nil {
			t.Fatal(err)
		}
		status, _, body := h.Do(t, "POST", "/v1/chat/completions", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`,
			"Authorization", "Bearer "+secret)
		if status != http.StatusUnauthorized {
			t.Errorf("the revoked key still works: %d %s", status, body)
		}
	})

	t.Run("sign out", func(t *testing.T) {
		if err := consoleDo(ctx, chromedp.Click(cssSel(`#logout`)), chromedp.WaitVisible(cssSel(`#key`))); err != nil {
			t.Fatal(err)
		}
		// The browser has no session any more.
		status, err := consoleRead(ctx, chromedp.Evaluate[int](`fetch("/ui/api/readyz").then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusUnauthorized {
			t.Errorf("the console API answers %d after signing out, want 401", status)
		}
	})
}
