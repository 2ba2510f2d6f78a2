package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

var errNotConfigured = openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
	"the s3 storage instance is not configured")

// mapError turns an error of the AWS SDK into the error the client sees.
// A 404 without an S3 error code (as HEAD answers carry no body) is
// object_not_found when key is set, bucket_not_found otherwise.
func mapError(err error, bucket, key string) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	code, msg := "", err.Error()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchKey":
		return storage.NotFound(bucket, key)
	case code == "NoSuchBucket":
		return storage.BucketNotFound(bucket)
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || status == http.StatusForbidden:
		return storage.AccessDenied(fmt.Sprintf("s3 refused access to %s/%s: %s %s", bucket, key, code, msg))
	case code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable:
		return openai.NewError(http.StatusRequestedRangeNotSatisfiable, openai.TypeInvalidRequest, storage.CodeInvalidRange,
			fmt.Sprintf("the range is not satisfiable for %s/%s", bucket, key))
	case status == http.StatusNotFound && key != "":
		return storage.NotFound(bucket, key)
	case status == http.StatusNotFound:
		return storage.BucketNotFound(bucket)
	case code == "SlowDown" || status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		e := openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "backend_busy",
			fmt.Sprintf("s3 asked to slow down: %s %s", code, msg))
		e.RetryAfter = time.Second
		return e
	case status == http.StatusBadRequest || code == "KeyTooLongError" || code == "InvalidArgument" || code == "InvalidBucketName":
		return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "invalid_request",
			fmt.Sprintf("s3 rejected the request for %s/%s: %s %s", bucket, key, code, msg))
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error",
		fmt.Sprintf("s3 request for %s/%s failed: %v", bucket, key, err))
}

// hasCode reports whether err is an *openai.Error with the given code.
func hasCode(err error, code string) bool {
	var e *openai.Error
	return errors.As(err, &e) && e.Code == code
}
