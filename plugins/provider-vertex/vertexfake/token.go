package vertexfake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// jwtBearer is the grant type of the service-account flow.
const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// maxAssertionLife is the longest exp - iat Google accepts.
const maxAssertionLife = time.Hour

// clockSkew is the clock difference the token endpoint tolerates.
const clockSkew = 5 * time.Minute

// token serves the OAuth2 token endpoint: the JWT-bearer grant with an
// RS256 assertion signed by the service account's key.
func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint accepts POST only.")
		return
	}
	s.mu.Lock()
	var forced int
	if len(s.tokenFails) > 0 {
		forced, s.tokenFails = s.tokenFails[0], s.tokenFails[1:]
	}
	s.mu.Unlock()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	if form.Get("grant_type") != jwtBearer {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+form.Get("grant_type"))
		return
	}
	if err := s.verifyAssertion(form.Get("assertion")); err != "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", err)
		return
	}
	switch {
	case forced == http.StatusUnauthorized:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "The OAuth client was disabled.")
		return
	case forced >= 500:
		oauthError(w, forced, "internal_failure", "Backend error.")
		return
	case forced != 0:
		oauthError(w, forced, "invalid_grant", "Invalid grant: account not found")
		return
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	tok := "ya29.fake-" + base64.RawURLEncoding.EncodeToString(raw)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.opts.TokenTTL)
	s.issued++
	s.mu.Unlock()
	secs := int64(s.opts.TokenTTL / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": secs, "token_type": "Bearer"})
}

// verifyAssertion checks a JWT assertion the way Google's token endpoint
// does and returns what is wrong with it ("" when it is good).
func (s *Server) verifyAssertion(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}
	if !decodeSegment(parts[0], &header) {
		return "Invalid JWT header."
	}
	if header.Alg != "RS256" {
		return "Invalid JWT: algorithm must be RS256."
	}
	if header.Kid != "" && header.Kid != s.opts.KeyID {
		return "Invalid JWT Signature."
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "Invalid JWT Signature."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.opts.Key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return "Invalid JWT Signature."
	}
	var claims struct {
		Iss   string `json:"iss"`
		Sub   string `json:"sub"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
	}
	if !decodeSegment(parts[1], &claims) {
		return "Invalid JWT claims."
	}
	if claims.Iss != s.opts.ClientEmail {
		return "Invalid JWT: iss is not the service account."
	}
	if claims.Sub != "" && claims.Sub != s.opts.ClientEmail {
		return "Invalid grant: not a valid email or user ID."
	}
	if claims.Aud != s.TokenURL() {
		return "Invalid JWT: Failed audience check. The right audience is " + s.TokenURL()
	}
	scopes := strings.Fields(claims.Scope)
	ok := false
	for _, sc := range scopes {
		ok = ok || sc == Scope
	}
	if !ok {
		return "Invalid OAuth scope or ID token audience provided."
	}
	now := time.Now()
	iat, exp := time.Unix(claims.Iat, 0), time.Unix(claims.Exp, 0)
	if iat.After(now.Add(clockSkew)) || exp.Before(now.Add(-clockSkew)) || exp.Sub(iat) > maxAssertionLife || !exp.After(iat) {
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	return ""
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	return err == nil && json.Unmarshal(b, v) == nil
}

// oauthError writes the token endpoint's error body.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
