package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// authorizer puts the upstream credential on a request. Exactly one of
// api-key and Authorization is sent.
type authorizer interface {
	// authorize sets the credential header on h.
	authorize(ctx context.Context, h http.Header) error
	// invalidate drops a cached credential the upstream rejected.
	invalidate()
}

var (
	_ authorizer = apiKeyAuth{}
	_ authorizer = bearerAuth{}
	_ authorizer = (*entraToken)(nil)
)

// apiKeyAuth sends the resource key in the api-key header.
type apiKeyAuth struct{ key string }

func (a apiKeyAuth) authorize(_ context.Context, h http.Header) error {
	h.Del("Authorization")
	h.Set("api-key", a.key)
	return nil
}

func (apiKeyAuth) invalidate() {}

// bearerAuth sends a static Entra access token.
type bearerAuth struct{ token string }

func (a bearerAuth) authorize(_ context.Context, h http.Header) error {
	h.Del("api-key")
	h.Set("Authorization", "Bearer "+a.token)
	return nil
}

func (bearerAuth) invalidate() {}

// tokenFetchTimeout bounds one token request.
const tokenFetchTimeout = 30 * time.Second

// maxRefreshSkew is how long before expiry a token is refreshed at most;
// short-lived tokens are refreshed after four fifths of their lifetime.
const maxRefreshSkew = 5 * time.Minute

// entraToken gets Entra access tokens with the client-credentials grant
// and caches them until shortly before they expire. Concurrent callers that
// need a new token share one token request.
type entraToken struct {
	tokenURL string
	form     url.Values
	client   *http.Client
	now      func() time.Time

	mu        sync.Mutex
	token     string
	refreshAt time.Time
	expiresAt time.Time
	flight    *tokenFlight
}

// tokenFlight is one token request in progress; done closes when token
// and err are set.
type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

func newEntraToken(tokenURL, clientID, secret, scope string, client *http.Client) *entraToken {
	return &entraToken{
		tokenURL: tokenURL,
		form: url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {clientID},
			"client_secret": {secret},
			"scope":         {scope},
		},
		client: client,
		now:    time.Now,
	}
}

func (e *entraToken) authorize(ctx context.Context, h http.Header) error {
	tok, err := e.get(ctx)
	if err != nil {
		return err
	}
	h.Del("api-key")
	h.Set("Authorization", "Bearer "+tok)
	return nil
}

func (e *entraToken) invalidate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.token = ""
}

// get returns a cached token, or waits for a fresh one. The token request
// runs on its own deadline so that one caller giving up does not fail the
// others waiting for it.
func (e *entraToken) get(ctx context.Context) (string, error) {
	e.mu.Lock()
	if e.token != "" && e.now().Before(e.refreshAt) {
		tok := e.token
		e.mu.Unlock()
		return tok, nil
	}
	f := e.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		e.flight = f
		go e.refresh(f)
	}
	e.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (e *entraToken) refresh(f *tokenFlight) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenFetchTimeout)
	defer cancel()
	tok, lifetime, err := e.fetch(ctx)
	now := e.now()
	e.mu.Lock()
	switch {
	case err == nil:
		skew := min(lifetime/5, maxRefreshSkew)
		e.token, e.refreshAt, e.expiresAt = tok, now.Add(lifetime-skew), now.Add(lifetime)
		f.token = tok
	case e.token != "" && now.Before(e.expiresAt):
		// Keep the last good token while it is still valid.
		f.token = e.token
	default:
		f.err = err
	}
	e.flight = nil
	e.mu.Unlock()
	close(f.done)
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	AccessToken string          `json:"access_token"`
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
}

func (e *entraToken) fetch(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.tokenURL, strings.NewReader(e.form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("entra token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return "", 0, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "entra_unreachable",
			fmt.Sprintf("entra token request failed: %v", transportCause(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "entra_unreachable",
			fmt.Sprintf("reading entra token response: %v", err))
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("entra token request failed with status %d", resp.StatusCode)
		if jsonErr == nil && tr.Error != "" {
			msg += ": " + tr.Error + ": " + firstLine(tr.Description)
		}
		if resp.StatusCode >= 500 {
			return "", 0, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "entra_token_failed", msg)
		}
		return "", 0, openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, "entra_token_failed", msg)
	}
	if jsonErr != nil || tr.AccessToken == "" {
		return "", 0, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "entra_token_failed",
			"entra token response carries no access_token")
	}
	secs, err := parseExpiresIn(tr.ExpiresIn)
	if err != nil {
		return "", 0, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "entra_token_failed",
			fmt.Sprintf("entra token response: %v", err))
	}
	return tr.AccessToken, time.Duration(secs) * time.Second, nil
}

// parseExpiresIn accepts expires_in as a number or a numeric string (both
// occur in Microsoft token responses).
func parseExpiresIn(raw json.RawMessage) (int64, error) {
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil && n > 0 {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("expires_in %s is not a positive number of seconds", raw)
}

// firstLine returns s up to its first line break; Entra descriptions add
// trace and correlation ids on later lines.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
