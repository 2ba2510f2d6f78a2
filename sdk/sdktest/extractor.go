package sdktest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ExtractorSuite configures RunExtractor.
type ExtractorSuite struct {
	// Extractor is the plugin under test.
	Extractor extractor.Extractor
	// Samples are readable documents and a phrase each one's text must
	// contain. Every MIME type the plugin describes needs at least one.
	Samples []ExtractorSample
	// Hostile are documents the plugin must refuse with 422
	// document_unreadable, promptly and without dying.
	Hostile []ExtractorSample
	// Timeout bounds each call; 0 means 10 s.
	Timeout time.Duration
}

// ExtractorSample is one document of an ExtractorSuite.
type ExtractorSample struct {
	Name     string
	MIMEType string
	Data     []byte
	// Contains is a phrase the extracted text must contain (Samples
	// only).
	Contains string
}

// ConnectExtractor serves e over an in-process gRPC connection and
// returns the host-side client, closed when the test ends.
func ConnectExtractor(t testing.TB, e extractor.Extractor) *extractor.Client {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{
		extractor.PluginName: &extractor.Plugin{Impl: e},
	})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(extractor.PluginName)
	if err != nil {
		t.Fatalf("dispense extractor: %v", err)
	}
	return raw.(*extractor.Client)
}

// RunExtractor runs the extractor conformance suite over gRPC: Describe
// names the plugin and its types; every sample's text contains its
// phrase and is valid UTF-8; MaxTextBytes cuts the text and sets
// Truncated; a type the plugin does not handle, random bytes of each
// handled type and every hostile document are refused with 422
// document_unreadable within the timeout; and the plugin still answers
// afterwards.
func RunExtractor(t *testing.T, s ExtractorSuite) {
	c := ConnectExtractor(t, s.Extractor)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	call := func(doc *extractor.Document) (*extractor.Text, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return c.Extract(ctx, doc)
	}
	ctx := context.Background()
	d, err := c.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if d.Name == "" || d.Version == "" || len(d.MIMETypes) == 0 {
		t.Fatalf("Describe = %+v, want a name, a version and MIME types", d)
	}
	covered := map[string]bool{}
	for _, smp := range s.Samples {
		covered[smp.MIMEType] = true
	}
	for _, mt := range d.MIMETypes {
		if !covered[mt] {
			t.Errorf("no sample for described type %q", mt)
		}
	}

	t.Run("Samples", func(t *testing.T) {
		for _, smp := range s.Samples {
			got, err := call(&extractor.Document{Name: smp.Name, MIMEType: smp.MIMEType, Data: smp.Data})
			if err != nil {
				t.Errorf("%s: %v", smp.Name, err)
				continue
			}
			if !strings.Contains(got.Text, smp.Contains) {
				t.Errorf("%s: text %q does not contain %q", smp.Name, clip(got.Text), smp.Contains)
			}
			if !utf8.ValidString(got.Text) || got.Truncated {
				t.Errorf("%s: valid UTF-8 = %v, truncated = %v", smp.Name, utf8.ValidString(got.Text), got.Truncated)
			}
		}
	})

	t.Run("Truncation", func(t *testing.T) {
		for _, smp := range s.Samples {
			const max = 8
			got, err := call(&extractor.Document{Name: smp.Name, MIMEType: smp.MIMEType, Data: smp.Data,
				Limits: extractor.Limits{MaxTextBytes: max}})
			if err != nil {
				t.Errorf("%s: %v", smp.Name, err)
				continue
			}
			if len(got.Text) > max || !utf8.ValidString(got.Text) {
				t.Errorf("%s: text %q is over %d bytes or not UTF-8", smp.Name, got.Text, max)
			}
			if len(smp.Contains) > max && !got.Truncated {
				t.Errorf("%s: Truncated not set", smp.Name)
			}
		}
	})

	t.Run("Refused", func(t *testing.T) {
		refused := []ExtractorSample{{Name: "x.bin", MIMEType: "application/x-llmproxy-unknown", Data: []byte("x")}}
		for _, mt := range d.MIMETypes {
			if strings.HasPrefix(mt, "text/") {
				continue // any bytes are some text
			}
			refused = append(refused, ExtractorSample{Name: "random", MIMEType: mt, Data: []byte("\x00\xff not a document \x01\x02")})
		}
		refused = append(refused, s.Hostile...)
		for _, smp := range refused {
			start := time.Now()
			_, err := call(&extractor.Document{Name: smp.Name, MIMEType: smp.MIMEType, Data: smp.Data})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != 422 || oe.Code != extractor.CodeUnreadable {
				t.Errorf("%s (%s): err = %v, want 422 %s", smp.Name, smp.MIMEType, err, extractor.CodeUnreadable)
			}
			if el := time.Since(start); el > timeout {
				t.Errorf("%s: refused after %s", smp.Name, el)
			}
		}
		if _, err := c.Describe(ctx); err != nil {
			t.Fatalf("plugin no longer answers after hostile documents: %v", err)
		}
	})
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
