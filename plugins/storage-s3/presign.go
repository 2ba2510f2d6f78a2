package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// maxPresignTTL is the longest validity SigV4 allows a presigned URL.
const maxPresignTTL = 7 * 24 * time.Hour

// Presign returns a SigV4 presigned GET or PUT URL.
func (p *S3) Presign(ctx context.Context, req *storage.PresignRequest) (*storage.PresignedURL, error) {
	st, err := p.current()
	if err != nil {
		return nil, err
	}
	if req.TTL > maxPresignTTL {
		return nil, openai.InvalidRequest("ttl", fmt.Sprintf("S3 presigned URLs last at most %v, got %v", maxPresignTTL, req.TTL))
	}
	expires := time.Now().Add(req.TTL)
	opt := s3.WithPresignExpires(req.TTL)
	var url, method string
	var header http.Header
	switch req.Method {
	case http.MethodPut:
		in := &s3.PutObjectInput{Bucket: aws.String(req.Bucket), Key: aws.String(req.Key)}
		if req.ContentType != "" {
			in.ContentType = aws.String(req.ContentType)
		}
		r, err := st.presign.PresignPutObject(ctx, in, opt)
		if err != nil {
			return nil, mapError(err, req.Bucket, req.Key)
		}
		url, method, header = r.URL, r.Method, r.SignedHeader
	default:
		r, err := st.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(req.Bucket), Key: aws.String(req.Key)}, opt)
		if err != nil {
			return nil, mapError(err, req.Bucket, req.Key)
		}
		url, method, header = r.URL, r.Method, r.SignedHeader
	}
	header = header.Clone()
	// HTTP clients derive Host from the URL.
	header.Del("Host")
	return &storage.PresignedURL{URL: url, Method: method, Header: header, Expires: expires}, nil
}
