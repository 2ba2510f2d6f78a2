package vertexfake

import (
	"fmt"
	"net/http"
)

// Failure is a forced error response.
type Failure struct {
	// Status is the HTTP status, e.g. 400, 401, 403, 404, 429, 500 or 503.
	Status int
	// Message defaults to a message like the API's for Status.
	Message string
	// RetryDelay, when set, adds a google.rpc.RetryInfo detail, e.g. "7s".
	RetryDelay string
	// RetryAfter is sent as the Retry-After header when set, e.g. "7".
	RetryAfter string
}

// rpcCodes are the google.rpc status names and default messages by HTTP
// status.
var rpcCodes = map[int][2]string{
	400: {"INVALID_ARGUMENT", "Request contains an invalid argument."},
	401: {"UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."},
	403: {"PERMISSION_DENIED", "Permission 'aiplatform.endpoints.predict' denied on resource (or it may not exist)."},
	404: {"NOT_FOUND", "Requested entity was not found."},
	405: {"UNIMPLEMENTED", "Method not allowed."},
	409: {"ABORTED", "The operation was aborted."},
	413: {"INVALID_ARGUMENT", "Request payload size exceeds the limit."},
	429: {"RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."},
	499: {"CANCELLED", "The operation was cancelled."},
	500: {"INTERNAL", "Internal error encountered."},
	501: {"UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."},
	503: {"UNAVAILABLE", "The service is currently unavailable."},
	504: {"DEADLINE_EXCEEDED", "The request timed out. Please try again."},
}

// statusBody is a google.rpc.Status error body.
func statusBody(status int, msg string, details []any) map[string]any {
	def, ok := rpcCodes[status]
	if !ok {
		def = [2]string{"UNKNOWN", http.StatusText(status)}
	}
	if msg == "" {
		msg = def[1]
	}
	e := map[string]any{"code": status, "message": msg, "status": def[0]}
	if len(details) > 0 {
		e["details"] = details
	}
	return map[string]any{"error": e}
}

// writeStatus writes a google.rpc error response.
func writeStatus(w http.ResponseWriter, status int, msg string, details []any) {
	writeJSON(w, status, statusBody(status, msg, details))
}

func writeFailure(w http.ResponseWriter, f Failure) {
	var details []any
	if f.RetryDelay != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f.RetryDelay})
	}
	if f.Status == http.StatusTooManyRequests {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
			"reason": "RATE_LIMIT_EXCEEDED", "domain": "aiplatform.googleapis.com"})
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeStatus(w, f.Status, f.Message, details)
}

// invalidError is the message of a 400 INVALID_ARGUMENT.
type invalidError string

func (e invalidError) Error() string { return string(e) }

// invalidf returns an invalidError with a formatted message.
func invalidf(format string, args ...any) error { return invalidError(fmt.Sprintf(format, args...)) }
