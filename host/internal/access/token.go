package access

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// CodeInvalidPageToken is the error code of a page token the host did not
// issue, or issued for another listing.
const CodeInvalidPageToken = "invalid_page_token"

// PageTokens seals the page tokens of storage listings. A backend's own
// token can be a readable key (the last one listed), which would name
// objects the policy hides; the client only ever sees it encrypted with
// AES-256-GCM and bound to the listing it continues (instance, bucket,
// prefix, delimiter), so it can neither read, forge nor reuse one for
// another listing.
type PageTokens struct {
	aead cipher.AEAD
}

// NewPageTokens returns a sealer keyed by secret, any string of at least
// 16 bytes shared by the replicas that serve one listing, or by a random
// key when secret is empty, in which case tokens do not outlive the
// process.
func NewPageTokens(secret string) (*PageTokens, error) {
	var key [32]byte
	switch {
	case secret == "":
		if _, err := rand.Read(key[:]); err != nil {
			return nil, fmt.Errorf("page token key: %w", err)
		}
	case len(secret) < 16:
		return nil, fmt.Errorf("page_token_secret must be at least 16 bytes")
	default:
		key = sha256.Sum256([]byte("llmproxy page token\x00" + secret))
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	return &PageTokens{aead: aead}, nil
}

// Scope names one listing for Seal and Open.
func Scope(instance, bucket, prefix, delimiter string) string {
	return strings.Join([]string{instance, bucket, prefix, delimiter}, "\x00")
}

// Seal returns the client's token for the backend's token of the listing
// scope; an empty token (no further page) stays empty.
func (t *PageTokens) Seal(scope, backend string) string {
	if backend == "" {
		return ""
	}
	nonce := make([]byte, t.aead.NonceSize(), t.aead.NonceSize()+len(backend)+t.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(t.aead.Seal(nonce, nonce, []byte(backend), []byte(scope)))
}

// Open returns the backend's token sealed in token, or a 400
// invalid_page_token error when the host did not seal it for scope.
func (t *PageTokens) Open(scope, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	invalid := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeInvalidPageToken,
		"page_token is not a token this host issued for this listing; pass next_page_token from the previous page unchanged")
	invalid.Param = "page_token"
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < t.aead.NonceSize()+t.aead.Overhead() {
		return "", invalid
	}
	n := t.aead.NonceSize()
	plain, err := t.aead.Open(nil, b[:n], b[n:], []byte(scope))
	if err != nil {
		return "", invalid
	}
	return string(plain), nil
}
