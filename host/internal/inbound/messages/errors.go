package messages

import (
	"encoding/json"
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ErrorType is Anthropic's error type for an HTTP status.
func ErrorType(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusMethodNotAllowed,
		http.StatusUnsupportedMediaType, http.StatusRequestTimeout:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusConflict:
		return "conflict_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

type errorBody struct {
	Type      string      `json:"type"`
	Error     errorObject `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

type errorObject struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Error returns the body of an error answer in Anthropic's shape,
// {"type":"error","error":{"type","message"},"request_id"}. The gateway's
// own code, when it has one, leads the message in brackets so that it is
// not lost.
func Error(e *openai.Error, requestID string) []byte {
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorObject{Type: ErrorType(e.Status), Message: errorMessage(e)}, RequestID: requestID})
	return b
}

// StreamError appends the error event that reports e after a stream
// started.
func StreamError(dst []byte, e *openai.Error) []byte {
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorObject{Type: ErrorType(e.Status), Message: errorMessage(e)}})
	return event(dst, "error", "", b, "")
}

func errorMessage(e *openai.Error) string {
	if e.Code == "" {
		return e.Message
	}
	return "[" + e.Code + "] " + e.Message
}
