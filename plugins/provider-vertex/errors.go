package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxErrorMessage bounds the upstream text an error carries.
const maxErrorMessage = 512

// parseStatus reads a google.rpc error body: {"error":{...}} or, from a
// failed non-SSE stream, [{"error":{...}}]. It returns nil when the body
// is neither.
func parseStatus(raw []byte) *rpcStatus {
	raw = []byte(strings.TrimSpace(string(raw)))
	var env errorEnvelope
	if len(raw) > 0 && raw[0] == '[' {
		var list []errorEnvelope
		if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
			return nil
		}
		env = list[0]
	} else if json.Unmarshal(raw, &env) != nil {
		return nil
	}
	if env.Error == nil || (env.Error.Status == "" && env.Error.Code == 0 && env.Error.Message == "") {
		return nil
	}
	return env.Error
}

// statusError maps an upstream error response to the OpenAI error the
// client sees (see README.md for the table).
func statusError(status int, h http.Header, raw []byte) *openai.Error {
	st := parseStatus(raw)
	if st == nil {
		msg := strings.TrimSpace(string(raw))
		if msg == "" || !isPrintable(msg) {
			msg = http.StatusText(status)
		}
		st = &rpcStatus{Code: status, Message: msg}
	}
	if st.Code == 0 {
		st.Code = status
	}
	e := rpcError(status, st)
	if d := retryAfterHeader(h); d > 0 && e.RetryAfter == 0 {
		e.RetryAfter = d
	}
	return e
}

// rpcError maps a google.rpc status. httpStatus is 0 for an error that
// ended a stream, which has only the status.
func rpcError(httpStatus int, st *rpcStatus) *openai.Error {
	msg := st.Message
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	msg = "vertex: " + msg
	code := strings.ToLower(st.Status)
	status := httpStatus
	if status == 0 {
		status = st.Code
	}
	switch st.Status {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		status = http.StatusBadRequest
	case "UNAUTHENTICATED":
		status = http.StatusUnauthorized
	case "PERMISSION_DENIED":
		status = http.StatusForbidden
	case "NOT_FOUND":
		status = http.StatusNotFound
	case "RESOURCE_EXHAUSTED":
		status = http.StatusTooManyRequests
	case "UNAVAILABLE":
		status = http.StatusServiceUnavailable
	case "DEADLINE_EXCEEDED":
		status = http.StatusGatewayTimeout
	case "ABORTED", "ALREADY_EXISTS":
		status = http.StatusConflict
	case "INTERNAL", "UNKNOWN", "DATA_LOSS", "UNIMPLEMENTED":
		if status < 500 {
			status = http.StatusInternalServerError
		}
	}
	if status < 400 || status > 599 {
		status = http.StatusBadGateway
	}
	if code == "" {
		code = "upstream_status_" + strconv.Itoa(status)
	}
	var e *openai.Error
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		// Credential trouble is the operator's: the client gets a
		// generic message, the log the detail.
		provider.Logger().Warn("vertex: upstream refused the instance's credentials", "status", status, "detail", st.Message)
		e = openai.NewError(status, openai.TypeForStatus(status), code, "vertex: the upstream refused the instance's credentials")
	} else {
		e = openai.NewError(status, errorType(status), code, msg)
	}
	e.RetryAfter = retryInfo(st.Details)
	return e
}

// errorType is the OpenAI error type of a mapped status: Google's own
// server errors are server_error, other 5xx (a proxy's 502, say)
// upstream_error.
func errorType(status int) string {
	switch {
	case status == http.StatusInternalServerError, status == http.StatusNotImplemented:
		return openai.TypeServer
	case status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout:
		return openai.TypeUpstream
	}
	return openai.TypeForStatus(status)
}

// retryInfo reads the delay of a google.rpc.RetryInfo detail.
func retryInfo(details []json.RawMessage) time.Duration {
	for _, d := range details {
		var ri struct {
			Type       string `json:"@type"`
			RetryDelay string `json:"retryDelay"`
		}
		if json.Unmarshal(d, &ri) != nil || !strings.HasSuffix(ri.Type, "google.rpc.RetryInfo") {
			continue
		}
		if v, err := time.ParseDuration(ri.RetryDelay); err == nil && v > 0 {
			return v
		}
	}
	return 0
}

// retryAfterHeader reads Retry-After (seconds or an HTTP date).
func retryAfterHeader(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("retry-after"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 && secs < 1e6 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// isPrintable reports whether s is text worth showing as a message.
func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

// transportError turns a failed upstream exchange into the error the
// client should see: cancellation stays cancellation, a timeout is 504,
// anything else that is not already an *openai.Error is 502.
func transportError(ctx context.Context, err error) error {
	var oe *openai.Error
	switch {
	case errors.As(err, &oe):
		return err
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("vertex: client went away: %w", context.Canceled)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "vertex: upstream timed out")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "vertex: upstream timed out")
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
}
