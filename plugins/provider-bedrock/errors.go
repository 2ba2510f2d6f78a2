package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// upstreamStatus maps a Bedrock error code (HTTP error or stream exception,
// in either capitalisation) to the HTTP status and OpenAI error type the
// client sees.
var upstreamStatus = map[string]struct {
	status int
	typ    string
}{
	"validationexception":           {http.StatusBadRequest, openai.TypeInvalidRequest},
	"accessdeniedexception":         {http.StatusForbidden, openai.TypePermission},
	"unrecognizedclientexception":   {http.StatusUnauthorized, openai.TypeAuthentication},
	"invalidsignatureexception":     {http.StatusUnauthorized, openai.TypeAuthentication},
	"incompletesignatureexception":  {http.StatusUnauthorized, openai.TypeAuthentication},
	"missingauthenticationtoken":    {http.StatusUnauthorized, openai.TypeAuthentication},
	"expiredtokenexception":         {http.StatusUnauthorized, openai.TypeAuthentication},
	"resourcenotfoundexception":     {http.StatusNotFound, openai.TypeNotFound},
	"throttlingexception":           {http.StatusTooManyRequests, openai.TypeRateLimit},
	"servicequotaexceededexception": {http.StatusTooManyRequests, openai.TypeRateLimit},
	"modelnotreadyexception":        {http.StatusServiceUnavailable, openai.TypeUnavailable},
	"serviceunavailableexception":   {http.StatusServiceUnavailable, openai.TypeUnavailable},
	"modeltimeoutexception":         {http.StatusGatewayTimeout, openai.TypeTimeout},
	"internalserverexception":       {http.StatusBadGateway, openai.TypeUpstream},
	"modelerrorexception":           {http.StatusBadGateway, openai.TypeUpstream},
	"modelstreamerrorexception":     {http.StatusBadGateway, openai.TypeUpstream},
}

// clientError turns an error of a Bedrock call into the *openai.Error the
// client sees. Bedrock error codes are mapped by upstreamStatus, the
// Retry-After header is kept, cancellations and deadlines become 499/504,
// and anything else (a transport failure, a broken stream) is a 502.
func clientError(err error) error {
	if err == nil {
		return nil
	}
	var oe *openai.Error
	if errors.As(err, &oe) {
		return oe
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		m, ok := upstreamStatus[strings.ToLower(code)]
		if !ok {
			m.status, m.typ = http.StatusBadGateway, openai.TypeUpstream
			if s := httpStatus(err); s >= 400 && s < 500 {
				m.status, m.typ = s, openai.TypeForStatus(s)
			}
		}
		msg := apiErr.ErrorMessage()
		if msg == "" {
			msg = code
		}
		e := openai.NewError(m.status, m.typ, code, "bedrock: "+msg)
		e.RetryAfter = retryAfter(err)
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "bedrock: the upstream call timed out")
	case errors.Is(err, context.Canceled):
		return openai.NewError(499, openai.TypeInvalidRequest, "client_closed_request", "the request was cancelled")
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", fmt.Sprintf("bedrock: %v", err))
}

// httpStatus returns the HTTP status of the response an SDK error came
// with, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// retryAfter reads a Retry-After header (seconds or HTTP date) from the
// response an SDK error came with.
func retryAfter(err error) time.Duration {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		return 0
	}
	return parseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
}

// parseRetryAfter parses a Retry-After value given in seconds or as an
// HTTP date relative to now.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// streamCut is the error of a stream that ended before Bedrock said it was
// complete.
func streamCut(what string) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_stream_incomplete", "bedrock: the stream ended "+what)
}
