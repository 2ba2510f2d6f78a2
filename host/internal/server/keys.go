package server

import (
	"net/http"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// lookupStored looks the presented secret up among the stored keys and
// sets r.key when it is one. A stored key named like a key of the config
// file is ignored: the config file wins. It answers 503 and returns false
// when the store cannot be read.
func (s *Server) lookupStored(r *call, secret []byte) bool {
	ctx, cancel := r.context()
	defer cancel()
	k, err := s.opts.StoredKeys.Lookup(ctx, secret)
	if err != nil {
		s.log.Error("key store lookup failed", "request_id", r.id, "error", err)
		writeError(r.ctx, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "key_store_unavailable",
			"the key store is unavailable; retry the request"))
		if s.opts.Metrics != nil {
			s.opts.Metrics.Observe(endpoint(r.ctx.Path()), http.StatusServiceUnavailable, time.Since(r.start))
		}
		return false
	}
	if k != nil && r.g.Keys.ByName(k.Name) == nil {
		r.key = k
	}
	return true
}
