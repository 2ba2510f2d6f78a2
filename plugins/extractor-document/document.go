package main

import (
	"context"

	"github.com/llmproxy/llmproxy/sdk/extractor"
)

// Version is the plugin's version, reported by Describe.
const Version = "1.0.0"

// MIME types this plugin extracts.
const (
	MIMEPDF  = "application/pdf"
	MIMEHTML = "text/html"
)

// Document extracts the text of PDF and HTML documents. It keeps no
// state between calls.
type Document struct{}

var _ extractor.Extractor = (*Document)(nil)

// Describe names the plugin and the types it extracts.
func (*Document) Describe(context.Context) (*extractor.Description, error) {
	return &extractor.Description{Name: "document", Version: Version, MIMETypes: []string{MIMEPDF, MIMEHTML}}, nil
}

// Extract returns the text of one PDF or HTML document. A document that
// is malformed or exceeds doc.Limits is answered with
// extractor.Unreadable.
func (*Document) Extract(ctx context.Context, doc *extractor.Document) (*extractor.Text, error) {
	lim := doc.Limits.WithDefaults()
	switch doc.MIMEType {
	case MIMEPDF:
		return extractPDF(ctx, doc.Data, lim)
	case MIMEHTML:
		return extractHTML(ctx, doc.Data, lim)
	}
	return nil, extractor.Unreadable("this extractor does not handle %q", doc.MIMEType)
}
