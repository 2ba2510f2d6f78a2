package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Token refresh policy: a token is renewed once a fifth of its lifetime
// is left (at most five minutes ahead), and never used in its last
// expirySkew.
const (
	maxRefreshAhead = 5 * time.Minute
	expirySkew      = time.Second
	grantAPIKey     = "urn:ibm:params:oauth:grant-type:apikey"
	grantCRToken    = "urn:ibm:params:oauth:grant-type:cr-token"
	// maxCRToken caps the compute-resource token file read.
	maxCRToken = 64 << 10
)

// trustedProfile is the workload identity of a pod on IKS or Red Hat
// OpenShift on IBM Cloud: the compute-resource token the cluster projects
// into a file, exchanged for the trusted profile named by id or name.
type trustedProfile struct {
	tokenFile string
	id, name  string
}

// token is one IAM access token.
type token struct {
	value     string
	expires   time.Time
	refreshAt time.Time
}

// tokenSource exchanges an IBM Cloud API key for IAM bearer tokens,
// caches the token, renews it ahead of its expiration, and lets one
// exchange run at a time however many requests need a token.
type tokenSource struct {
	endpoint string
	apiKey   string
	// profile, when set, replaces the API key with a trusted profile's
	// compute-resource token.
	profile *trustedProfile
	client  *http.Client
	// now is the clock; tests replace it.
	now func() time.Time

	mu      sync.Mutex
	current *token
	flight  singleflight.Group
	// exchanges counts token exchanges, for tests.
	exchanges int
}

func newTokenSource(iamURL *url.URL, apiKey string, client *http.Client) *tokenSource {
	return &tokenSource{
		endpoint: iamURL.JoinPath("identity", "token").String(),
		apiKey:   apiKey,
		client:   client,
		now:      time.Now,
	}
}

// Token returns a bearer token that is valid now. A token past its
// refresh point is renewed; when renewal fails and the old token is still
// valid, the old token is used.
func (ts *tokenSource) Token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	cur := ts.current
	now := ts.now()
	ts.mu.Unlock()
	if cur != nil && now.Before(cur.refreshAt) {
		return cur.value, nil
	}
	tok, err := ts.refresh(ctx)
	if err != nil {
		if cur != nil && now.Before(cur.expires.Add(-expirySkew)) {
			return cur.value, nil
		}
		return "", err
	}
	return tok.value, nil
}

// adopt takes over old's cached token when both exchange the same API
// key at the same IAM endpoint, so that a reconfiguration does not cost
// a token exchange.
func (ts *tokenSource) adopt(old *tokenSource) {
	if old == nil || old.apiKey != ts.apiKey || old.endpoint != ts.endpoint ||
		(old.profile == nil) != (ts.profile == nil) || (ts.profile != nil && *old.profile != *ts.profile) {
		return
	}
	old.mu.Lock()
	cur := old.current
	old.mu.Unlock()
	ts.mu.Lock()
	ts.current = cur
	ts.mu.Unlock()
}

// Invalidate drops the cached token when it is still bad, the one a
// request was refused with, so that the next Token call exchanges the key
// again. A token that was already replaced is left alone.
func (ts *tokenSource) Invalidate(bad string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.current != nil && ts.current.value == bad {
		ts.current = nil
	}
}

// Exchanges is the number of token exchanges made so far.
func (ts *tokenSource) Exchanges() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.exchanges
}

// refresh runs one token exchange for every concurrent caller. The
// exchange is detached from the first caller's cancellation, so that one
// client going away does not fail the others waiting on it.
func (ts *tokenSource) refresh(ctx context.Context) (*token, error) {
	ch := ts.flight.DoChan("token", func() (any, error) {
		// A caller that waited for the lock may find a fresh token.
		ts.mu.Lock()
		if cur := ts.current; cur != nil && ts.now().Before(cur.refreshAt) {
			ts.mu.Unlock()
			return cur, nil
		}
		ts.mu.Unlock()
		xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		tok, err := ts.exchange(xctx)
		if err != nil {
			return nil, err
		}
		ts.mu.Lock()
		ts.current = tok
		ts.mu.Unlock()
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*token), nil
	}
}

// iamResponse is the body of a successful token exchange.
type iamResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Expiration  int64  `json:"expiration"`
}

// iamError is IAM's error body.
type iamError struct {
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// form is the body of the token request: the apikey grant, or the
// cr-token grant with the compute-resource token read afresh from its file
// (the cluster rotates it).
func (ts *tokenSource) form() (url.Values, error) {
	p := ts.profile
	if p == nil {
		return url.Values{"grant_type": {grantAPIKey}, "apikey": {ts.apiKey}}, nil
	}
	f, err := os.Open(p.tokenFile)
	if err != nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "workload_identity_unavailable",
			"watsonx: the compute-resource token file cannot be read: "+err.Error())
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxCRToken))
	cr := strings.TrimSpace(string(raw))
	if err != nil || cr == "" {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "workload_identity_unavailable",
			"watsonx: the compute-resource token file "+p.tokenFile+" is empty or unreadable")
	}
	form := url.Values{"grant_type": {grantCRToken}, "cr_token": {cr}}
	if p.id != "" {
		form.Set("profile_id", p.id)
	} else {
		form.Set("profile_name", p.name)
	}
	return form, nil
}

// exchange performs POST {iam_url}/identity/token with the apikey or
// cr-token grant.
func (ts *tokenSource) exchange(ctx context.Context) (*token, error) {
	form, err := ts.form()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("watsonx: build IAM request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	ts.mu.Lock()
	ts.exchanges++
	ts.mu.Unlock()
	issued := ts.now()
	resp, err := ts.client.Do(req)
	if err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "iam_unreachable",
			"watsonx: the IBM Cloud IAM token service could not be reached")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "iam_unreachable",
			"watsonx: reading the IAM token response failed")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, iamFailure(resp.StatusCode, raw)
	}
	var ir iamResponse
	if err := json.Unmarshal(raw, &ir); err != nil || ir.AccessToken == "" {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_iam_response",
			"watsonx: the IAM token response carries no access_token")
	}
	return newToken(ir, issued), nil
}

// newToken computes the expiry and refresh point of an exchanged token.
// expires_in counts from the local time the exchange started, which is
// immune to clock skew between this host and IAM; expiration (Unix
// seconds) serves only when expires_in is missing.
func newToken(ir iamResponse, issued time.Time) *token {
	lifetime := time.Duration(ir.ExpiresIn) * time.Second
	if lifetime <= 0 && ir.Expiration > 0 {
		lifetime = time.Unix(ir.Expiration, 0).Sub(issued)
	}
	expires := issued.Add(lifetime)
	if lifetime <= 0 {
		// No usable lifetime: use the token for this request only.
		return &token{value: ir.AccessToken, expires: issued, refreshAt: issued}
	}
	ahead := min(lifetime/5, maxRefreshAhead)
	return &token{value: ir.AccessToken, expires: expires, refreshAt: expires.Add(-ahead)}
}

// iamFailure maps a refused token exchange. A refused key (IAM answers 400
// BXNIM0415E, or 401/403) is the operator's problem: the client gets a
// generic 401 that names IAM's error code but never the key.
func iamFailure(status int, raw []byte) *openai.Error {
	var ie iamError
	_ = json.Unmarshal(raw, &ie)
	code := ie.ErrorCode
	switch {
	case status == http.StatusTooManyRequests:
		return openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "iam_rate_limited",
			"watsonx: the IBM Cloud IAM token service is rate limiting token requests")
	case status >= 500:
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "iam_unavailable",
			fmt.Sprintf("watsonx: the IBM Cloud IAM token service failed with status %d", status))
	}
	msg := "watsonx: IBM Cloud IAM refused the configured API key"
	if code != "" && isIAMCode(code) {
		msg += " (" + code + ")"
	}
	return openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, "upstream_token_exchange_failed", msg)
}

// isIAMCode reports whether s looks like an IAM error code (BXNIM0415E),
// so that nothing else from the response reaches the message.
func isIAMCode(s string) bool {
	if len(s) > 16 {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
