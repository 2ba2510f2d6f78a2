package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Faults let tests see how the host copes with a misbehaving provider.
// They are off unless the instance's config sets faults = true; then the
// upstream model name picks one:
//
//	fault-panic          the call panics inside the plugin
//	fault-unauthorized   the "upstream" answers 401 (invalid_api_key)
//	fault-forbidden      the "upstream" answers 403
//	fault-newline        stream chunks are pretty-printed JSON, with raw newlines
//	fault-silent-<dur>   a stream sends nothing for <dur> (e.g. "5s"), then replies
//	fault-sick-<dur>     replies, then fails its health checks for <dur>
//
// Any other model name behaves normally.
const faultPrefix = "fault-"

// upstreamSecret appears in the fake upstream's 401 message, the way real
// providers echo part of the key; the host must never pass it on.
const upstreamSecret = "sk-echo-upstream-****cret"

// fault returns the error a fault model fails with, panics for
// fault-panic, and waits for fault-silent-*. It returns nil for normal
// models and when faults are off.
func (e *Echo) fault(ctx context.Context, req *provider.Request, stream bool) error {
	model := req.Meta.Model
	if !e.config().Faults || !strings.HasPrefix(model, faultPrefix) {
		return nil
	}
	switch name := strings.TrimPrefix(model, faultPrefix); {
	case name == "panic":
		panic("echo: fault-panic model requested")
	case name == "unauthorized":
		return openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, "invalid_api_key",
			"Incorrect API key provided: "+upstreamSecret)
	case name == "forbidden":
		return openai.NewError(http.StatusForbidden, openai.TypePermission, "permission_denied",
			"The key "+upstreamSecret+" may not use this project")
	case strings.HasPrefix(name, "sick-"):
		d, err := time.ParseDuration(strings.TrimPrefix(name, "sick-"))
		if err != nil {
			return openai.InvalidRequest("model", "fault-sick-<duration>: "+err.Error())
		}
		e.sickUntil.Store(time.Now().Add(d).UnixNano())
	case strings.HasPrefix(name, "silent-") && stream:
		d, err := time.ParseDuration(strings.TrimPrefix(name, "silent-"))
		if err != nil {
			return openai.InvalidRequest("model", "fault-silent-<duration>: "+err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

// writeChunk writes one stream chunk, pretty-printed (raw newlines and
// all) for the fault-newline model.
func (e *Echo) writeChunk(w provider.ChunkWriter, req *provider.Request, c *openai.ChatChunk) error {
	if e.config().Faults && req.Meta.Model == faultPrefix+"newline" {
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return err
		}
		return w.WriteChunk(b)
	}
	return provider.WriteChunk(w, c)
}

// Health implements provider.HealthChecker: healthy, except after a
// fault-sick-<dur> request, for that long.
func (e *Echo) Health(context.Context) error {
	if time.Now().UnixNano() < e.sickUntil.Load() {
		return errors.New("echo: the upstream is unreachable (fault-sick)")
	}
	return nil
}
