package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// verifyV4 checks a GCS V4 signed URL the way the service does: it
// rebuilds the canonical request and the string to sign from the URL, the
// method and the headers the client will send, checks X-Goog-Signature
// against the service account's public key, and checks that at is within
// X-Goog-Date + X-Goog-Expires. fake-gcs-server accepts signed URLs
// without any of this, so the tests verify here what GCS would.
//
// The canonical host is the URL's host name without a port: GCS serves on
// the default port, where the two agree.
func verifyV4(rawURL, method string, header http.Header, email string, pub *rsa.PublicKey, at time.Time) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parse URL: %w", err)
	}
	q := u.Query()
	if alg := q.Get("X-Goog-Algorithm"); alg != "GOOG4-RSA-SHA256" {
		return fmt.Errorf("X-Goog-Algorithm = %q", alg)
	}
	date, err := time.Parse(v4DateFormat, q.Get("X-Goog-Date"))
	if err != nil {
		return fmt.Errorf("X-Goog-Date: %w", err)
	}
	expires, err := strconv.Atoi(q.Get("X-Goog-Expires"))
	if err != nil || expires < 1 || expires > 7*24*3600 {
		return fmt.Errorf("X-Goog-Expires = %q", q.Get("X-Goog-Expires"))
	}
	scope := date.Format("20060102") + "/auto/storage/goog4_request"
	if cred := q.Get("X-Goog-Credential"); cred != email+"/"+scope {
		return fmt.Errorf("X-Goog-Credential = %q, want %q", cred, email+"/"+scope)
	}
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil || len(sig) == 0 {
		return errors.New("X-Goog-Signature is not hex")
	}

	signed := strings.Split(q.Get("X-Goog-SignedHeaders"), ";")
	if !slices.IsSorted(signed) || !slices.Contains(signed, "host") {
		return fmt.Errorf("X-Goog-SignedHeaders = %q: must be sorted and include host", q.Get("X-Goog-SignedHeaders"))
	}
	var canonHeaders strings.Builder
	for _, name := range signed {
		v := header.Get(name)
		if name == "host" {
			v = u.Hostname()
		}
		if v == "" {
			return fmt.Errorf("signed header %q is not sent", name)
		}
		fmt.Fprintf(&canonHeaders, "%s:%s\n", name, strings.Join(strings.Fields(v), " "))
	}

	q.Del("X-Goog-Signature")
	canonQuery := strings.ReplaceAll(q.Encode(), "+", "%20")
	canonRequest := strings.Join([]string{
		method,
		canonicalPath(u.Path),
		canonQuery,
		canonHeaders.String(),
		strings.Join(signed, ";"),
		"UNSIGNED-PAYLOAD",
	}, "\n")
	reqSum := sha256.Sum256([]byte(canonRequest))
	stringToSign := strings.Join([]string{
		"GOOG4-RSA-SHA256",
		date.Format(v4DateFormat),
		scope,
		hex.EncodeToString(reqSum[:]),
	}, "\n")
	sum := sha256.Sum256([]byte(stringToSign))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature does not match: %w", err)
	}
	if end := date.Add(time.Duration(expires) * time.Second); at.Before(date) || at.After(end) {
		return fmt.Errorf("%w: valid %s to %s, now %s", errExpired, date.Format(time.RFC3339), end.Format(time.RFC3339), at.Format(time.RFC3339))
	}
	return nil
}

// errExpired is returned by verifyV4 for a URL used outside its validity.
var errExpired = errors.New("signed URL expired")

// canonicalPath percent-encodes each path segment leaving only RFC 3986
// unreserved characters, as the V4 canonical request requires.
func canonicalPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		var b strings.Builder
		for _, c := range []byte(s) {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		segs[i] = b.String()
	}
	return strings.Join(segs, "/")
}
