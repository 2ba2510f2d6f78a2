package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// statusError maps an OCI error response to the OpenAI error the client
// sees (see README.md for the table). The upstream detail and the
// opc-request-id are logged; credential failures reach the client with a
// generic message only.
func statusError(status int, h http.Header, raw []byte) *openai.Error {
	var oe ociError
	if json.Unmarshal(raw, &oe) != nil || (oe.Code == "" && oe.Message == "") {
		oe.Message = strings.TrimSpace(string(raw))
		if len(oe.Message) > 512 {
			oe.Message = oe.Message[:512]
		}
	}
	if oe.Message == "" {
		oe.Message = http.StatusText(status)
	}
	reqID := h.Get("opc-request-id")
	provider.Logger().Warn("oci: upstream error", "status", status, "code", oe.Code, "message", oe.Message, "opc-request-id", reqID)
	e := errorFor(status, oe.Code, oe.Message)
	if reqID != "" && status != http.StatusUnauthorized && status != http.StatusForbidden {
		e.Message += " (opc-request-id " + reqID + ")"
	}
	if d := retryAfter(h); d > 0 {
		e.RetryAfter = d
	}
	return e
}

// errorFor maps an upstream HTTP status and OCI error code to an OpenAI
// error. status is 0 for an error event inside a stream, which carries
// only the code.
func errorFor(status int, code, msg string) *openai.Error {
	if status == 0 {
		status = statusForCode(code)
	}
	if code == "" {
		code = "upstream_status_" + strconv.Itoa(status)
	}
	switch {
	case status == http.StatusUnauthorized:
		return openai.NewError(status, openai.TypeAuthentication, code,
			"oci: the upstream rejected the instance's request signature or key ("+code+")")
	case status == http.StatusForbidden:
		return openai.NewError(status, openai.TypePermission, code,
			"oci: the instance's principal is not allowed to call OCI Generative AI ("+code+")")
	case status == http.StatusTooManyRequests:
		return openai.NewError(status, openai.TypeRateLimit, code, "oci: "+msg)
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return openai.NewError(status, openai.TypeForStatus(status), code, "oci: "+msg)
	case status >= 500:
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, code, "oci: "+msg)
	case status >= 400:
		return openai.NewError(status, openai.TypeForStatus(status), code, "oci: "+msg)
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, code, "oci: "+msg)
}

// statusForCode is the HTTP status OCI uses for an error code.
func statusForCode(code string) int {
	switch code {
	case "InvalidParameter", "MissingParameter", "CannotParseRequest", "LimitExceeded", "QuotaExceeded", "InvalidRequest":
		return http.StatusBadRequest
	case "NotAuthenticated":
		return http.StatusUnauthorized
	case "NotAuthorized", "NotAllowed", "SignUpRequired":
		return http.StatusForbidden
	case "NotAuthorizedOrNotFound", "NotFound":
		return http.StatusNotFound
	case "Conflict":
		return http.StatusConflict
	case "TooManyRequests":
		return http.StatusTooManyRequests
	case "ServiceUnavailable":
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// retryAfter reads retry-after (seconds or an HTTP date).
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("retry-after"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// unsupported is the 400 for a parameter a model family cannot take.
func unsupported(param, msg string) *openai.Error {
	e := openai.InvalidRequest(param, msg)
	e.Code = "unsupported_parameter"
	return e
}
