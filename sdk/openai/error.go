package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Error types used in the "type" field of an error body.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
	TypeUpstream       = "upstream_error"
	TypeTimeout        = "timeout_error"
	TypeUnavailable    = "service_unavailable"
	// TypeInsufficientQuota is OpenAI's type for a spent quota; the
	// gateway also uses it for a spent budget (code budget_exceeded).
	TypeInsufficientQuota = "insufficient_quota"
)

// Error is an API error as OpenAI clients expect it, with the HTTP status
// it travels with and an optional retry delay. Plugins return *Error to
// choose the status and body the client sees; the host turns any other
// error into a 502.
type Error struct {
	Status     int
	Message    string
	Type       string
	Code       string
	Param      string
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d %s (%s): %s", e.Status, e.Type, e.Code, e.Message)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message)
}

// ErrorBody is the JSON shape {"error":{"message","type","param","code"}}.
type ErrorBody struct {
	Error ErrorObject `json:"error"`
}

// ErrorObject is the inner object of ErrorBody; param and code are null
// when empty.
type ErrorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Body returns the error's JSON body.
func (e *Error) Body() ErrorBody {
	b := ErrorBody{Error: ErrorObject{Message: e.Message, Type: e.Type}}
	if e.Param != "" {
		p := e.Param
		b.Error.Param = &p
	}
	if e.Code != "" {
		c := e.Code
		b.Error.Code = &c
	}
	return b
}

// JSON returns the error's JSON body as bytes, without HTML escaping.
func (e *Error) JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(e.Body())
	return bytes.TrimRight(b.Bytes(), "\n")
}

// NewError returns an Error with the given status, type, code and message.
func NewError(status int, typ, code, msg string) *Error {
	return &Error{Status: status, Type: typ, Code: code, Message: msg}
}

// InvalidRequest returns a 400 invalid_request_error about param.
func InvalidRequest(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Message: msg}
}

// ParseError decodes an OpenAI-shaped error body returned with status. It
// falls back to the raw body as the message when the body is not in that
// shape.
func ParseError(status int, body []byte) *Error {
	var b struct {
		Error struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Param   json.RawMessage `json:"param"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	e := &Error{Status: status, Type: TypeForStatus(status)}
	if json.Unmarshal(body, &b) == nil && b.Error.Message != "" {
		e.Message = b.Error.Message
		if b.Error.Type != "" {
			e.Type = b.Error.Type
		}
		e.Code = rawString(b.Error.Code)
		e.Param = rawString(b.Error.Param)
		return e
	}
	e.Message = string(body)
	if len(e.Message) > 512 {
		e.Message = e.Message[:512]
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

func rawString(r json.RawMessage) string {
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

// TypeForStatus is the error type llmproxy uses for an HTTP status.
func TypeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return TypeAuthentication
	case status == http.StatusForbidden:
		return TypePermission
	case status == http.StatusNotFound:
		return TypeNotFound
	case status == http.StatusTooManyRequests:
		return TypeRateLimit
	case status == http.StatusGatewayTimeout:
		return TypeTimeout
	case status == http.StatusServiceUnavailable:
		return TypeUnavailable
	case status >= 500:
		return TypeServer
	}
	return TypeInvalidRequest
}
