package main

import (
	"context"
	"errors"
	"net/http"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// authorizer adds the instance's credentials to an upstream request.
type authorizer interface {
	authorize(ctx context.Context, r *http.Request) error
}

// adcFunc finds Application Default Credentials; credentials.DetectDefault
// in production, a stub in tests.
type adcFunc func(ctx context.Context, opts *credentials.DetectOptions) (*auth.Credentials, error)

// detectDefault is the production adcFunc.
func detectDefault(_ context.Context, opts *credentials.DetectOptions) (*auth.Credentials, error) {
	return credentials.DetectDefault(opts)
}

// keyAuth is express mode: an API key sent as x-goog-api-key.
type keyAuth string

var (
	_ authorizer = keyAuth("")
	_ authorizer = (*tokenAuth)(nil)
)

func (k keyAuth) authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("x-goog-api-key", string(k))
	return nil
}

// tokenAuth sends an OAuth2 access token from cloud.google.com/go/auth
// credentials, which cache the token and refresh it ahead of its expiry.
type tokenAuth struct {
	creds *auth.Credentials
}

func (t *tokenAuth) authorize(ctx context.Context, r *http.Request) error {
	tok, err := t.creds.Token(ctx)
	if err != nil {
		return tokenError(ctx, err)
	}
	typ := tok.Type
	if typ == "" {
		typ = "Bearer"
	}
	r.Header.Set("Authorization", typ+" "+tok.Value)
	if qp, err := t.creds.QuotaProjectID(ctx); err == nil && qp != "" && r.Header.Get("x-goog-user-project") == "" {
		r.Header.Set("x-goog-user-project", qp)
	}
	return nil
}

// tokenError maps a failed token exchange to the client's error. A token
// endpoint that answers 4xx refused the credentials: that is a 401 whose
// message names no secret (the host turns it into upstream_auth_failed).
// An unreachable endpoint is a 502, a timeout 504.
func tokenError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil {
		status := ae.Response.StatusCode
		provider.Logger().Warn("vertex: token exchange refused", "status", status)
		if status >= 400 && status < 500 {
			return openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, "upstream_token_refused",
				"vertex: the token endpoint refused the instance's credentials")
		}
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_token_error",
			"vertex: the token endpoint failed")
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout",
			"vertex: the token endpoint timed out")
	}
	provider.Logger().Warn("vertex: token exchange failed", "error", err.Error())
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_token_error",
		"vertex: could not obtain an access token")
}
