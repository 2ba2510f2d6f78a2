package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// hopHeaders are never forwarded in either direction; the client's own
// llmproxy credentials are never forwarded upstream either.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Host": true,
	"Content-Length": true, "Authorization": true, "X-Api-Key": true,
}

// instance serves /-{type}/{instance}/...: transparent mode for provider
// instances, the storage API for storage instances.
func (r *call) instance() {
	rest := strings.TrimPrefix(string(r.ctx.Path()), "/-")
	typ, rest, _ := strings.Cut(rest, "/")
	name, _, _ := strings.Cut(rest, "/")
	if err := r.canonicalPath(typ, name); err != nil {
		writeError(r.ctx, err)
		return
	}
	in := r.s.opts.Plugins.Get(name)
	if in == nil || in.Type != config.CanonicalType(typ) || name == "" {
		writeError(r.ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "instance_not_found",
			fmt.Sprintf("no %s instance named %q is configured", typ, name)))
		return
	}
	if in.Kind() == "storage" {
		if !r.key.AllowsStorage(name) {
			writeError(r.ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "instance_not_allowed",
				fmt.Sprintf("this API key may not address storage instance %q", name)))
			return
		}
		r.storage(in)
		return
	}
	if !r.key.AllowsPassthrough(name) {
		writeError(r.ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "instance_not_allowed",
			fmt.Sprintf("this API key may not use provider instance %q in transparent mode (it needs passthrough = [%q])", name, name)))
		return
	}
	if r.budgeted() {
		writeError(r.ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "budget_unmetered",
			"this API key has a budget, and transparent mode cannot be priced before it runs; use the /v1 API"))
		return
	}
	if err := r.checkNativePath(); err != nil {
		writeError(r.ctx, err)
		return
	}
	r.passthrough(name)
}

// canonicalPath refuses an instance path whose raw form names another
// instance than its cleaned form (/-local/dev/../../-openai/prod/...):
// the instance is authorised on the cleaned path while the rest is
// passed on as the client wrote it, so the two must agree.
func (r *call) canonicalPath(typ, name string) error {
	segs := strings.SplitN(strings.TrimPrefix(r.rawPath(), "/-"), "/", 3)
	if len(segs) < 2 {
		segs = append(segs, "")
	}
	rawTyp, err1 := url.PathUnescape(segs[0])
	rawName, err2 := url.PathUnescape(segs[1])
	if err1 != nil || err2 != nil || rawTyp != typ || rawName != name {
		return invalidPath(`must name its instance plainly as /-{type}/{instance}/..., without ".", ".." or empty segments`)
	}
	return nil
}

// checkNativePath refuses a transparent-mode path that climbs with "."
// or ".." segments, escaped or not, which an upstream could resolve
// outside the API the instance is configured for.
func (r *call) checkNativePath() error {
	for _, seg := range strings.Split(r.nativePath(), "/") {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return invalidPath("has a malformed escape")
		}
		for _, part := range strings.Split(u, "/") {
			if part == "." || part == ".." {
				return invalidPath(`may not contain "." or ".." segments`)
			}
		}
	}
	return nil
}

func invalidPath(why string) error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "invalid_path", "the path "+why)
}

// rawPath returns the request path as the client sent it, still escaped.
func (r *call) rawPath() string {
	raw := string(r.ctx.Request.URI().PathOriginal())
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	return raw
}

// nativePath returns the raw (still escaped) path below /-{type}/{name}.
func (r *call) nativePath() string {
	raw := strings.TrimPrefix(r.rawPath(), "/-")
	for range 2 {
		if i := strings.IndexByte(raw, '/'); i >= 0 {
			raw = raw[i+1:]
		} else {
			raw = ""
		}
	}
	return "/" + raw
}

func (r *call) passthrough(name string) {
	in := r.s.opts.Plugins.Get(name)
	c, _, err := in.Provider()
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	req := &provider.PassthroughRequest{
		Meta:     provider.Meta{RequestID: r.id, Instance: name},
		Method:   string(r.ctx.Method()),
		Path:     r.nativePath(),
		RawQuery: string(r.ctx.QueryArgs().QueryString()),
		Header:   http.Header{},
		Body:     r.ctx.PostBody(),
	}
	for k, v := range r.ctx.Request.Header.All() {
		name := http.CanonicalHeaderKey(string(k))
		if !hopHeaders[name] {
			req.Header.Add(name, string(v))
		}
	}
	ctx, cancel := r.context()
	stop := r.watchClient(cancel)
	st, err := c.Passthrough(ctx, req)
	if err != nil {
		stop()
		cancel()
		r.logError(err)
		writeError(r.ctx, err)
		return
	}
	r.ctx.Response.SetStatusCode(st.Status)
	r.ctx.Response.Header.SetNoDefaultContentType(true)
	for k, vs := range st.Header {
		if hopHeaders[k] {
			continue
		}
		for _, v := range vs {
			r.ctx.Response.Header.Add(k, v)
		}
	}
	id, log := r.id, r.s.log
	r.setBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		defer stop()
		for {
			b, err := st.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				log.Error("transparent response failed mid-body", "request_id", id, "error", err)
				return
			}
			w.Write(b)
			if err := w.Flush(); err != nil {
				return
			}
		}
	})
}
