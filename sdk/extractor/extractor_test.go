package extractor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// lines is a small extractor for "text/x-lines": it returns the lines of
// a document that start with "+", refuses one that contains "BAD", and
// panics on one that contains "PANIC".
type lines struct {
	seen chan extractor.Document
}

func (lines) Describe(context.Context) (*extractor.Description, error) {
	return &extractor.Description{Name: "lines", Version: "1.0.0", MIMETypes: []string{"text/x-lines"}}, nil
}

func (l lines) Extract(_ context.Context, doc *extractor.Document) (*extractor.Text, error) {
	if l.seen != nil {
		l.seen <- *doc
	}
	s := string(doc.Data)
	switch {
	case strings.Contains(s, "PANIC"):
		panic("hostile input")
	case strings.Contains(s, "BAD"):
		return nil, extractor.Unreadable("%s holds a bad line", doc.Name)
	}
	var out []string
	for _, ln := range strings.Split(s, "\n") {
		if t, ok := strings.CutPrefix(ln, "+"); ok {
			out = append(out, t)
		}
	}
	return &extractor.Text{Text: strings.Join(out, "\n"), Pages: int64(len(out))}, nil
}

func TestConformance(t *testing.T) {
	sdktest.RunExtractor(t, sdktest.ExtractorSuite{
		Extractor: lines{},
		Samples:   []sdktest.ExtractorSample{{Name: "a.lines", MIMEType: "text/x-lines", Data: []byte("+hello wide world\n-skip"), Contains: "hello wide world"}},
		Hostile:   []sdktest.ExtractorSample{{Name: "bad.lines", MIMEType: "text/x-lines", Data: []byte("BAD")}},
	})
}

func TestExtract(t *testing.T) {
	seen := make(chan extractor.Document, 1)
	c := sdktest.ConnectExtractor(t, lines{seen: seen})
	tests := []struct {
		name      string
		doc       extractor.Document
		want      string
		truncated bool
		status    int
		code      string
	}{
		{name: "text", doc: extractor.Document{MIMEType: "text/x-lines", Data: []byte("+a\n+b")}, want: "a\nb"},
		{name: "utf-8 boundary", doc: extractor.Document{MIMEType: "text/x-lines", Data: []byte("+aé€"), Limits: extractor.Limits{MaxTextBytes: 4}},
			want: "aé", truncated: true},
		{name: "invalid utf-8 dropped", doc: extractor.Document{MIMEType: "text/x-lines", Data: []byte("+a\xffb")}, want: "ab"},
		{name: "refused", doc: extractor.Document{Name: "x", MIMEType: "text/x-lines", Data: []byte("BAD")}, status: 422, code: extractor.CodeUnreadable},
		{name: "unknown type", doc: extractor.Document{MIMEType: "application/pdf", Data: []byte("%PDF")}, status: 422, code: extractor.CodeUnreadable},
		{name: "panic", doc: extractor.Document{MIMEType: "text/x-lines", Data: []byte("PANIC")}, status: 500, code: "plugin_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Extract(context.Background(), &tt.doc)
			select {
			case <-seen:
			default:
			}
			if tt.status != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tt.status || oe.Code != tt.code {
					t.Fatalf("err = %v, want %d %s", err, tt.status, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != tt.want || got.Truncated != tt.truncated {
				t.Fatalf("got %q truncated=%v, want %q truncated=%v", got.Text, got.Truncated, tt.want, tt.truncated)
			}
		})
	}
}

func TestLimitsAndDeadlineReachThePlugin(t *testing.T) {
	seen := make(chan extractor.Document, 1)
	c := sdktest.ConnectExtractor(t, lines{seen: seen})
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_, err := c.Extract(ctx, &extractor.Document{MIMEType: "text/x-lines", Data: []byte("+x"), Meta: extractor.Meta{RequestID: "req-1"},
		Limits: extractor.Limits{MaxPages: 3}})
	if err != nil {
		t.Fatal(err)
	}
	doc := <-seen
	if doc.Meta.RequestID != "req-1" || doc.Meta.Deadline.UnixNano() != deadline.UnixNano() {
		t.Errorf("meta = %+v, want request id and deadline %v", doc.Meta, deadline)
	}
	want := extractor.Limits{MaxPages: 3}.WithDefaults()
	if doc.Limits != want {
		t.Errorf("limits = %+v, want %+v", doc.Limits, want)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		max  int64
		want string
		cut  bool
	}{
		{"hello", 10, "hello", false},
		{"hello", 0, "hello", false},
		{"hello", 3, "hel", true},
		{"€€", 4, "€", true},
		{"€", 2, "", true},
		{"a\xff", 10, "a", false},
	}
	for _, tt := range tests {
		got, cut := extractor.Truncate(tt.in, tt.max)
		if got != tt.want || cut != tt.cut {
			t.Errorf("Truncate(%q, %d) = %q, %v; want %q, %v", tt.in, tt.max, got, cut, tt.want, tt.cut)
		}
	}
}
