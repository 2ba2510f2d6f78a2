package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// fuzzLimits keep each input cheap, so that the fuzzer explores shapes
// rather than sizes.
var fuzzLimits = extractor.Limits{MaxTextBytes: 64 << 10, MaxPages: 64, MaxDecodedBytes: 4 << 20}

// checkFuzz fails unless the call either succeeded within the limits or
// refused the input with 422 document_unreadable, in reasonable time.
func checkFuzz(t *testing.T, mimeType string, data []byte) {
	start := time.Now()
	got, err := (&Document{}).Extract(context.Background(), &extractor.Document{MIMEType: mimeType, Data: data, Limits: fuzzLimits})
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %s", el)
	}
	if err != nil {
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 422 || oe.Code != extractor.CodeUnreadable {
			t.Fatalf("err = %v, want 422 %s", err, extractor.CodeUnreadable)
		}
		return
	}
	if int64(len(got.Text)) > fuzzLimits.MaxTextBytes || got.Pages > fuzzLimits.MaxPages {
		t.Fatalf("text %d bytes, %d pages: over the limits", len(got.Text), got.Pages)
	}
}

func FuzzExtractPDF(f *testing.F) {
	for _, seed := range [][]byte{
		makePDF("Quantum computing basics", "Second page"),
		selfKidsPDF(), hugeCountPDF(), cycleKidsPDF(), parentCyclePDF(), fanOutPDF(),
		bombPDF(64 << 10), prevLoopPDF(), hugeSizePDF(),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFuzz(t, MIMEPDF, data) })
}

func FuzzExtractHTML(f *testing.F) {
	for _, seed := range []string{
		"<html><head><title>T</title><script>x()</script></head><body><p>Hello &amp; <b>world</b></p></body></html>",
		"<p>unclosed <div><svg><p>inside</svg>after",
		"<!-- comment --><template><p>hidden</p></template><pre>a\n  b</pre>",
		"\xff\xfe<p>bad utf-8 \xc3</p>",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFuzz(t, MIMEHTML, data) })
}
