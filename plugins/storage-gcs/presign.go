package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	gcs "cloud.google.com/go/storage"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// maxPresignTTL is the longest validity GCS accepts for a V4 signed URL.
const maxPresignTTL = 7 * 24 * time.Hour

// v4DateFormat is the layout of X-Goog-Date.
const v4DateFormat = "20060102T150405Z"

// Presign implements storage.Presigner. It returns a V4 signed URL, signed
// with the service account key when one is configured and otherwise
// through the IAM Credentials API with the client's own identity. A
// presigned PUT with a content type must send that Content-Type, which the
// returned Header carries.
func (s *Store) Presign(_ context.Context, req *storage.PresignRequest) (*storage.PresignedURL, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	if req.TTL < time.Second || req.TTL > maxPresignTTL {
		return nil, openai.InvalidRequest("ttl", fmt.Sprintf("ttl must be between 1s and %s, got %s", maxPresignTTL, req.TTL))
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPut {
		return nil, openai.InvalidRequest("method", fmt.Sprintf("presign method must be GET or PUT, got %q", req.Method))
	}
	if b.sa == nil && b.anonymous {
		return nil, openai.NewError(http.StatusNotImplemented, openai.TypeInvalidRequest, storage.CodePresignDisabled,
			"presigned URLs need the service_account_json credential when the instance is anonymous")
	}
	opts := &gcs.SignedURLOptions{
		Scheme: gcs.SigningSchemeV4,
		Style:  gcs.PathStyle(),
		Method: req.Method,
		// SignedURL reads the clock again and truncates to whole seconds;
		// half a second of slack keeps X-Goog-Expires at the full TTL.
		Expires:  time.Now().Add(req.TTL + 500*time.Millisecond),
		Hostname: b.signHost,
		Insecure: b.insecure,
	}
	if b.sa != nil {
		opts.GoogleAccessID = b.sa.ClientEmail
		opts.PrivateKey = []byte(b.sa.PrivateKey)
	}
	header := http.Header{}
	if req.Method == http.MethodPut && req.ContentType != "" {
		opts.ContentType = req.ContentType
		header.Set("Content-Type", req.ContentType)
	}
	signed, err := b.client.Bucket(req.Bucket).SignedURL(req.Key, opts)
	if err != nil {
		return nil, mapError(fmt.Errorf("sign: %w", err), opPresign, req.Bucket, req.Key)
	}
	expires, err := signedExpiry(signed)
	if err != nil {
		return nil, fmt.Errorf("gcs presign %s/%s: %w", req.Bucket, req.Key, err)
	}
	return &storage.PresignedURL{URL: signed, Method: req.Method, Header: header, Expires: expires}, nil
}

// signedExpiry reads when a V4 signed URL expires: X-Goog-Date plus
// X-Goog-Expires seconds.
func signedExpiry(signed string) (time.Time, error) {
	u, err := url.Parse(signed)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse signed URL: %w", err)
	}
	q := u.Query()
	date, err := time.Parse(v4DateFormat, q.Get("X-Goog-Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("signed URL X-Goog-Date: %w", err)
	}
	secs, err := strconv.ParseInt(q.Get("X-Goog-Expires"), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("signed URL X-Goog-Expires: %w", err)
	}
	return date.Add(time.Duration(secs) * time.Second), nil
}
