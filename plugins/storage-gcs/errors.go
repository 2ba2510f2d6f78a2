package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	gcs "cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

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

// mapError turns a GCS client error into the error the client should see:
// an *openai.Error for statuses the client can act on, otherwise err
// wrapped with the operation and object (which the host reports as 502).
// A 404 on an object is reported as object_not_found; callers that must
// tell a missing bucket apart check the bucket (see notFound).
func mapError(err error, o op, bucket, key string) error {
	if err == nil {
		return nil
	}
	var oe *openai.Error
	if errors.As(err, &oe) {
		return oe
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("gcs %s %s/%s: %w", o, bucket, key, err)
	case errors.Is(err, gcs.ErrBucketNotExist):
		return storage.BucketNotFound(bucket)
	case errors.Is(err, gcs.ErrObjectNotExist):
		return storage.NotFound(bucket, key)
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return fmt.Errorf("gcs %s %s/%s: %w", o, bucket, key, err)
	}
	reason := ge.Message
	if len(ge.Errors) > 0 && ge.Errors[0].Reason != "" {
		reason = ge.Errors[0].Reason
	}
	switch {
	case ge.Code == http.StatusNotFound && key != "":
		return storage.NotFound(bucket, key)
	case ge.Code == http.StatusNotFound:
		return storage.BucketNotFound(bucket)
	case ge.Code == http.StatusUnauthorized, ge.Code == http.StatusForbidden:
		return storage.AccessDenied(fmt.Sprintf("google cloud storage refused %s of %s/%s: %s", o, bucket, key, reason))
	case ge.Code == http.StatusRequestedRangeNotSatisfiable:
		return openai.NewError(ge.Code, openai.TypeInvalidRequest, storage.CodeInvalidRange,
			fmt.Sprintf("google cloud storage: range not satisfiable for %s/%s", bucket, key))
	case ge.Code == http.StatusBadRequest, ge.Code == http.StatusConflict, ge.Code == http.StatusPreconditionFailed,
		ge.Code == http.StatusRequestEntityTooLarge:
		return openai.NewError(ge.Code, openai.TypeInvalidRequest, reason,
			fmt.Sprintf("google cloud storage rejected %s of %s/%s: %s", o, bucket, key, ge.Message))
	case ge.Code == http.StatusTooManyRequests, ge.Code == http.StatusServiceUnavailable:
		e := openai.NewError(ge.Code, openai.TypeForStatus(ge.Code), reason,
			fmt.Sprintf("google cloud storage is busy (%s of %s/%s)", o, bucket, key))
		e.RetryAfter = retryAfter(ge.Header)
		return e
	}
	return fmt.Errorf("gcs %s %s/%s: %w", o, bucket, key, err)
}

// retryAfter reads a Retry-After header in seconds, or 0.
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// isObjectNotFound reports whether err is the 404 for a missing object.
func isObjectNotFound(err error) bool {
	var oe *openai.Error
	return errors.As(err, &oe) && oe.Code == storage.CodeObjectNotFound
}
