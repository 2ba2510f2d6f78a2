package azurefake

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"
)

// entraError is the Microsoft identity platform's OAuth error body.
type entraError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
}

// tokenResponse is a successful client-credentials response.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// serveToken implements POST /{tenant}/oauth2/v2.0/token for the
// client-credentials grant.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	s.mu.Lock()
	s.tokenRequests++
	delay := s.tokenDelay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	fail := func(status int, code, desc string, num int) {
		writeJSON(w, status, entraError{Error: code, ErrorDescription: desc, ErrorCodes: []int{num}})
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.", 900561)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must be form-encoded.", 900144)
		return
	}
	switch {
	case s.opts.TenantID == "" || tenant != s.opts.TenantID:
		fail(http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+tenant+"' not found.", 90002)
	case r.PostForm.Get("grant_type") != "client_credentials":
		fail(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003)
	case r.PostForm.Get("client_id") != s.opts.ClientID:
		fail(http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+r.PostForm.Get("client_id")+"' was not found in the directory.", 700016)
	case r.PostForm.Get("client_secret") != s.opts.ClientSecret:
		fail(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.", 7000215)
	case r.PostForm.Get("scope") != s.opts.Scope:
		fail(http.StatusBadRequest, "invalid_scope", "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.", 70011)
	default:
		token, err := s.issueToken()
		if err != nil {
			fail(http.StatusInternalServerError, "temporarily_unavailable", "AADSTS50000: There was an error issuing a token.", 50000)
			return
		}
		secs := int((s.opts.TokenTTL + time.Second - 1) / time.Second)
		w.Header().Set("Cache-Control", "no-store, no-cache")
		writeJSON(w, http.StatusOK, tokenResponse{TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: token})
	}
}

func (s *Server) issueToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := "eyFake." + hex.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = time.Now().Add(s.opts.TokenTTL)
	return token, nil
}

func (s *Server) tokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[token]
	if ok && time.Now().Before(exp) {
		return true
	}
	return s.opts.AcceptToken != nil && s.opts.AcceptToken(token)
}
