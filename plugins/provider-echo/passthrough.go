package main

import (
	"encoding/json"
	"io"
	"net/http"
)

// Passthrough implements provider.Passthrougher: the echo "native API"
// answers any request with a JSON description of what it received, which
// makes transparent mode observable without an upstream.
func (e *Echo) Passthrough(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	header := map[string]string{}
	for k := range r.Header {
		header[k] = r.Header.Get(k)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Native", "1")
	json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method,
		"path":   r.URL.Path,
		"query":  r.URL.RawQuery,
		"header": header,
		"body":   string(body),
	})
}
