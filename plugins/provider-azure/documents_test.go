package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

func TestDocumentPart(t *testing.T) {
	pdf := &provider.Document{ID: "doc_0", Name: "a.pdf", MIMEType: "application/pdf", Data: []byte("%PDF"), Text: "hello pdf"}
	csv := &provider.Document{ID: "doc_1", Name: "t.csv", MIMEType: "text/csv; charset=utf-8", Data: []byte("a,b\n1,2")}
	bin := &provider.Document{ID: "doc_2", Name: "x.bin", MIMEType: "application/octet-stream", Data: []byte{0, 1, 2}}
	tests := []struct {
		name     string
		doc      *provider.Document
		role     string
		mode     string
		wantType string
		wantErr  bool
	}{
		{"pdf native", pdf, openai.RoleUser, DocumentsNative, openai.PartFile, false},
		{"pdf text mode", pdf, openai.RoleUser, DocumentsText, openai.PartText, false},
		{"pdf in system message", pdf, openai.RoleSystem, DocumentsNative, openai.PartText, false},
		{"csv raw text", csv, openai.RoleUser, DocumentsNative, openai.PartText, false},
		{"binary without text", bin, openai.RoleUser, DocumentsNative, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := documentPart(tt.doc, tt.role, tt.mode)
			if tt.wantErr {
				var oe *openai.Error
				if oe, _ = err.(*openai.Error); oe == nil || oe.Status != http.StatusBadRequest {
					t.Fatalf("want a 400, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := jsonString(p["type"]); got != tt.wantType {
				t.Errorf("type = %q, want %q", got, tt.wantType)
			}
		})
	}
}

func TestUnresolvedDocument(t *testing.T) {
	req := &provider.Request{Body: []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"document","document":{"id":"doc_9"}}]}]}`)}
	chat, err := req.Chat()
	if err != nil {
		t.Fatal(err)
	}
	_, err = upstreamChatBody(req, chat, DocumentsNative, false)
	if oe, _ := err.(*openai.Error); oe == nil || oe.Status != http.StatusBadRequest {
		t.Fatalf("want a 400 for an unresolved document, got %v", err)
	}
}

func TestBodyKeepsUnknownFields(t *testing.T) {
	req := &provider.Request{Meta: provider.Meta{Model: "gpt-4o"}, Body: []byte(`{"model":"alias","messages":[{"role":"user","content":"Hi","x_extra":1}],"stream":true,"stream_options":{"include_usage":true},"seed":7,"vendor_field":{"a":[1,2]}}`)}
	chat, err := req.Chat()
	if err != nil {
		t.Fatal(err)
	}
	b, err := upstreamChatBody(req, chat, DocumentsNative, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"messages":[{"role":"user","content":"Hi","x_extra":1}],"model":"gpt-4o","seed":7,"vendor_field":{"a":[1,2]}}`
	var got, w any
	json.Unmarshal(b, &got)
	json.Unmarshal([]byte(want), &w)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("body = %s\nwant   %s", gb, wb)
	}
}
