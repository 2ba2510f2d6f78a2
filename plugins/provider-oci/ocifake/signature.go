package ocifake

import (
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Key is an RSA API signing key as OCI users hold it: the PEM of the
// private key, the public key the tenancy knows, and its fingerprint (the
// MD5 of the DER public key in colon-separated hex).
type Key struct {
	Private     *rsa.PrivateKey
	PrivatePEM  string
	Public      *rsa.PublicKey
	Fingerprint string
}

// GenerateKey returns a new 2048-bit signing key.
func GenerateKey() (*Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("ocifake: generate key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("ocifake: encode public key: %w", err)
	}
	sum := md5.Sum(der)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return &Key{Private: k, PrivatePEM: string(priv), Public: &k.PublicKey, Fingerprint: strings.Join(hexes, ":")}, nil
}

// maxClockSkew is how far the date header may be from the fake's clock.
const maxClockSkew = 5 * time.Minute

// signatureParams are the parameters of an Authorization: Signature header.
type signatureParams struct {
	version, headers, keyID, algorithm, signature string
}

// parseSignature parses `Signature version="1",headers="...",keyId="...",
// algorithm="rsa-sha256",signature="..."` in any parameter order.
func parseSignature(h string) (signatureParams, error) {
	var p signatureParams
	rest, ok := strings.CutPrefix(h, "Signature ")
	if !ok {
		return p, errors.New("authorization is not a Signature")
	}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok || !strings.HasPrefix(after, `"`) {
			return p, errors.New("malformed signature parameter")
		}
		end := strings.IndexByte(after[1:], '"')
		if end < 0 {
			return p, errors.New("unterminated signature parameter")
		}
		val := after[1 : end+1]
		rest = strings.TrimPrefix(strings.TrimSpace(after[end+2:]), ",")
		rest = strings.TrimSpace(rest)
		switch strings.TrimSpace(name) {
		case "version":
			p.version = val
		case "headers":
			p.headers = val
		case "keyId":
			p.keyID = val
		case "algorithm":
			p.algorithm = val
		case "signature":
			p.signature = val
		}
	}
	return p, nil
}

// verify checks the request's OCI HTTP signature the way the service
// does: the key id must name a known key, the signed headers must cover
// date, (request-target) and host (plus content-length, content-type and
// x-content-sha256 for bodies), x-content-sha256 and content-length must
// match the body, the date must be fresh, and the RSA-SHA256 signature
// over the signing string must verify with the public key.
//
// generic lists the headers every request must sign; nil means date,
// (request-target) and host.
func verify(r *http.Request, body []byte, keys map[string]*rsa.PublicKey, now time.Time, generic ...string) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errors.New("missing authorization header")
	}
	p, err := parseSignature(auth)
	if err != nil {
		return err
	}
	if p.version != "1" || p.algorithm != "rsa-sha256" {
		return fmt.Errorf("unsupported signature version %q or algorithm %q", p.version, p.algorithm)
	}
	pub := keys[p.keyID]
	if pub == nil {
		return fmt.Errorf("unknown keyId %q", p.keyID)
	}
	headers := strings.Fields(strings.ToLower(p.headers))
	required := append([]string(nil), generic...)
	if len(required) == 0 {
		required = []string{"date", "(request-target)", "host"}
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		required = append(required, "content-length", "content-type", "x-content-sha256")
	}
	for _, want := range required {
		found := false
		for _, h := range headers {
			found = found || h == want
		}
		if !found {
			return fmt.Errorf("header %q is not signed", want)
		}
	}
	d, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		return errors.New("date header missing or malformed")
	}
	if skew := now.Sub(d); skew > maxClockSkew || skew < -maxClockSkew {
		return fmt.Errorf("date %s is too far from the server clock", d)
	}
	for _, h := range headers {
		switch h {
		case "x-content-sha256":
			sum := sha256.Sum256(body)
			if r.Header.Get("x-content-sha256") != base64.StdEncoding.EncodeToString(sum[:]) {
				return errors.New("x-content-sha256 does not match the body")
			}
		case "content-length":
			if r.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				return errors.New("content-length does not match the body")
			}
		}
	}
	lines := make([]string, len(headers))
	for i, h := range headers {
		var v string
		switch h {
		case "(request-target)":
			v = strings.ToLower(r.Method) + " " + r.URL.RequestURI()
		case "host":
			v = r.Host
		default:
			if len(r.Header.Values(h)) == 0 {
				return fmt.Errorf("signed header %q is absent", h)
			}
			v = r.Header.Get(h)
		}
		lines[i] = h + ": " + v
	}
	sig, err := base64.StdEncoding.DecodeString(p.signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	digest := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return errors.New("signature does not verify")
	}
	return nil
}

// sha256Sum is sha256.Sum256 as a slice.
func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
