package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// CodeContentFilter is the error code of a request Azure's content filter
// rejected.
const CodeContentFilter = "content_filter"

// azureError is Azure's error body: the OpenAI envelope, where code is
// often an HTTP-ish string or number, type may be null and an innererror
// may explain a content-filter rejection; or the API Management shape
// {"statusCode":401,"message":"..."}.
type azureError struct {
	Error *struct {
		Code       json.RawMessage `json:"code"`
		Message    string          `json:"message"`
		Type       json.RawMessage `json:"type"`
		Param      json.RawMessage `json:"param"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
}

// upstreamError turns an Azure error response into the error the client
// sees: the status is kept, a missing type is filled in from it, numeric
// codes are dropped (or named, for 429), content-filter rejections become
// 400 invalid_request_error content_filter, and Retry-After /
// retry-after-ms become the retry delay.
func upstreamError(status int, h http.Header, body []byte) *openai.Error {
	e := &openai.Error{Status: status, Type: openai.TypeForStatus(status)}
	var b azureError
	if json.Unmarshal(body, &b) == nil {
		switch {
		case b.Error != nil:
			e.Message = b.Error.Message
			e.Code = jsonString(b.Error.Code)
			e.Param = jsonString(b.Error.Param)
			if t := jsonString(b.Error.Type); t != "" {
				e.Type = t
			}
			if b.Error.InnerError != nil && b.Error.InnerError.Code == "ResponsibleAIPolicyViolation" {
				e.Code = CodeContentFilter
			}
		case b.Message != "":
			e.Message = b.Message
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512]
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if isNumber(e.Code) {
		e.Code = ""
	}
	switch {
	case e.Code == CodeContentFilter:
		e.Status, e.Type = http.StatusBadRequest, openai.TypeInvalidRequest
	case status == http.StatusTooManyRequests && e.Code == "":
		e.Code = "rate_limit_exceeded"
	}
	e.RetryAfter = retryAfter(h, time.Now())
	return e
}

// retryAfter reads retry-after-ms, then Retry-After (seconds or an HTTP
// date); zero when neither says anything usable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := h.Get("Retry-After")
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// transportError turns a failed upstream call into the client's error: the
// caller's own cancellation stays a context error, a timeout is a 504 and
// anything else a 502.
func transportError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout",
			fmt.Sprintf("%s: azure did not answer in time", what))
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_unreachable",
		fmt.Sprintf("%s: %v", what, transportCause(err)))
}

// transportCause strips the request URL off a *url.Error: the message
// stays short and never repeats query parameters.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func jsonString(r json.RawMessage) string {
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
