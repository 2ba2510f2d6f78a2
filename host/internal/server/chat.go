package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// DocumentResolver replaces the document parts of a chat request by
// references and returns the resolved documents. It must return body
// unchanged, cheaply, when there are none.
type DocumentResolver interface {
	Resolve(ctx context.Context, key *auth.Key, body []byte) ([]byte, []provider.Document, error)
}

// parsed is what the host reads from a request body: just enough to route.
type parsed struct {
	model  string
	stream bool
}

// parse validates the body as JSON and reads model, stream and (for chat)
// that messages is a non-empty array.
func (r *call) parse(chat bool) (*parsed, error) {
	body := r.ctx.PostBody()
	if len(body) == 0 {
		return nil, openai.InvalidRequest("", "request body is empty; send a JSON object")
	}
	p := r.s.parsers.Get()
	defer r.s.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, openai.InvalidRequest("", "request body is not valid JSON: "+err.Error())
	}
	if v.Type() != fastjson.TypeObject {
		return nil, openai.InvalidRequest("", "request body must be a JSON object")
	}
	out := &parsed{}
	m := v.Get("model")
	if m == nil || m.Type() != fastjson.TypeString || len(m.GetStringBytes()) == 0 {
		return nil, openai.InvalidRequest("model", "you must provide a model parameter (a string)")
	}
	out.model = string(m.GetStringBytes())
	if chat {
		msgs := v.Get("messages")
		if msgs == nil || msgs.Type() != fastjson.TypeArray {
			return nil, openai.InvalidRequest("messages", "messages must be an array of message objects")
		}
		if arr, _ := msgs.Array(); len(arr) == 0 {
			return nil, openai.InvalidRequest("messages", "messages must not be empty")
		}
		if st := v.Get("stream"); st != nil {
			switch st.Type() {
			case fastjson.TypeTrue:
				out.stream = true
			case fastjson.TypeFalse, fastjson.TypeNull:
			default:
				return nil, openai.InvalidRequest("stream", "stream must be a boolean")
			}
		}
	} else if v.Get("input") == nil {
		return nil, openai.InvalidRequest("input", "you must provide an input parameter")
	}
	return out, nil
}

// route authorises and resolves the model.
func (r *call) route(model string) (*router.Route, error) {
	if !r.key.AllowsModel(model) {
		return nil, openai.NewError(http.StatusForbidden, openai.TypePermission, "model_not_allowed",
			fmt.Sprintf("this API key may not use model %q", model))
	}
	rt := r.s.opts.Router.Lookup(model)
	if rt == nil {
		return nil, openai.NewError(http.StatusNotFound, openai.TypeInvalidRequest, "model_not_found",
			fmt.Sprintf("the model %q does not exist or is not served by this gateway", model))
	}
	return rt, nil
}

// retryable says whether a failed attempt may move on to the next target:
// instance not ready, plugin gone, 429 and 5xx.
func retryable(err error) bool {
	var e *openai.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// attempt runs fn against each target of the plan until one succeeds or
// fails with an error that must not be retried elsewhere.
func (r *call) attempt(rt *router.Route, requested string, fn func(c *provider.Client, meta provider.Meta) error) error {
	var last error
	plan := rt.Plan(requested)
	deadline := time.Now().Add(r.s.opts.RequestTimeout)
	for i, t := range plan {
		in := r.s.opts.Plugins.Get(t.Instance)
		if in == nil {
			last = openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "instance_unavailable",
				fmt.Sprintf("instance %s is not configured", t.Instance))
			continue
		}
		c, _, err := in.Provider()
		if err == nil {
			err = fn(c, provider.Meta{
				RequestID: r.id, Instance: t.Instance, Model: t.Model, RequestedModel: requested, Deadline: deadline,
			})
			if err == nil {
				return nil
			}
			var e *openai.Error
			if errors.As(err, &e) && e.Code == "plugin_unavailable" {
				in.Poke()
			}
		}
		last = err
		if !retryable(err) {
			return err
		}
		if i < len(plan)-1 {
			r.s.log.Warn("attempt failed; trying the next instance", "request_id", r.id, "instance", t.Instance,
				"next", plan[i+1].Instance, "error", err)
		}
	}
	return last
}

// resolve parses the body and finds the route of its model.
func (r *call) resolve(chat bool) (*parsed, *router.Route, error) {
	p, err := r.parse(chat)
	if err != nil {
		return nil, nil, err
	}
	rt, err := r.route(p.model)
	if err != nil {
		return nil, nil, err
	}
	return p, rt, nil
}

func (r *call) chat() {
	p, rt, err := r.resolve(true)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	ctx, cancel := r.context()
	body := r.ctx.PostBody()
	var docs []provider.Document
	if r.s.docs != nil {
		body, docs, err = r.s.docs.Resolve(ctx, r.key, body)
		if err != nil {
			cancel()
			writeError(r.ctx, err)
			return
		}
	}
	if p.stream {
		r.stream(ctx, cancel, rt, p.model, body, docs)
		return
	}
	defer cancel()
	stop := r.watchClient(cancel)
	defer stop()
	var resp *provider.Response
	err = r.attempt(rt, p.model, func(c *provider.Client, meta provider.Meta) error {
		var err error
		resp, err = c.ChatCompletion(ctx, &provider.Request{Meta: meta, Body: body, Documents: docs})
		return err
	})
	r.writeResponse(resp, err)
}

func (r *call) writeResponse(resp *provider.Response, err error) {
	if err != nil {
		r.logError(err)
		writeError(r.ctx, err)
		return
	}
	for k, v := range resp.Header {
		r.ctx.Response.Header.Set(k, v)
	}
	r.ctx.SetContentType("application/json")
	r.ctx.SetBody(resp.Body)
}

func (r *call) logError(err error) {
	e := asAPIError(err)
	if e.Status >= 500 {
		r.s.log.Error("request failed", "request_id", r.id, "status", e.Status, "code", e.Code, "error", e.Message)
	} else {
		r.s.log.Debug("request refused", "request_id", r.id, "status", e.Status, "code", e.Code, "error", e.Message)
	}
}

func (r *call) embeddings() {
	p, rt, err := r.resolve(false)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	ctx, cancel := r.context()
	defer cancel()
	stop := r.watchClient(cancel)
	defer stop()
	body := r.ctx.PostBody()
	var resp *provider.Response
	err = r.attempt(rt, p.model, func(c *provider.Client, meta provider.Meta) error {
		var err error
		resp, err = c.Embeddings(ctx, &provider.Request{Meta: meta, Body: body})
		return err
	})
	r.writeResponse(resp, err)
}

// available lists the models the key may use: exact routes and their
// aliases, plus the models that instances behind pattern routes describe.
func (r *call) available() []openai.Model {
	seen := map[string]bool{}
	var out []openai.Model
	add := func(id, owner string) {
		if seen[id] || !r.key.AllowsModel(id) {
			return
		}
		seen[id] = true
		out = append(out, openai.Model{ID: id, Object: openai.ObjectModel, Created: 0, OwnedBy: owner})
	}
	rtr := r.s.opts.Router
	for _, rt := range rtr.Routes() {
		owner := r.servingInstance(rt)
		if owner == "" {
			continue
		}
		if !rt.Pattern {
			add(rt.Name, owner)
			for _, a := range rtr.Aliases(rt) {
				add(a, owner)
			}
			continue
		}
		for _, t := range rt.Targets {
			in := r.s.opts.Plugins.Get(t.Instance)
			if in == nil {
				continue
			}
			if _, d, err := in.Provider(); err == nil {
				for _, m := range d.Models {
					if rtr.Lookup(m.ID) == rt {
						add(m.ID, t.Instance)
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// servingInstance returns the first ready instance of a route, or "".
func (r *call) servingInstance(rt *router.Route) string {
	for _, t := range rt.Targets {
		if in := r.s.opts.Plugins.Get(t.Instance); in != nil && in.Status().State == plugins.Ready {
			return t.Instance
		}
	}
	return ""
}

func (r *call) models() {
	writeJSON(r.ctx, http.StatusOK, openai.ModelList{Object: openai.ObjectList, Data: r.available()})
}

func (r *call) model(id string) {
	for _, m := range r.available() {
		if m.ID == id {
			writeJSON(r.ctx, http.StatusOK, m)
			return
		}
	}
	writeError(r.ctx, openai.NewError(http.StatusNotFound, openai.TypeInvalidRequest, "model_not_found",
		fmt.Sprintf("the model %q does not exist or is not available to this key", id)))
}
