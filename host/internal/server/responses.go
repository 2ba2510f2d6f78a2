package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/inbound/responses"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ResponseStore keeps the responses of POST /v1/responses for
// previous_response_id and GET /v1/responses/{id}. Each response belongs
// to the key that created it: GetResponse answers an error for which
// IsNotFound is true when the response is absent, expired or another
// key's.
type ResponseStore interface {
	PutResponse(ctx context.Context, id, owner string, body []byte, expires time.Time) error
	GetResponse(ctx context.Context, id, owner string) ([]byte, error)
	IsNotFound(err error) bool
}

// ResponseDeleter is a ResponseStore that can also delete a response,
// for DELETE /v1/responses/{id}.
type ResponseDeleter interface {
	DeleteResponse(ctx context.Context, id, owner string) error
}

var _ ResponseStore = (*responses.Memory)(nil)
var _ ResponseDeleter = (*responses.Memory)(nil)

// storeTimeout bounds one call of the response store.
const storeTimeout = 5 * time.Second

// responsesDialect writes the chat answer as the Responses API and keeps
// the finished response when the request asked for it.
type responsesDialect struct {
	*responses.Converter
	// keep is set when the response is stored once finished.
	keep   bool
	store  ResponseStore
	owner  string
	input  []json.RawMessage
	expiry time.Duration
	log    hclog.Logger
	reqID  string
}

var _ dialect = (*responsesDialect)(nil)

// Response converts a chat.completion and stores the response.
func (d *responsesDialect) Response(body []byte) ([]byte, error) {
	out, err := d.Converter.Response(body)
	if err == nil {
		d.save()
	}
	return out, err
}

// End closes the stream; the response is stored before the client reads
// response.completed, so a request that follows it finds it.
func (d *responsesDialect) End(dst []byte) []byte {
	if d.Final() != nil {
		return d.Converter.End(dst)
	}
	dst = d.Converter.End(dst)
	d.save()
	return dst
}

// save stores the finished response when it completed or was cut short;
// a failed response is not kept.
func (d *responsesDialect) save() {
	resp := d.Final()
	if !d.keep || resp == nil || resp.Status == responses.StatusFailed {
		return
	}
	rec := responses.Stored{Response: resp, Input: d.input}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := d.store.PutResponse(ctx, resp.ID, d.owner, rec.Encode(), time.Now().Add(d.expiry)); err != nil {
		d.log.Error("storing a response failed", "request_id", d.reqID, "response_id", resp.ID, "error", err)
	}
}

// responses serves POST /v1/responses: the request becomes a chat
// completions request, with the conversation of previous_response_id
// before its input, and runs the chat path under the Responses dialect.
//
// store defaults to true, as in OpenAI's API. Without a configured store
// nothing is kept whatever store says (the response reports
// "store": false), and previous_response_id is refused.
func (r *call) responses() {
	req, err := responses.Parse(r.ctx.PostBody())
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	st := r.s.opts.Responses
	var prior []json.RawMessage
	if req.PreviousResponseID != "" {
		if st == nil {
			e := openai.InvalidRequest("previous_response_id",
				"previous_response_id cannot be used: response storage is disabled on this gateway (it has no responses block); send the whole conversation as input items")
			e.Code = "storage_disabled"
			writeError(r.ctx, e)
			return
		}
		stored, err := r.storedResponse(req.PreviousResponseID, "previous_response_id")
		if err != nil {
			writeError(r.ctx, err)
			return
		}
		prior = stored.Items()
	}
	body, err := req.Chat(prior)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	keep := st != nil && (req.Store == nil || *req.Store)
	expiry := r.s.opts.ResponseRetention
	if expiry <= 0 {
		expiry = responses.DefaultRetention
	}
	d := &responsesDialect{
		Converter: responses.NewConverter(req, responses.NewID("resp"), time.Now(), keep),
		keep:      keep, store: st, owner: r.keyName(), expiry: expiry, log: r.s.log, reqID: r.id,
		input: append(prior, req.Items()...),
	}
	r.setDialect(d)
	r.ctx.Request.SetBody(body)
	r.chat()
}

// storedResponse reads the response id of the calling key; param names
// the parameter that carried id in errors.
func (r *call) storedResponse(id, param string) (*responses.Stored, error) {
	st := r.s.opts.Responses
	if st == nil {
		return nil, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "storage_disabled",
			"response storage is disabled on this gateway (it has no responses block), so no response can be read")
	}
	ctx, cancel := context.WithTimeout(r.s.base, storeTimeout)
	defer cancel()
	b, err := st.GetResponse(ctx, id, r.keyName())
	switch {
	case err != nil && st.IsNotFound(err):
		e := openai.NewError(http.StatusNotFound, openai.TypeInvalidRequest, "response_not_found",
			fmt.Sprintf("no response with id %q: it does not exist, has expired or belongs to another key", id))
		e.Param = param
		return nil, e
	case err != nil:
		r.s.log.Error("reading a stored response failed", "request_id", r.id, "response_id", id, "error", err)
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "store_unavailable",
			"the response store is unavailable; retry later")
	}
	stored, err := responses.DecodeStored(b)
	if err != nil {
		r.s.log.Error("a stored response is unreadable", "request_id", r.id, "response_id", id, "error", err)
		return nil, openai.NewError(http.StatusInternalServerError, openai.TypeServer, "internal_error",
			"the stored response could not be read")
	}
	return stored, nil
}

// response serves GET and DELETE /v1/responses/{id}.
func (r *call) response(id string) {
	switch string(r.ctx.Method()) {
	case http.MethodGet:
		stored, err := r.storedResponse(id, "")
		if err != nil {
			writeError(r.ctx, err)
			return
		}
		r.ctx.SetContentType("application/json")
		r.ctx.SetBody(stored.Response.Encode())
	case http.MethodDelete:
		if _, err := r.storedResponse(id, ""); err != nil {
			writeError(r.ctx, err)
			return
		}
		del, ok := r.s.opts.Responses.(ResponseDeleter)
		if !ok {
			writeError(r.ctx, openai.NewError(http.StatusNotImplemented, openai.TypeInvalidRequest, "unsupported_operation",
				"the configured response store cannot delete responses; they expire after the retention period"))
			return
		}
		ctx, cancel := context.WithTimeout(r.s.base, storeTimeout)
		defer cancel()
		if err := del.DeleteResponse(ctx, id, r.keyName()); err != nil && !r.s.opts.Responses.IsNotFound(err) {
			r.s.log.Error("deleting a stored response failed", "request_id", r.id, "response_id", id, "error", err)
			writeError(r.ctx, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "store_unavailable",
				"the response store is unavailable; retry later"))
			return
		}
		r.ctx.SetContentType("application/json")
		body, _ := json.Marshal(struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Deleted bool   `json:"deleted"`
		}{id, "response.deleted", true})
		r.ctx.SetBody(body)
	default:
		r.ctx.Response.Header.Set("Allow", "GET, DELETE")
		writeError(r.ctx, openai.NewError(http.StatusMethodNotAllowed, openai.TypeInvalidRequest, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on /v1/responses/{id}; use GET or DELETE", r.ctx.Method())))
	}
}
