'use strict';
// Errors on the wire. The host reads a failed call's HTTP status, OpenAI
// error type and code from an llmproxy.plugin.v1.ErrorDetail carried in
// the gRPC status details (the grpc-status-details-bin trailer); without
// one it falls back to a generic 502. UNIMPLEMENTED with no detail means
// "this plugin does not offer the operation".

const grpc = require('@grpc/grpc-js');

// codeForHTTP maps an HTTP status to the gRPC code the Go SDK uses for it.
function codeForHTTP(status) {
  switch (status) {
    case 400: case 413: case 422: return grpc.status.INVALID_ARGUMENT;
    case 401: return grpc.status.UNAUTHENTICATED;
    case 403: return grpc.status.PERMISSION_DENIED;
    case 404: return grpc.status.NOT_FOUND;
    case 409: return grpc.status.ALREADY_EXISTS;
    case 412: return grpc.status.FAILED_PRECONDITION;
    case 416: return grpc.status.OUT_OF_RANGE;
    case 429: return grpc.status.RESOURCE_EXHAUSTED;
    case 499: return grpc.status.CANCELLED;
    case 501: return grpc.status.UNIMPLEMENTED;
    case 503: return grpc.status.UNAVAILABLE;
    case 504: return grpc.status.DEADLINE_EXCEEDED;
  }
  return status >= 500 ? grpc.status.INTERNAL : grpc.status.UNKNOWN;
}

// OpenAIError is an error the client should see in the OpenAI error shape.
class OpenAIError extends Error {
  constructor(status, type, code, message, param) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code || '';
    this.param = param || '';
    this.retryAfterMs = 0;
  }
}

// invalidRequest is a 400 invalid_request_error about param.
function invalidRequest(code, message, param) {
  return new OpenAIError(400, 'invalid_request_error', code, message, param);
}

// Statuses encodes OpenAIErrors as gRPC status objects for grpc-js, given
// the protobufjs types (loaded with keepCase) google.rpc.Status and llmproxy.plugin.v1.ErrorDetail.
class Statuses {
  constructor(statusType, detailType) {
    this.statusType = statusType;
    this.detailType = detailType;
  }

  // from turns any error thrown by provider code into a grpc-js status
  // object. Errors that are not OpenAIErrors become 502 upstream errors,
  // as in the Go SDK.
  from(err) {
    if (err && err.grpcStatus) {
      return err.grpcStatus;
    }
    const e = err instanceof OpenAIError ? err
      : new OpenAIError(502, 'upstream_error', 'upstream_error', String(err && err.message || err));
    const code = codeForHTTP(e.status);
    const detail = this.detailType.encode(this.detailType.create({
      http_status: e.status,
      type: e.type,
      code: e.code,
      param: e.param,
      retry_after_ms: e.retryAfterMs,
    })).finish();
    const st = this.statusType.encode(this.statusType.create({
      code,
      message: e.message,
      details: [{ type_url: 'type.googleapis.com/llmproxy.plugin.v1.ErrorDetail', value: detail }],
    })).finish();
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', Buffer.from(st));
    return { code, details: e.message, metadata };
  }
}

// unimplemented is the status for an operation the plugin does not offer.
function unimplemented(method) {
  return { code: grpc.status.UNIMPLEMENTED, details: `${method} is not implemented by this plugin` };
}

module.exports = { OpenAIError, invalidRequest, Statuses, unimplemented, codeForHTTP };
