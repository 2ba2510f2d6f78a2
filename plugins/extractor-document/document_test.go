package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	sdktest.RunExtractor(t, sdktest.ExtractorSuite{
		Extractor: &Document{},
		Samples: []sdktest.ExtractorSample{
			{Name: "a.pdf", MIMEType: MIMEPDF, Data: makePDF("Quantum computing basics"), Contains: "Quantum computing basics"},
			{Name: "page.html", MIMEType: MIMEHTML, Data: read(t, "page.html"), Contains: "Quantum"},
		},
		Hostile: []sdktest.ExtractorSample{
			{Name: "self-kids.pdf", MIMEType: MIMEPDF, Data: selfKidsPDF()},
			{Name: "huge-count.pdf", MIMEType: MIMEPDF, Data: hugeCountPDF()},
			{Name: "fan-out.pdf", MIMEType: MIMEPDF, Data: fanOutPDF()},
		},
		Timeout: 5 * time.Second,
	})
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		mimeType string
		data     []byte
	}{
		{"html", MIMEHTML, read(t, "page.html")},
		{"pdf", MIMEPDF, makePDF("Quantum computing basics", "Second page text")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: tt.mimeType, Data: tt.data, Limits: extractor.Limits{}.WithDefaults()})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got.Text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := string(read(t, tt.name+".golden")); got.Text != want {
				t.Errorf("text =\n%s\nwant\n%s", got.Text, want)
			}
		})
	}
}

// TestHostile checks that each hostile document is refused quickly with
// a reason, instead of looping or allocating without bound.
func TestHostile(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		limits extractor.Limits
		reason string
	}{
		{"kids list the node itself", selfKidsPDF(), extractor.Limits{}, "cyclic"},
		{"kids cycle of two nodes", cycleKidsPDF(), extractor.Limits{}, "cyclic"},
		{"huge count", hugeCountPDF(), extractor.Limits{}, "claims 2147483647 pages"},
		{"parent cycle", parentCyclePDF(), extractor.Limits{}, "/Parent chain"},
		{"fan-out", fanOutPDF(), extractor.Limits{}, "more pages than its /Count of 1"},
		{"fan-out to no pages", bytes.ReplaceAll(fanOutPDF(), []byte("10 0 R "), []byte("null   ")), extractor.Limits{}, "more than 9024 nodes"},
		{"inflates past the limit", bombPDF(4 << 20), extractor.Limits{MaxDecodedBytes: 1 << 20}, "decompresses to more than 1048576 bytes"},
		{"xref prev loop", prevLoopPDF(), extractor.Limits{}, "form a cycle"},
		{"huge xref section start", hugeXrefStartPDF(), extractor.Limits{}, "cross-reference section for objects 100000000"},
		{"xref section past int64", bytes.Replace(makePDF("x"), []byte("xref\n0 6\n"), []byte("xref\n9000000000000000000 9000000000000000000\n"), 1), extractor.Limits{}, "cross-reference section"},
		{"huge xref size", hugeSizePDF(), extractor.Limits{}, "claims 999999999999 objects"},
		{"not a pdf", []byte("%PDF-1.4 garbage"), extractor.Limits{}, "not a readable PDF"},
		{"truncated", makePDF("cut")[:120], extractor.Limits{}, "not a readable PDF"},
		{"empty", nil, extractor.Limits{}, "not a readable PDF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: MIMEPDF, Data: tt.data, Limits: tt.limits.WithDefaults()})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != 422 || oe.Code != extractor.CodeUnreadable {
				t.Fatalf("err = %v, want 422 %s", err, extractor.CodeUnreadable)
			}
			if !strings.Contains(oe.Message, tt.reason) {
				t.Errorf("message %q does not say %q", oe.Message, tt.reason)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("refused after %s", el)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	pages := make([]string, 12)
	for i := range pages {
		pages[i] = "Page text number " + strings.Repeat("x", i)
	}
	doc := makePDF(pages...)
	tests := []struct {
		name      string
		limits    extractor.Limits
		pages     int64
		maxText   int
		truncated bool
	}{
		{"no limit reached", extractor.Limits{}, 12, 1 << 20, false},
		{"page limit", extractor.Limits{MaxPages: 5}, 5, 1 << 20, true},
		{"text limit", extractor.Limits{MaxTextBytes: 40}, 12, 40, true},
		{"bomb inside the decode limit", extractor.Limits{MaxDecodedBytes: 1 << 20}, 12, 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: MIMEPDF, Data: doc, Limits: tt.limits.WithDefaults()})
			if err != nil {
				t.Fatal(err)
			}
			if got.Pages != tt.pages || len(got.Text) > tt.maxText || got.Truncated != tt.truncated {
				t.Errorf("pages = %d, text = %d bytes, truncated = %v; want %d, <= %d, %v", got.Pages, len(got.Text), got.Truncated, tt.pages, tt.maxText, tt.truncated)
			}
			if !strings.HasPrefix(got.Text, "Page text number") {
				t.Errorf("text = %q", got.Text)
			}
		})
	}
}

// TestSharedFontReadOnce checks that a font every page uses counts once
// against the decompression budget: 50 pages of a 100 KB character map
// fit in 1 MB.
func TestSharedFontReadOnce(t *testing.T) {
	got, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: MIMEPDF, Data: sharedCMapPDF(50, 100<<10),
		Limits: extractor.Limits{MaxDecodedBytes: 1 << 20}.WithDefaults()})
	if err != nil {
		t.Fatal(err)
	}
	if got.Pages != 50 || got.Text != strings.TrimSuffix(strings.Repeat("B\n\n", 50), "\n\n") {
		t.Errorf("pages = %d, text = %q", got.Pages, got.Text)
	}
}

func TestBombTextIsCapped(t *testing.T) {
	got, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: MIMEPDF, Data: bombPDF(2 << 20),
		Limits: extractor.Limits{MaxTextBytes: 1000}.WithDefaults()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Text) > 1000 || !got.Truncated || !strings.HasPrefix(got.Text, "x") {
		t.Errorf("text = %d bytes %q…, truncated = %v", len(got.Text), got.Text[:min(len(got.Text), 20)], got.Truncated)
	}
}

func TestHTMLLimits(t *testing.T) {
	big := "<html><body>" + strings.Repeat("<p>word word word</p>", 10000) + "</body></html>"
	got, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: MIMEHTML, Data: []byte(big),
		Limits: extractor.Limits{MaxTextBytes: 100}.WithDefaults()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Text) > 100 || !got.Truncated {
		t.Errorf("text = %d bytes, truncated = %v", len(got.Text), got.Truncated)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Document{}).Extract(ctx, &extractor.Document{MIMEType: MIMEHTML, Data: []byte(big), Limits: extractor.Limits{}.WithDefaults()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}
