package azurefake

import (
	"net/http"
	"strconv"
	"time"
)

// errorBody is Azure's error envelope. Azure often puts an HTTP-ish
// string in code and leaves type out.
type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	Type       *string     `json:"type,omitempty"`
	Param      *string     `json:"param,omitempty"`
	Status     int         `json:"status,omitempty"`
	InnerError *innerError `json:"innererror,omitempty"`
}

type innerError struct {
	Code                string        `json:"code"`
	ContentFilterResult filterResults `json:"content_filter_result"`
}

func writeError(w http.ResponseWriter, status int, code, msg string, inner *innerError) {
	writeJSON(w, status, errorBody{Error: errorObject{Code: code, Message: msg, InnerError: inner}})
}

// writeFailure answers with a forced failure in the shape Azure uses for
// its status.
func writeFailure(w http.ResponseWriter, f failure) {
	if f.retryAfter > 0 {
		secs := int((f.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("retry-after-ms", strconv.FormatInt(f.retryAfter.Milliseconds(), 10))
	}
	switch f.status {
	case http.StatusBadRequest:
		param := "prompt"
		filtered := safeFilter()
		filtered.Violence = severity{Filtered: true, Severity: "high"}
		writeJSON(w, f.status, errorBody{Error: errorObject{
			Code:    "content_filter",
			Message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
			Param:   &param,
			Status:  http.StatusBadRequest,
			InnerError: &innerError{
				Code:                "ResponsibleAIPolicyViolation",
				ContentFilterResult: filtered,
			},
		}})
	case http.StatusUnauthorized:
		writeError(w, f.status, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.", nil)
	case http.StatusNotFound:
		writeError(w, f.status, "DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.", nil)
	case http.StatusTooManyRequests:
		writeError(w, f.status, "429", "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "+strconv.Itoa(int(f.retryAfter/time.Second))+" seconds.", nil)
	case http.StatusServiceUnavailable:
		writeError(w, f.status, "ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later.", nil)
	default:
		typ := "server_error"
		writeJSON(w, f.status, errorBody{Error: errorObject{
			Code: "InternalServerError", Type: &typ,
			Message: "The server had an error while processing your request. Sorry about that!",
		}})
	}
}
