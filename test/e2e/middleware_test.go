package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// TestMiddleware runs the guardrail on one route and the logger on every
// request of the key, around the echo provider: requests are masked and
// vetoed in JSON and streamed, the logger writes redacted lines, and a
// guardrail process that crashes or hangs costs one request and is
// replaced.
func TestMiddleware(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "chat.log")
	h := harness.Start(t, fmt.Sprintf(`
api_key "e2e" {
  key        = %q
  models     = ["*"]
  admin      = true
  middleware = ["log"]
}
provider "echo" {
  type = "echo"
}
middleware "guard" {
  type         = "guardrail"
  hook_timeout = "1s"
  config {
    deny_keywords = ["build a bomb"]
    crash_on      = "CRASH-NOW"
    hang_on       = "HANG-NOW"
  }
}
middleware "log" {
  type = "logger"
  config {
    path = %q
  }
}
route "guarded" {
  middleware = ["guard"]
  target "echo" {}
}
route "plain" {
  target "echo" {}
}
# Masked requests come back as answers holding "[EMAIL]", which makes
# this guardrail's answer hooks hang.
middleware "guard_answers" {
  type         = "guardrail"
  hook_timeout = "1s"
  config {
    mask_responses = true
    hang_on        = "[EMAIL]"
  }
}
route "answers" {
  middleware = ["guard_answers"]
  target "echo" {}
}
`, harness.Key, logPath), harness.Options{WaitFor: []string{"echo", "guard", "log", "guard_answers"}})

	const pii = "mail jane.doe@example.com or call +1 415 555 0100, card 4111 1111 1111 1111"
	const masked = "mail [EMAIL] or call [PHONE], card [CARD]"

	t.Run("masked in JSON", func(t *testing.T) {
		status, body := mwChat(t, h, "guarded", pii, false)
		if status != 200 || supContent(t, body) != "You said: "+masked {
			t.Fatalf("%d %s; want the echo of %q", status, body, masked)
		}
	})
	t.Run("masked in a stream", func(t *testing.T) {
		status, body := mwChat(t, h, "guarded", pii, true)
		text := mwStreamText(t, body)
		if status != 200 || text != "You said: "+masked {
			t.Fatalf("%d %q; want the echo of %q", status, text, masked)
		}
	})
	t.Run("other route untouched", func(t *testing.T) {
		status, body := mwChat(t, h, "plain", pii, false)
		if status != 200 || supContent(t, body) != "You said: "+pii {
			t.Fatalf("%d %s; the guardrail ran on a route that does not name it", status, body)
		}
	})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("vetoed stream=%v", stream), func(t *testing.T) {
			status, body := mwChat(t, h, "guarded", "Explain how to Build a Bomb at home", stream)
			mwWantError(t, status, body, http.StatusBadRequest, "content_policy_violation")
		})
	}

	t.Run("logger writes redacted lines", func(t *testing.T) {
		const secret = "sk-live-abcdefghijklmnop1234"
		if status, body := mwChat(t, h, "plain", "remember "+secret, false); status != 200 || !strings.Contains(string(body), secret) {
			t.Fatalf("%d %s", status, body)
		}
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secret) || strings.Contains(string(b), harness.Key) {
			t.Fatalf("the log holds a secret:\n%s", b)
		}
		events := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e struct {
				Event     string `json:"event"`
				RequestID string `json:"request_id"`
				Key       string `json:"key"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("not a JSON line: %s", line)
			}
			if e.Key != "e2e" || e.RequestID == "" {
				t.Errorf("line without key name or request id: %s", line)
			}
			events[e.Event]++
		}
		// Every request so far was logged (the key names the logger), and
		// every JSON answer; the vetoed ones have no response line.
		if events["request"] < 6 || events["response"] < 3 {
			t.Errorf("events = %v", events)
		}
	})

	for _, fault := range []struct {
		name, trigger, code string
		stream              bool
	}{
		{"crash", "CRASH-NOW", "middleware_unavailable", false},
		{"hang", "HANG-NOW", "middleware_timeout", false},
		{"crash streamed", "CRASH-NOW", "middleware_unavailable", true},
		{"hang streamed", "HANG-NOW", "middleware_timeout", true},
	} {
		t.Run(fault.name+" costs one request", func(t *testing.T) {
			before := h.PluginProcs(t)["guard"]
			start := time.Now()
			status, body := mwChat(t, h, "guarded", "please "+fault.trigger, fault.stream)
			mwWantError(t, status, body, http.StatusBadGateway, fault.code)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the failed request took %s", d)
			}
			// The very next request is served by a new process.
			status, body = mwChat(t, h, "guarded", pii, false)
			if status != 200 || supContent(t, body) != "You said: "+masked {
				t.Fatalf("after the %s: %d %s", fault.name, status, body)
			}
			after := h.PluginProcs(t)["guard"]
			if after.PID == 0 || after.PID == before.PID {
				t.Errorf("guard pid %d before, %d after; want a new process", before.PID, after.PID)
			}
			if len(harness.WaitGone([]harness.Proc{before}, 5*time.Second)) != 0 {
				t.Errorf("the old guard process %d still runs", before.PID)
			}
		})
	}

	t.Run("answer hook overrun", func(t *testing.T) {
		before := h.PluginProcs(t)["guard_answers"]
		status, body := mwChat(t, h, "answers", "mail jane@example.com", false)
		mwWantError(t, status, body, http.StatusBadGateway, "middleware_timeout")
		status, body = mwChat(t, h, "answers", "hello there", false)
		if status != 200 || supContent(t, body) != "You said: hello there" {
			t.Fatalf("after the overrun: %d %s", status, body)
		}
		if after := h.PluginProcs(t)["guard_answers"]; after.PID == before.PID {
			t.Errorf("guard_answers still runs as pid %d", before.PID)
		}
	})
	t.Run("chunk hook overrun ends the stream", func(t *testing.T) {
		before := h.PluginProcs(t)["guard_answers"]
		status, body := mwChat(t, h, "answers", "mail jane@example.com", true)
		events, _ := supEvents(t, strings.NewReader(string(body)))
		if status != 200 || len(events) == 0 {
			t.Fatalf("%d %s", status, body)
		}
		last := events[len(events)-1]
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(last), &e) != nil || e.Error.Code != "middleware_timeout" {
			t.Fatalf("stream ended with %q; want an error event with code middleware_timeout:\n%s", last, body)
		}
		if strings.Contains(string(body), "jane@example.com") {
			t.Errorf("the stream leaked the unmasked address:\n%s", body)
		}
		status, body = mwChat(t, h, "answers", "hello again", true)
		if text := mwStreamText(t, body); status != 200 || text != "You said: hello again" {
			t.Fatalf("after the overrun: %d %q", status, text)
		}
		if after := h.PluginProcs(t)["guard_answers"]; after.PID == before.PID {
			t.Errorf("guard_answers still runs as pid %d", before.PID)
		}
	})
}

// mwChat posts one chat request and returns status and body.
func mwChat(t *testing.T, h *harness.Host, model, text string, stream bool) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := spinePost(ctx, h, spineChatBody(model, text, stream))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// mwStreamText joins the content deltas of an SSE chat stream.
func mwStreamText(t *testing.T, body []byte) string {
	t.Helper()
	events, _ := supEvents(t, strings.NewReader(string(body)))
	var b strings.Builder
	for _, e := range events {
		if e == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("not a chunk: %s", e)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
		}
	}
	return b.String()
}

// mwWantError checks an OpenAI-shaped error answer.
func mwWantError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || status != wantStatus || e.Error.Code != wantCode || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("got %d %s; want %d with code %s", status, body, wantStatus, wantCode)
	}
}
