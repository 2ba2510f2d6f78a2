package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// The seed corpora are in testdata/fuzz/<target>/.

// FuzzStream feeds arbitrary bytes to the chat_stream parser and relay:
// it must never panic, must fail only with an *openai.Error, and when it
// succeeds its chunks must obey the stream rules and finish every choice.
func FuzzStream(f *testing.F) {
	f.Add([]byte("id: 1\nevent: message\ndata: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got chunks
		st := newStreamer(&got, "m", true, time.Unix(1730000000, 0))
		err := st.run(newEventReader(bytes.NewReader(data)))
		if err != nil {
			var oe *openai.Error
			if !errors.As(err, &oe) {
				t.Fatalf("error is not an *openai.Error: %v", err)
			}
			if oe.Status < 400 || oe.Message == "" {
				t.Fatalf("error without status or message: %+v", oe)
			}
			return
		}
		var acc openai.Accumulator
		for _, c := range got {
			if err := acc.Add(c); err != nil {
				t.Fatalf("chunk breaks the stream rules: %v: %s", err, c)
			}
		}
		cc := acc.Completion()
		if len(cc.Choices) == 0 {
			t.Fatalf("a successful stream has no choices")
		}
		for _, ch := range cc.Choices {
			if ch.FinishReason == "" || ch.Message.Role != openai.RoleAssistant {
				t.Fatalf("choice %d: role %q finish %q", ch.Index, ch.Message.Role, ch.FinishReason)
			}
		}
	})
}

// FuzzChatResponse feeds arbitrary JSON to the chat response translator.
func FuzzChatResponse(f *testing.F) {
	f.Add([]byte(`{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var wr chatResponse
		if json.Unmarshal(data, &wr) != nil {
			return
		}
		cc, err := translateResponse(&wr, "m", time.Unix(1730000000, 0))
		if err != nil {
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadGateway {
				t.Fatalf("error %v, want a 502 *openai.Error", err)
			}
			return
		}
		if cc.ID == "" || cc.Model == "" || len(cc.Choices) == 0 {
			t.Fatalf("incomplete completion %+v", cc)
		}
		for _, ch := range cc.Choices {
			if ch.FinishReason == "" {
				t.Fatalf("choice without finish_reason")
			}
			for _, tc := range ch.Message.ToolCalls {
				if tc.ID == "" || tc.Function.Name == "" {
					t.Fatalf("tool call without id or name: %+v", tc)
				}
			}
		}
		if _, err := marshal(cc); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzErrorBody feeds arbitrary bytes to the error mapping: every status
// it yields is an error status, and credential failures never echo the
// upstream's words.
func FuzzErrorBody(f *testing.F) {
	f.Add(401, []byte(`{"errors":[{"code":"authentication_token_expired","message":"expired"}],"status_code":401}`))
	f.Fuzz(func(t *testing.T, status int, data []byte) {
		e := statusError(status, http.Header{"Retry-After": {"3"}}, data)
		if e.Status < 400 || e.Status > 599 || e.Type == "" || e.Code == "" || e.Message == "" {
			t.Fatalf("status %d mapped to %+v", status, e)
		}
		if (status == 401 || status == 403) && len(data) > 12 && strings.Contains(e.Message, string(data)) {
			t.Fatalf("a credential failure echoes the upstream body: %q", e.Message)
		}
		var iam iamResponse
		if json.Unmarshal(data, &iam) == nil {
			tok := newToken(iam, time.Unix(1730000000, 0))
			if tok.refreshAt.After(tok.expires) {
				t.Fatalf("token refreshed after it expires: %+v", tok)
			}
		}
	})
}
