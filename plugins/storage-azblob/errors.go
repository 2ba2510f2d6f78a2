package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// codeInvalidMetadata is the error code for metadata Azure cannot store.
const codeInvalidMetadata = "invalid_metadata"

// op names the operation an error came from, for messages.
type op string

// Operations, as they appear in error messages.
const (
	opPut     op = "put"
	opGet     op = "get"
	opHead    op = "head"
	opList    op = "list"
	opDelete  op = "delete"
	opPresign op = "presign"
	opHealth  op = "health"
)

// mapError turns an Azure SDK error into the error the client should see:
// an *openai.Error for statuses the client can act on, otherwise err
// wrapped with the operation and object (which the host reports as 502).
func mapError(err error, o op, bucket, key string) error {
	if err == nil {
		return nil
	}
	var oe *openai.Error
	if errors.As(err, &oe) {
		return oe
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("azure blob %s %s/%s: %w", o, bucket, key, err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("azure blob %s %s/%s: %w", o, bucket, key, err)
	}
	code := bloberror.Code(re.ErrorCode)
	switch {
	case code == bloberror.ContainerNotFound, code == bloberror.ContainerBeingDeleted:
		return storage.BucketNotFound(bucket)
	case code == bloberror.BlobNotFound:
		return storage.NotFound(bucket, key)
	case re.StatusCode == http.StatusNotFound && key != "":
		return storage.NotFound(bucket, key)
	case re.StatusCode == http.StatusNotFound:
		return storage.BucketNotFound(bucket)
	case re.StatusCode == http.StatusUnauthorized, re.StatusCode == http.StatusForbidden:
		return storage.AccessDenied(fmt.Sprintf("azure blob storage refused %s of %s/%s: %s", o, bucket, key, re.ErrorCode))
	case code == bloberror.InvalidMetadata:
		e := openai.InvalidRequest("metadata", fmt.Sprintf("azure blob storage rejected the metadata of %s/%s", bucket, key))
		e.Code = codeInvalidMetadata
		return e
	case re.StatusCode == http.StatusBadRequest, re.StatusCode == http.StatusConflict,
		re.StatusCode == http.StatusPreconditionFailed, re.StatusCode == http.StatusRequestEntityTooLarge:
		e := openai.NewError(re.StatusCode, openai.TypeInvalidRequest, string(code),
			fmt.Sprintf("azure blob storage rejected %s of %s/%s: %s", o, bucket, key, re.ErrorCode))
		return e
	case re.StatusCode == http.StatusTooManyRequests, re.StatusCode == http.StatusServiceUnavailable:
		e := openai.NewError(re.StatusCode, openai.TypeForStatus(re.StatusCode), string(code),
			fmt.Sprintf("azure blob storage is busy (%s of %s/%s): %s", o, bucket, key, re.ErrorCode))
		e.RetryAfter = retryAfter(re.RawResponse)
		return e
	}
	return fmt.Errorf("azure blob %s %s/%s: %w", o, bucket, key, err)
}

// retryAfter reads a Retry-After header in seconds, or 0.
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// isObjectNotFound reports whether err is the 404 for a missing object.
func isObjectNotFound(err error) bool {
	var oe *openai.Error
	return errors.As(err, &oe) && oe.Code == storage.CodeObjectNotFound
}
