// Package extractor is what an extractor plugin author writes against.
//
// An extractor turns the bytes of an untrusted document (PDF, HTML, DOCX,
// a scanned image, ...) into plain text for the models behind the
// gateway. It runs in its own process, never inside the host, so a
// document that sends a parser into an endless loop or exhausts its
// memory costs one document, not the gateway. A plugin is a Go type that
// implements Extractor, served by one call in main:
//
//	func main() { extractor.Serve(&PDF{}) }
//
// Serve speaks the go-plugin handshake and the llmproxy.extractor.v1
// gRPC service; authors never see protobuf. The host calls Describe once
// after start to learn which MIME types the plugin handles, then Extract
// for one document at a time per process. It runs every extractor
// process with a memory limit (GOMEMLIMIT and an address-space rlimit), a
// CPU-time rlimit and a wall-clock deadline per call; a call that
// exceeds them, or a process that dies, makes the host kill and replace
// the process and answer the client 422 document_unreadable. Serve makes
// the process exit on the SIGXCPU the kernel sends at the CPU-time soft
// limit.
//
// Extract should still guard itself (caps on pages, nesting, decoded
// bytes and output, as given in Document.Limits) and answer a document it
// cannot read with Unreadable, which keeps the process alive for the next
// document.
package extractor

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// CodeUnreadable is the error code of a document whose text cannot be
// extracted: it is malformed, hostile, or exceeds a limit.
const CodeUnreadable = "document_unreadable"

// Default limits, used when Document.Limits leaves a field at zero.
const (
	DefaultMaxTextBytes    = 4 << 20
	DefaultMaxPages        = 2000
	DefaultMaxDecodedBytes = 64 << 20
)

// Extractor is the interface every extractor plugin implements.
//
// Describe returns the plugin's name, version and the normalized MIME
// types it extracts ("application/pdf", "text/html"); it is called once
// after the process starts.
//
// Extract returns the text of doc. It must honour ctx and doc.Limits,
// return Unreadable (or any *openai.Error) for a document it cannot read,
// and never write to stdout. A panic is recovered by the SDK and answered
// as 500 plugin_error.
type Extractor interface {
	Describe(ctx context.Context) (*Description, error)
	Extract(ctx context.Context, doc *Document) (*Text, error)
}

// Description is what Describe returns.
type Description struct {
	Name    string
	Version string
	// MIMETypes are the normalized MIME types the plugin extracts.
	MIMETypes []string
}

// Limits bound the work of one Extract call.
type Limits struct {
	// MaxTextBytes caps the returned text; longer text is cut at a
	// UTF-8 boundary and Text.Truncated is set.
	MaxTextBytes int64
	// MaxPages caps the pages (or equivalent units) read.
	MaxPages int64
	// MaxDecodedBytes caps the bytes produced by decompressing the
	// document's streams.
	MaxDecodedBytes int64
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = DefaultMaxTextBytes
	}
	if l.MaxPages <= 0 {
		l.MaxPages = DefaultMaxPages
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	return l
}

// Document is one document to extract.
type Document struct {
	// Name is the document's file name, for error messages only.
	Name string
	// MIMEType is the normalized MIME type the host detected; it is one
	// of the types Describe listed.
	MIMEType string
	Data     []byte
	// Limits are the host's limits for this call, defaults applied.
	Limits Limits
	// Meta identifies the request the document belongs to.
	Meta Meta
}

// Text is what Extract returns.
type Text struct {
	Text string
	// Pages is the number of pages read, 0 for formats without pages.
	Pages int64
	// Truncated says Text was cut at Limits.MaxTextBytes.
	Truncated bool
}

// Meta identifies the client request a call belongs to.
type Meta struct {
	RequestID string
	Deadline  time.Time
}

// Unreadable returns the 422 document_unreadable error for a document
// that cannot be extracted; the message says why and reaches the client.
func Unreadable(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusUnprocessableEntity, openai.TypeInvalidRequest, CodeUnreadable,
		fmt.Sprintf(format, args...))
}

// Logger returns the plugin-side logger (hclog JSON on stderr, merged by
// the host into its own log).
func Logger() hclog.Logger { return rpc.Logger() }

// Serve runs an extractor plugin until the host goes away. It never
// returns.
func Serve(e Extractor) {
	exitOnCPULimit()
	rpc.Serve(PluginName, &Plugin{Impl: e})
}
