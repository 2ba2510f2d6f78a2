package bedrockfake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// signingService is the SigV4 service name Bedrock requests are scoped to.
const signingService = "bedrock"

// maxSkew is how far X-Amz-Date may be from the fake's clock.
const maxSkew = 5 * time.Minute

const amzDateFormat = "20060102T150405Z"

// AWS's messages for authentication failures.
const (
	msgInvalidToken = "The security token included in the request is invalid."
	msgMismatch     = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

func authFailure(code, msg string) *Failure {
	return &Failure{Code: code, Status: http.StatusForbidden, Message: msg}
}

// authenticate checks the request's Bedrock API key or SigV4 signature and
// returns the failure AWS would answer with, or nil.
func (f *Fake) authenticate(r *http.Request, body []byte) *Failure {
	auth := r.Header.Get("Authorization")
	if key, ok := strings.CutPrefix(auth, "Bearer "); ok {
		if f.opts.APIKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(f.opts.APIKey)) == 1 {
			return nil
		}
		return authFailure("UnrecognizedClientException", msgInvalidToken)
	}
	if auth == "" {
		return authFailure("MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	sig, err := parseAuthorization(auth)
	if err != nil {
		return authFailure("IncompleteSignatureException", err.Error())
	}
	if sig.service != signingService {
		return authFailure("InvalidSignatureException", fmt.Sprintf("Credential should be scoped to correct service: '%s'.", signingService))
	}
	if f.opts.Region != "" && sig.region != f.opts.Region {
		return authFailure("InvalidSignatureException", fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", sig.region))
	}
	secret, token, ok := f.keyPair(sig.accessKey)
	if !ok {
		return authFailure("UnrecognizedClientException", msgInvalidToken)
	}
	if token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Amz-Security-Token")), []byte(token)) != 1 {
		return authFailure("UnrecognizedClientException", msgInvalidToken)
	}
	sig.secretKey = secret
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return authFailure("IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if t.Format("20060102") != sig.date {
		return authFailure("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
	}
	now := f.opts.Now().UTC()
	if t.Before(now.Add(-maxSkew)) {
		return authFailure("InvalidSignatureException", fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 5 min.)",
			amzDate, now.Add(-maxSkew).Format(amzDateFormat), now.Format(amzDateFormat)))
	}
	if t.After(now.Add(maxSkew)) {
		return authFailure("InvalidSignatureException", fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 5 min.)",
			amzDate, now.Add(maxSkew).Format(amzDateFormat), now.Format(amzDateFormat)))
	}
	want, err := f.expectedAuthorization(r, body, sig, t)
	if err != nil {
		return authFailure("InvalidSignatureException", msgMismatch)
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(normalizeAuthorization(auth))) != 1 {
		return authFailure("InvalidSignatureException", msgMismatch)
	}
	return nil
}

// signature is a parsed SigV4 Authorization header.
type signature struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	// secretKey is the secret the fake holds for accessKey.
	secretKey string
}

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseAuthorization(h string) (*signature, error) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return nil, fmt.Errorf("Authorization header requires 'AWS4-HMAC-SHA256' algorithm.")
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
		}
		fields[k] = v
	}
	cred, signed, sigHex := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if cred == "" || signed == "" || sigHex == "" {
		return nil, fmt.Errorf("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return nil, fmt.Errorf("Credential should be scoped to a valid region and service, and end with 'aws4_request'.")
	}
	return &signature{accessKey: scope[0], date: scope[1], region: scope[2], service: scope[3], signedHeaders: strings.Split(signed, ";")}, nil
}

// expectedAuthorization signs a copy of r that holds only the headers the
// client said it signed, with the fake's secret, and returns the
// Authorization header the client should have sent.
func (f *Fake) expectedAuthorization(r *http.Request, body []byte, sig *signature, t time.Time) (string, error) {
	cp, err := http.NewRequestWithContext(context.Background(), r.Method, "http://placeholder/", nil)
	if err != nil {
		return "", err
	}
	cp.URL = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	cp.Host = r.Host
	for _, h := range sig.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			cp.ContentLength = r.ContentLength
		default:
			if v := r.Header.Values(h); len(v) > 0 {
				cp.Header[http.CanonicalHeaderKey(h)] = slices.Clone(v)
			}
		}
	}
	if !slices.Contains(sig.signedHeaders, "content-length") {
		cp.ContentLength = 0
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: sig.accessKey, SecretAccessKey: sig.secretKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), sig.service, sig.region, t); err != nil {
		return "", err
	}
	return normalizeAuthorization(cp.Header.Get("Authorization")), nil
}

// normalizeAuthorization removes optional spaces after the commas.
func normalizeAuthorization(h string) string {
	return strings.ReplaceAll(h, ", ", ",")
}

// keyPair returns the secret key and session token the fake expects with
// accessKey: from Options.Keys when set, else the fixed pair.
func (f *Fake) keyPair(accessKey string) (secret, token string, ok bool) {
	if f.opts.Keys != nil {
		return f.opts.Keys(accessKey)
	}
	if f.opts.AccessKeyID == "" || accessKey != f.opts.AccessKeyID {
		return "", "", false
	}
	return f.opts.SecretAccessKey, f.opts.SessionToken, true
}
