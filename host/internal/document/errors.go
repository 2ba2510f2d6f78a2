package document

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ErrNotFound and ErrAccessDenied are what a StorageReader wraps (or
// returns) for a missing object and for a caller without permission; the
// Resolver turns them into 404 and 403 errors. A StorageReader may also
// return an *openai.Error, which reaches the client as it is.
var (
	ErrNotFound     = errors.New("document not found")
	ErrAccessDenied = errors.New("document access denied")
)

// Error codes of the *openai.Error values the Resolver returns.
const (
	CodeInvalidDocument  = "invalid_document"
	CodeTooManyDocuments = "too_many_documents"
	CodeURLNotAllowed    = "document_url_not_allowed"
	CodeAccessDenied     = "document_access_denied"
	CodeNotFound         = "document_not_found"
	CodeTooLarge         = "document_too_large"
	CodeUnsupportedType  = "unsupported_document_type"
	CodeFetchFailed      = "document_fetch_failed"
)

func errInvalid(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeInvalidDocument, fmt.Sprintf(format, args...))
}

func errTooLarge(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, CodeTooLarge, fmt.Sprintf(format, args...))
}

func errUnsupported(name, mimeType string) *openai.Error {
	return openai.NewError(http.StatusUnsupportedMediaType, openai.TypeInvalidRequest, CodeUnsupportedType,
		fmt.Sprintf("document %q has type %q, which is not allowed", name, mimeType))
}

func errFetch(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, CodeFetchFailed, fmt.Sprintf(format, args...))
}

// clientError turns err into the *openai.Error the client sees, naming
// param (the part's JSON path) when the error does not name one.
func clientError(err error, param string) *openai.Error {
	var oe *openai.Error
	var be *BlockedError
	switch {
	case errors.As(err, &oe):
		c := *oe
		if c.Param == "" {
			c.Param = param
		}
		return &c
	case errors.As(err, &be):
		oe = openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeURLNotAllowed, be.Error())
	case errors.Is(err, ErrNotFound):
		oe = openai.NewError(http.StatusNotFound, openai.TypeNotFound, CodeNotFound, err.Error())
	case errors.Is(err, ErrAccessDenied):
		oe = openai.NewError(http.StatusForbidden, openai.TypePermission, CodeAccessDenied, err.Error())
	default:
		oe = errFetch("could not load document: %v", err)
	}
	oe.Param = param
	return oe
}
