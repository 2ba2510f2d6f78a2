package openaifake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds a request body the fake accepts.
const maxBody = 64 << 20

const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
)

// apiError is the inner object of OpenAI's error body; Param and Code are
// null when empty.
type apiError struct {
	Message string
	Type    string
	Param   string
	Code    string
}

func (e apiError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}{e.Message, e.Type, nullable(e.Param), nullable(e.Code)})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func errorBody(e apiError) []byte {
	b, _ := json.Marshal(struct {
		Error apiError `json:"error"`
	}{e})
	return b
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, errorBody(e))
}

// writeAuthError answers a request without the right bearer key the way
// OpenAI does, without echoing the key.
func writeAuthError(w http.ResponseWriter, r *http.Request) {
	a := r.Header.Get("Authorization")
	if a == "" {
		writeError(w, http.StatusUnauthorized, apiError{Type: typeInvalidRequest,
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."})
		return
	}
	key := strings.TrimPrefix(a, "Bearer ")
	masked := "***"
	if len(key) > 8 {
		masked = key[:3] + "***" + key[len(key)-4:]
	}
	writeError(w, http.StatusUnauthorized, apiError{Type: typeInvalidRequest, Code: "invalid_api_key",
		Message: "Incorrect API key provided: " + masked + "."})
}

// failureDefaults are OpenAI's usual error fields per status.
var failureDefaults = map[int]apiError{
	http.StatusBadRequest:          {Type: typeInvalidRequest, Message: "Invalid request."},
	http.StatusUnauthorized:        {Type: typeInvalidRequest, Code: "invalid_api_key", Message: "Incorrect API key provided."},
	http.StatusForbidden:           {Type: "permission_error", Code: "unsupported_country_region_territory", Message: "Country, region, or territory not supported."},
	http.StatusNotFound:            {Type: typeInvalidRequest, Code: "model_not_found", Message: "The model does not exist or you do not have access to it."},
	http.StatusTooManyRequests:     {Type: "requests", Code: "rate_limit_exceeded", Message: "Rate limit reached for requests. Please try again later."},
	http.StatusInternalServerError: {Type: typeServer, Message: "The server had an error while processing your request. Sorry about that!"},
	http.StatusServiceUnavailable:  {Type: typeServer, Code: "overloaded", Message: "The engine is currently overloaded, please try again later."},
}

func writeFailure(w http.ResponseWriter, f Failure) {
	e := failureDefaults[f.Status]
	if e.Type == "" {
		e = apiError{Type: typeServer, Message: http.StatusText(f.Status)}
	}
	if f.Type != "" {
		e.Type = f.Type
	}
	if f.Code != "" {
		e.Code = f.Code
	}
	if f.Message != "" {
		e.Message = f.Message
	}
	if f.Param != "" {
		e.Param = f.Param
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.RetryAfterMs != "" {
		w.Header().Set("retry-after-ms", f.RetryAfterMs)
	}
	writeError(w, f.Status, e)
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, maxBody))
}
