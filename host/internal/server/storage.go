package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Storage operations of /-{type}/{instance}/{op}/{bucket}/{key...}.
const (
	opPut     = "put"
	opGet     = "get"
	opHead    = "head"
	opList    = "list"
	opDelete  = "delete"
	opPresign = "presign"
)

// storageMethods lists the HTTP methods each operation accepts.
var storageMethods = map[string][]string{
	opPut:     {"PUT", "POST"},
	opGet:     {"GET", "HEAD"},
	opHead:    {"HEAD", "GET"},
	opList:    {"GET"},
	opDelete:  {"DELETE", "POST"},
	opPresign: {"GET", "POST"},
}

// objectPath returns the op and the raw "{bucket}/{key...}" of a storage
// path, taken from the undecoded path so that escaped "/" and ".." are
// seen as the client sent them.
func (r *call) objectPath() (op, rest string) {
	p := r.nativePath()[1:]
	op, rest, _ = strings.Cut(p, "/")
	return op, rest
}

func (r *call) storage(in *plugins.Instance) {
	op, rest := r.objectPath()
	methods, known := storageMethods[op]
	if !known {
		writeError(r.ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "unknown_storage_operation",
			fmt.Sprintf("unknown storage operation %q; use put, get, head, list, delete or presign", op)))
		return
	}
	if !methodIn(string(r.ctx.Method()), methods) {
		r.method(methods[0])
		return
	}
	if !r.key.AllowsStorageOp(op) {
		if op == opPut {
			r.drainUpload()
		}
		writeError(r.ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "storage_op_not_allowed",
			fmt.Sprintf("this API key may not %s objects", op)))
		return
	}
	c, err := in.Storage()
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	policy := r.s.policy(in.Name)
	obj, err := access.ParseObject(rest, op != opList)
	if err == nil {
		if op == opList {
			prefix := string(r.ctx.QueryArgs().Peek("prefix"))
			if err = access.CheckPrefix(prefix); err == nil {
				err = policy.CheckPrefix(obj.Bucket, prefix)
			}
		} else {
			err = policy.Check(obj)
		}
	}
	if err != nil {
		if op == opPut {
			r.drainUpload()
		}
		writeError(r.ctx, err)
		return
	}
	bucket, key := obj.Bucket, obj.Key
	ctx, cancel := r.context()
	switch op {
	case opPut:
		defer cancel()
		r.putObject(ctx, c, policy, obj, string(r.ctx.Request.Header.ContentType()))
	case opGet:
		r.getObject(ctx, cancel, c, bucket, key)
	case opHead:
		defer cancel()
		info, err := c.Head(ctx, bucket, key)
		if err != nil {
			writeError(r.ctx, err)
			return
		}
		objectHeaders(r, info)
		r.ctx.Response.Header.SetContentLength(int(info.Size))
		r.ctx.Response.SkipBody = true
	case opList:
		defer cancel()
		r.listObjects(ctx, c, in.Name, policy, bucket)
	case opDelete:
		defer cancel()
		if err := c.Delete(ctx, bucket, key); err != nil {
			writeError(r.ctx, err)
			return
		}
		writeJSON(r.ctx, http.StatusOK, map[string]any{"status": "deleted", "bucket": bucket, "key": key})
	case opPresign:
		defer cancel()
		r.presign(ctx, in, c, policy, obj)
	}
}

func methodIn(m string, ms []string) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// policy returns the access rules of storage instance name.
func (s *Server) policy(name string) *access.Policy {
	if p := s.gen.Load().Policies[name]; p != nil {
		return p
	}
	return &access.Policy{DefaultTTL: access.DefaultTTL, MinTTL: access.MinTTL, MaxTTL: access.MaxTTL}
}

// requestBody returns the request body as a stream and its size (-1 when
// chunked), without buffering large uploads. A streamed body is read
// under the idle-read timeout: each read may wait that long for the next
// bytes, and an upload takes as long as it keeps moving.
func (r *call) requestBody() (io.Reader, int64) {
	size := int64(r.ctx.Request.Header.ContentLength())
	if size < 0 {
		size = -1
	}
	if r.ctx.Request.IsBodyStream() {
		return &idleReader{r: r.ctx.RequestBodyStream(), ctx: r.ctx, idle: r.s.opts.ReadIdleTimeout}, size
	}
	b := r.ctx.Request.Body()
	return bytes.NewReader(b), int64(len(b))
}

// idleReader moves the connection's read deadline forward before every
// read, so that only a stalled client, not a slow one, is cut off.
type idleReader struct {
	r    io.Reader
	ctx  *fasthttp.RequestCtx
	idle time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if ir.idle > 0 {
		ir.ctx.SetReadDeadline(time.Now().Add(ir.idle))
	}
	return ir.r.Read(p)
}

// drainUpload reads and discards a refused upload (up to maxDrain), so
// that the client sees the error rather than a reset connection.
func (r *call) drainUpload() {
	if !r.ctx.Request.IsBodyStream() {
		return
	}
	body, size := r.requestBody()
	drain(body, int(size))
}

// errObjectTooLarge ends an upload that passes max_object_bytes.
var errObjectTooLarge = errors.New("object exceeds max_object_bytes")

// capReader fails with errObjectTooLarge once more than limit bytes have
// been read.
type capReader struct {
	r     io.Reader
	limit int64
	n     int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return 0, errObjectTooLarge
	}
	return n, err
}

func objectTooLarge(limit int64) error {
	return openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, "object_too_large",
		fmt.Sprintf("the object exceeds this storage instance's limit of %d bytes (max_object_bytes)", limit))
}

// putObject stores the request body as obj, refusing with 413 (after
// draining what the client still sends) an object over the instance's
// max_object_bytes, whether its size is declared or only found out while
// streaming.
func (r *call) putObject(ctx context.Context, c *storage.Client, policy *access.Policy, obj access.Object, contentType string) {
	body, size := r.requestBody()
	raw := body
	if limit := policy.MaxObjectBytes; limit > 0 {
		if size > limit {
			drain(body, int(size))
			writeError(r.ctx, objectTooLarge(limit))
			return
		}
		body = &capReader{r: body, limit: limit}
	}
	info, err := c.Put(ctx, &storage.Object{Bucket: obj.Bucket, Key: obj.Key, ContentType: contentType, Size: size}, body)
	if errors.Is(err, errObjectTooLarge) {
		drain(raw, -1)
		err = objectTooLarge(policy.MaxObjectBytes)
	}
	if err != nil {
		r.logError(err)
		writeError(r.ctx, err)
		return
	}
	writeJSON(r.ctx, http.StatusOK, map[string]any{
		"status": "success", "bucket": obj.Bucket, "key": obj.Key, "size": info.Size, "etag": info.ETag,
		"content_type": info.ContentType,
	})
}

func objectHeaders(r *call, info *storage.ObjectInfo) {
	h := &r.ctx.Response.Header
	if info.ContentType != "" {
		h.SetContentType(info.ContentType)
	} else {
		h.SetContentType("application/octet-stream")
	}
	if info.ETag != "" {
		h.Set("ETag", `"`+info.ETag+`"`)
	}
	if !info.LastModified.IsZero() {
		h.Set("Last-Modified", info.LastModified.UTC().Format(http.TimeFormat))
	}
	h.Set("Accept-Ranges", "bytes")
}

func (r *call) getObject(ctx context.Context, cancel context.CancelFunc, c *storage.Client, bucket, key string) {
	req := &storage.GetRequest{Bucket: bucket, Key: key}
	if v := r.ctx.Request.Header.Peek("Range"); len(v) > 0 {
		rng, err := storage.ParseRangeHeader(string(v))
		if err != nil {
			cancel()
			writeError(r.ctx, err)
			return
		}
		if rng != nil && rng.Start < 0 {
			// A suffix range (bytes=-N) needs the size first.
			info, err := c.Head(ctx, bucket, key)
			if err != nil {
				cancel()
				writeError(r.ctx, err)
				return
			}
			rng = storage.ResolveSuffix(rng, info.Size)
		}
		req.Range = rng
	}
	info, body, err := c.Get(ctx, req)
	if err != nil {
		cancel()
		writeError(r.ctx, err)
		return
	}
	objectHeaders(r, info)
	length := info.Size
	if cr := info.ContentRange; cr != nil && req.Range != nil {
		length = cr.End - cr.Start + 1
		r.ctx.Response.SetStatusCode(http.StatusPartialContent)
		r.ctx.Response.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", cr.Start, cr.End, info.Size))
	}
	if string(r.ctx.Method()) == "HEAD" {
		body.Close()
		cancel()
		r.ctx.Response.Header.SetContentLength(int(length))
		r.ctx.Response.SkipBody = true
		return
	}
	// fasthttp closes the body after sending it; closing also ends the
	// plugin stream and the request context.
	r.setBodyStream(&closer{Reader: body, close: func() error { cancel(); return body.Close() }}, int(length))
}

type closer struct {
	io.Reader
	close func() error
}

func (c *closer) Close() error { return c.close() }

type listedObject struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	ContentType  string    `json:"content_type,omitempty"`
	LastModified time.Time `json:"last_modified,omitzero"`
}

func (r *call) listObjects(ctx context.Context, c *storage.Client, instance string, policy *access.Policy, bucket string) {
	q := r.ctx.QueryArgs()
	req := &storage.ListRequest{
		Bucket: bucket, Prefix: string(q.Peek("prefix")), Delimiter: string(q.Peek("delimiter")),
	}
	scope := access.Scope(instance, bucket, req.Prefix, req.Delimiter)
	token, err := r.s.tokens.Open(scope, string(q.Peek("page_token")))
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	req.PageToken = token
	if v := q.Peek("max_keys"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			writeError(r.ctx, openai.InvalidRequest("max_keys", "max_keys must be a positive integer"))
			return
		}
		req.MaxKeys = n
	}
	res, err := c.List(ctx, req)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	objects := make([]listedObject, 0, len(res.Objects))
	for _, o := range res.Objects {
		if policy.Visible(o.Key) {
			objects = append(objects, listedObject{Key: o.Key, Size: o.Size, ETag: o.ETag, ContentType: o.ContentType, LastModified: o.LastModified})
		}
	}
	prefixes := make([]string, 0, len(res.CommonPrefixes))
	for _, p := range res.CommonPrefixes {
		if policy.Visible(p) {
			prefixes = append(prefixes, p)
		}
	}
	writeJSON(r.ctx, http.StatusOK, map[string]any{
		"bucket": bucket, "prefix": req.Prefix, "objects": objects, "common_prefixes": prefixes,
		"next_page_token": r.s.tokens.Seal(scope, res.NextPageToken),
	})
}

// presignOps maps the method a presigned URL is for to the storage
// operation a key needs to sign it, and to the operation name answered.
var presignOps = map[string]struct{ op, name string }{
	"GET": {opGet, "GetObject"},
	"PUT": {opPut, "PutObject"},
}

// presign signs a URL for obj. Beyond the presign right, the key needs
// the right of the method the URL grants: a URL is that operation,
// handed to whoever holds it.
func (r *call) presign(ctx context.Context, in *plugins.Instance, c *storage.Client, policy *access.Policy, obj access.Object) {
	q := r.ctx.QueryArgs()
	ttl, err := policy.TTL(string(q.Peek("ttl")))
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	method := strings.ToUpper(string(q.Peek("method")))
	if method == "" {
		method = "GET"
	}
	op, ok := presignOps[method]
	if !ok {
		writeError(r.ctx, openai.InvalidRequest("method", "method must be GET or PUT"))
		return
	}
	if !r.key.AllowsStorageOp(op.op) {
		writeError(r.ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "storage_op_not_allowed",
			fmt.Sprintf("this API key may not presign %s URLs: it may not %s objects", method, op.op)))
		return
	}
	p, err := c.Presign(ctx, &storage.PresignRequest{Bucket: obj.Bucket, Key: obj.Key, Method: method, TTL: ttl,
		ContentType: string(q.Peek("content_type"))})
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	if method == "GET" {
		r.s.issued.add(p.URL, in.Name, obj.Bucket, obj.Key, p.Expires)
	}
	header := map[string]string{}
	for k := range p.Header {
		header[k] = p.Header.Get(k)
	}
	writeJSON(r.ctx, http.StatusOK, map[string]any{
		"url": p.URL, "expires_in": int64(ttl / time.Second),
		"expires_at": p.Expires.UTC().Format(time.RFC3339), "operation": op.name,
		"method": method, "bucket": obj.Bucket, "key": obj.Key, "headers": header,
	})
}

// signed serves /-{type}/{instance}/object/{bucket}/{key} URLs signed by
// the host for backends without their own presigned URLs (local). The
// signature is the credential: no API key is needed.
func (s *Server) signed(r *call) {
	ctx := r.ctx
	rest := strings.TrimPrefix(string(ctx.Path()), "/-")
	typ, rest, _ := strings.Cut(rest, "/")
	name, _, _ := strings.Cut(rest, "/")
	in := s.opts.Plugins.Get(name)
	if in == nil || in.Type != typ || in.Kind() != "storage" {
		writeError(ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "instance_not_found",
			fmt.Sprintf("no %s storage instance named %q", typ, name)))
		return
	}
	method := string(ctx.Method())
	if method == "HEAD" {
		method = "GET"
	}
	u, err := url.ParseRequestURI(string(ctx.RequestURI()))
	if err != nil {
		writeError(ctx, openai.InvalidRequest("", "malformed URL"))
		return
	}
	so, err := storage.VerifySignedURL(in.SigningKey(), method, u, time.Now())
	if err != nil {
		writeError(ctx, err)
		return
	}
	if so.Instance != name || so.Type != typ {
		writeError(ctx, storage.AccessDenied("the URL was signed for another instance"))
		return
	}
	// A signature vouches for the request, not for the key: the object
	// goes through the same normalisation and policy as a storage route.
	policy := s.policy(name)
	obj, err := access.NewObject(so.Bucket, so.Key)
	if err == nil {
		err = policy.Check(obj)
	}
	if err != nil {
		writeError(ctx, err)
		return
	}
	c, err := in.Storage()
	if err != nil {
		writeError(ctx, err)
		return
	}
	pctx, cancel := r.context()
	switch method {
	case "GET":
		r.getObject(pctx, cancel, c, obj.Bucket, obj.Key)
	case "PUT":
		defer cancel()
		ct := so.ContentType
		if ct == "" {
			ct = string(ctx.Request.Header.ContentType())
		}
		r.putObject(pctx, c, policy, obj, ct)
	default:
		cancel()
		writeError(ctx, openai.NewError(http.StatusMethodNotAllowed, openai.TypeInvalidRequest, "method_not_allowed", "signed URLs serve GET, HEAD and PUT"))
	}
}
