package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

func TestTranslateRejects(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantParam string
	}{
		{"http image url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"unsupported image type", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AAAA"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"bad tool arguments", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"n above one", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"unresolved document", `{"model":"m","messages":[{"role":"user","content":[{"type":"document","document":{"id":"doc_9"}}]}]}`, "messages[0].content[0].document.id"},
		{"file id", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{"bad tool name", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"has space"}}]}`, "tools[0].function.name"},
		{"tool choice not in tools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, "tool_choice"},
		{"only system", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages"},
		{"function role", `{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := translate(&provider.Request{Body: []byte(tt.body)})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
				t.Fatalf("want a 400 *openai.Error, got %v", err)
			}
			if oe.Param != tt.wantParam {
				t.Errorf("param = %q, want %q (%s)", oe.Param, tt.wantParam, oe.Message)
			}
		})
	}
}

func TestToolChoiceNone(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantTools int
	}{
		{"no history drops tools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`, 0},
		{"history keeps tools without choice", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"ok"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := translate(&provider.Request{Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			if c.toolConfig != nil {
				got = len(c.toolConfig.Tools)
				if c.toolConfig.ToolChoice != nil {
					t.Errorf("tool_choice none sent a toolChoice")
				}
			}
			if got != tt.wantTools {
				t.Errorf("tools = %d, want %d", got, tt.wantTools)
			}
		})
	}
}

func TestDocumentNames(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"report.pdf"}, []string{"report"}},
		{[]string{"Q3_report.v2.pdf", "Q3 report v2.docx"}, []string{"Q3 report v2", "Q3 report v2 (2)"}},
		{[]string{"a  b\t(c)[d]-e.txt"}, []string{"a b (c)[d]-e"}},
		{[]string{"über.md", "...", ""}, []string{"ber", "document", "document (2)"}},
	}
	for _, tt := range tests {
		var n documentNamer
		for i, in := range tt.in {
			if got := n.name(in); got != tt.want[i] {
				t.Errorf("name(%q) = %q, want %q", in, got, tt.want[i])
			}
		}
	}
}

func TestFinishReason(t *testing.T) {
	tests := []struct {
		stop  string
		tools int
		json  bool
		want  string
	}{
		{"end_turn", 0, false, "stop"},
		{"end_turn", 1, false, "tool_calls"},
		{"tool_use", 2, false, "tool_calls"},
		{"tool_use", 0, true, "stop"},
		{"max_tokens", 0, false, "length"},
		{"model_context_window_exceeded", 0, false, "length"},
		{"guardrail_intervened", 0, false, "content_filter"},
		{"content_filtered", 0, false, "content_filter"},
		{"malformed_tool_use", 0, false, "stop"},
		{"something_new", 0, false, "stop"},
	}
	for _, tt := range tests {
		if got := finishReason(tt.stop, tt.tools, tt.json); got != tt.want {
			t.Errorf("finishReason(%q, %d, %v) = %q, want %q", tt.stop, tt.tools, tt.json, got, tt.want)
		}
	}
}

func TestConfigureDiagnostics(t *testing.T) {
	tests := []struct {
		name     string
		cfg      string
		creds    map[string]string
		wantPath string
	}{
		{"missing region", `{}`, nil, "region"},
		{"bad endpoint", `{"region":"us-east-1","endpoint":"ftp://x"}`, nil, "endpoint"},
		{"bad timeout", `{"region":"us-east-1","timeout":"soon"}`, nil, "timeout"},
		{"bad api", `{"region":"us-east-1","api":"chat"}`, nil, "api"},
		{"half a key pair", `{"region":"us-east-1"}`, map[string]string{credAccessKeyID: "AKID"}, ""},
		{"key and api key", `{"region":"us-east-1"}`, map[string]string{credAccessKeyID: "AKID", credSecretAccessKey: "s", credAPIKey: "k"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Configure(context.Background(), &provider.Config{JSON: json.RawMessage(tt.cfg), Credentials: tt.creds})
			if err == nil {
				t.Fatal("Configure accepted a bad config")
			}
			if tt.wantPath != "" && !containsPath(err, tt.wantPath) {
				t.Errorf("diagnostics %v do not name %q", err, tt.wantPath)
			}
		})
	}
}

// containsPath reports whether err holds a diagnostic about path.
func containsPath(err error, path string) bool {
	var diags schema.Diagnostics
	if !errors.As(err, &diags) {
		return false
	}
	for _, d := range diags {
		if len(d.Path) > 0 && d.Path[0] == path {
			return true
		}
	}
	return false
}
