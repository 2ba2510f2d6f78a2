package document

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// ObjectInfo describes a storage object opened by a StorageReader.
type ObjectInfo struct {
	// Size is the object's size in bytes, or -1 when unknown.
	Size        int64
	ContentType string
	// ETag identifies the object's version; the cache keys on it. Objects
	// without one are cached by content hash after reading.
	ETag string
}

// StorageReader opens objects of configured storage instances on behalf
// of the caller of one request. The host implements it over its storage
// plugins and checks the caller's permissions inside Open, returning an
// error wrapping ErrAccessDenied or ErrNotFound (or an *openai.Error).
// Open is called before any cache lookup, so cached content never bypasses
// the permission check.
type StorageReader interface {
	Open(ctx context.Context, storage, bucket, key string) (io.ReadCloser, ObjectInfo, error)
}

// StorageRef names an object of a configured storage instance.
type StorageRef struct {
	Storage string
	Bucket  string
	Key     string
}

// String returns the ref as storage://storage/bucket/key.
func (r StorageRef) String() string {
	return "storage://" + r.Storage + "/" + r.Bucket + "/" + r.Key
}

// PresignRecognizer tells whether a URL is a presigned URL of a configured
// storage instance. When it is, the Resolver reads the object through the
// StorageReader instead of fetching the URL over HTTP.
type PresignRecognizer interface {
	Recognize(u *url.URL) (StorageRef, bool)
}

// PresignRecognizerFunc adapts a function to PresignRecognizer.
type PresignRecognizerFunc func(u *url.URL) (StorageRef, bool)

var _ PresignRecognizer = PresignRecognizerFunc(nil)

// Recognize implements PresignRecognizer.
func (f PresignRecognizerFunc) Recognize(u *url.URL) (StorageRef, bool) { return f(u) }

// Options are the dependencies of a Resolver; all are optional.
type Options struct {
	// HostResolver resolves URL host names; nil means net.DefaultResolver.
	HostResolver HostResolver
	// Presign recognizes presigned URLs of configured storage.
	Presign PresignRecognizer
	// Cache replaces the cache the Config describes.
	Cache Cache
	// Extractor reads the types that need a parser (PDF, HTML, ...) in
	// plugin processes. Without it, documents of those types travel with
	// empty text.
	Extractor Extractor
}

// ResolveOptions are the per-request inputs of Resolve.
type ResolveOptions struct {
	// Storage reads storage references and recognized presigned URLs
	// with the caller's permissions. Without it, storage references are
	// refused and presigned URLs are fetched over HTTP like any URL.
	Storage StorageReader
	// KeepFileParts leaves OpenAI file parts in the body untouched, for
	// providers that take them natively.
	KeepFileParts bool
}

// Resolver resolves document parts; it is safe for concurrent use.
type Resolver struct {
	s         settings
	fetcher   *Fetcher
	cache     *counting
	presign   PresignRecognizer
	extractor Extractor
	flight    flight
}

// New returns a Resolver configured by cfg.
func New(cfg Config, opts Options) (*Resolver, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := opts.Cache
	if c == nil {
		switch s.cacheBackend {
		case BackendRedis:
			c, err = NewRedisCache(s.redisURL, s.cacheMaxBytes)
		case BackendNone:
			c = noCache{}
		default:
			c, err = NewMemoryCache(s.cacheMaxBytes)
		}
		if err != nil {
			return nil, fmt.Errorf("documents: %w", err)
		}
	}
	return &Resolver{
		s:         s,
		fetcher:   newFetcher(s, opts.HostResolver),
		cache:     &counting{Cache: c},
		presign:   opts.Presign,
		extractor: opts.Extractor,
	}, nil
}

// Stats returns the cache counters.
func (r *Resolver) Stats() Stats { return r.cache.stats() }

// Close releases the cache backend.
func (r *Resolver) Close() error { return r.cache.Close() }

// Fetcher returns the Resolver's URL fetcher.
func (r *Resolver) Fetcher() *Fetcher { return r.fetcher }

// MayHaveDocuments is the cheap pre-check of Resolve, which returns body
// unchanged when it is false, so that a caller may skip preparing the
// options. It is false only when body cannot hold a document or file
// part, that is, when it has
// neither of the quoted type values nor a JSON escape of a lowercase ASCII
// letter (\u0061-\u007a), which a client could use to spell them
// differently. Each search is anchored on a byte that is rare in JSON
// (a letter or a backslash rather than a quote), so it runs at memchr speed.
func MayHaveDocuments(body []byte) bool {
	// The plain searches settle the common case; the precise checks run
	// only on a match.
	return (bytes.Contains(body, tailDocument) && containsQuoted(body, tailDocument)) ||
		(bytes.Contains(body, tailFile) && containsQuoted(body, tailFile)) ||
		(bytes.Contains(body, escapePrefix) && containsLetterEscape(body))
}

var (
	markDocument = []byte(`"document"`)
	markFile     = []byte(`"file"`)
	tailDocument = markDocument[1:]
	tailFile     = markFile[1:]
	escapePrefix = []byte(`\u00`)
)

// containsQuoted reports whether body holds tail preceded by a quote.
func containsQuoted(body, tail []byte) bool {
	for i := 1; i < len(body); {
		j := bytes.Index(body[i:], tail)
		if j < 0 {
			return false
		}
		if body[i+j-1] == '"' {
			return true
		}
		i += j + 1
	}
	return false
}

// containsLetterEscape reports whether body holds \u006X or \u007X.
func containsLetterEscape(body []byte) bool {
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], escapePrefix)
		if j < 0 {
			return false
		}
		k := i + j + len(escapePrefix)
		if k < len(body) && (body[k] == '6' || body[k] == '7') {
			return true
		}
		i += j + 1
	}
	return false
}

// Resolve replaces every document part of a chat body's messages by
// {"type":"document","document":{"id":"doc_N","name":...}} and returns the
// new body with the documents' content. A body without document parts is
// returned as it is, with nil documents. Errors are *openai.Error values
// naming the offending part: 400 for a malformed part or too many
// documents, 403 and 404 from storage, 413 past the byte limit, 415 for a
// type that is not allowed, 502 when a fetch fails.
func (r *Resolver) Resolve(ctx context.Context, body []byte, opts ResolveOptions) ([]byte, []provider.Document, error) {
	if !MayHaveDocuments(body) {
		return body, nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, nil, openai.InvalidRequest("", "request body is not a JSON object: "+err.Error())
	}
	rawMsgs, ok := top["messages"]
	if !ok {
		return body, nil, nil
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(rawMsgs, &msgs); err != nil {
		return nil, nil, openai.InvalidRequest("messages", "messages must be an array")
	}
	st := &resolveState{r: r, opts: opts, budget: r.s.maxBytes}
	changed := false
	for i, m := range msgs {
		nm, ok, err := st.message(ctx, i, m)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			msgs[i], changed = nm, true
		}
	}
	if !changed {
		return body, nil, nil
	}
	var err error
	if top["messages"], err = json.Marshal(msgs); err != nil {
		return nil, nil, fmt.Errorf("documents: encode messages: %w", err)
	}
	out, err := json.Marshal(top)
	if err != nil {
		return nil, nil, fmt.Errorf("documents: encode body: %w", err)
	}
	return out, st.docs, nil
}

// resolveState carries one Resolve call's progress.
type resolveState struct {
	r      *Resolver
	opts   ResolveOptions
	docs   []provider.Document
	budget int64
}

// message resolves the parts of one message and reports whether it
// changed.
func (st *resolveState) message(ctx context.Context, i int, raw json.RawMessage) (json.RawMessage, bool, error) {
	var msg map[string]json.RawMessage
	if json.Unmarshal(raw, &msg) != nil {
		return nil, false, nil
	}
	content := bytes.TrimSpace(msg["content"])
	if len(content) == 0 || content[0] != '[' {
		return nil, false, nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(content, &parts); err != nil {
		return nil, false, openai.InvalidRequest(fmt.Sprintf("messages[%d].content", i), "content must be a string or an array of parts")
	}
	changed := false
	for j, p := range parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		np, ok, err := st.part(ctx, param, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			oe := clientError(err, param)
			if oe.Code == extractor.CodeUnreadable {
				oe.Message = param + ": " + oe.Message
			}
			return nil, false, oe
		}
		if ok {
			parts[j], changed = np, true
		}
	}
	if !changed {
		return nil, false, nil
	}
	var err error
	if msg["content"], err = json.Marshal(parts); err != nil {
		return nil, false, fmt.Errorf("documents: encode content: %w", err)
	}
	out, err := json.Marshal(msg)
	if err != nil {
		return nil, false, fmt.Errorf("documents: encode message: %w", err)
	}
	return out, true, nil
}

// part resolves one content part when it is a document or file part.
func (st *resolveState) part(ctx context.Context, param string, raw json.RawMessage) (json.RawMessage, bool, error) {
	var p openai.ContentPart
	if err := json.Unmarshal(raw, &p); err != nil {
		if bytes.Contains(raw, markDocument) || bytes.Contains(raw, markFile) {
			return nil, false, errInvalid("malformed content part: %v", err)
		}
		return nil, false, nil
	}
	switch {
	case p.Type == openai.PartDocument:
		if p.Source == nil {
			return nil, false, errInvalid("a document part needs a source")
		}
	case p.Type == openai.PartFile && !st.opts.KeepFileParts:
		if p.File == nil {
			return nil, false, errInvalid("a file part needs a file object")
		}
	default:
		return nil, false, nil
	}
	if len(st.docs) >= st.r.s.maxDocuments {
		e := openai.NewError(400, openai.TypeInvalidRequest, CodeTooManyDocuments,
			fmt.Sprintf("a request may carry at most %d documents", st.r.s.maxDocuments))
		return nil, false, e
	}
	var (
		e      *Entry
		source string
		err    error
	)
	if p.Type == openai.PartDocument {
		e, source, err = st.source(ctx, p.Source)
	} else {
		e, source, err = st.file(ctx, p.File)
	}
	if err != nil {
		return nil, false, err
	}
	if int64(len(e.Data)) > st.budget {
		return nil, false, errTooLarge("the documents of this request exceed the %d bytes allowed", st.r.s.maxBytes)
	}
	st.budget -= int64(len(e.Data))
	name := e.Name
	if p.Source != nil && p.Source.Name != "" {
		name = cleanName(p.Source.Name)
	}
	id := fmt.Sprintf("doc_%d", len(st.docs))
	st.docs = append(st.docs, provider.Document{
		ID: id, Name: name, MIMEType: e.MIMEType, Data: e.Data, Text: e.Text, Source: source,
	})
	out, err := json.Marshal(openai.ContentPart{Type: openai.PartDocument, Document: &openai.DocumentRef{ID: id, Name: name}})
	if err != nil {
		return nil, false, fmt.Errorf("documents: encode part: %w", err)
	}
	return out, true, nil
}

// source loads a document part's source.
func (st *resolveState) source(ctx context.Context, src *openai.DocumentSource) (*Entry, string, error) {
	switch src.Type {
	case "url":
		if src.URL == "" {
			return nil, "", errInvalid("a url source needs a url")
		}
		if strings.HasPrefix(strings.ToLower(src.URL), "data:") {
			e, err := st.inline(ctx, src.URL, src.Name)
			return e, "inline", err
		}
		return st.url(ctx, src.URL)
	case "storage":
		if src.Storage == "" || src.Bucket == "" || src.Key == "" {
			return nil, "", errInvalid("a storage source needs storage, bucket and key")
		}
		ref := StorageRef{Storage: src.Storage, Bucket: src.Bucket, Key: src.Key}
		e, err := st.object(ctx, ref)
		return e, ref.String(), err
	case "":
		return nil, "", errInvalid("a document source needs a type")
	}
	return nil, "", errInvalid("unknown document source type %q (want url or storage)", src.Type)
}

// file loads an OpenAI file part.
func (st *resolveState) file(ctx context.Context, f *openai.File) (*Entry, string, error) {
	switch {
	case f.FileData != "":
		e, err := st.inline(ctx, f.FileData, f.Filename)
		return e, "inline", err
	case f.FileID != "":
		return nil, "", errInvalid("file_id references are not supported here; send file_data")
	}
	return nil, "", errInvalid("a file part needs file_data")
}

// url loads a URL, through storage when it is a recognized presigned URL.
func (st *resolveState) url(ctx context.Context, raw string) (*Entry, string, error) {
	// Presigned URLs of configured storage are recognised before the
	// fetcher's address rules apply: they are read through the storage
	// plugin, never over HTTP, so they may point at the host itself.
	if st.r.presign != nil && st.opts.Storage != nil {
		if pu, err := url.Parse(raw); err == nil && (pu.Scheme == "http" || pu.Scheme == "https") {
			if ref, ok := st.r.presign.Recognize(pu); ok {
				e, err := st.object(ctx, ref)
				return e, ref.String(), err
			}
		}
	}
	u, err := st.r.fetcher.ParseURL(raw)
	if err != nil {
		return nil, "", err
	}
	redacted := u.Scheme + "://" + u.Host + u.EscapedPath()
	key := urlKey(u.String())
	if e, ok := st.r.cache.get(ctx, key); ok {
		return e, redacted, st.check(e)
	}
	// Concurrent requests for one URL share a fetch (and its
	// extraction), limited by the configured maximum; each then checks
	// its own remaining budget. The shared work runs on a context of its
	// own, bounded by the fetch timeout plus the extraction timeout, so
	// that one client going away does not fail the others; it is
	// cancelled when every caller has gone.
	e, err := st.r.flight.do(ctx, key, st.r.s.timeout+st.r.s.extractTimeout, func(ctx context.Context) (*Entry, error) {
		f, err := st.r.fetcher.Fetch(ctx, u.String(), st.r.s.maxBytes)
		if err != nil {
			return nil, err
		}
		e, err := st.r.newEntry(ctx, f.Name, f.MIMEType, f.Data)
		if err != nil {
			return nil, err
		}
		if !f.NoStore {
			st.r.cache.set(ctx, key, e, st.r.s.cacheTTL)
		}
		return e, nil
	})
	if err != nil {
		return nil, "", err
	}
	return e, redacted, st.check(e)
}

// object loads a storage object through the caller's StorageReader.
func (st *resolveState) object(ctx context.Context, ref StorageRef) (*Entry, error) {
	if st.opts.Storage == nil {
		return nil, errInvalid("storage documents are not available for this request")
	}
	rc, info, err := st.opts.Storage.Open(ctx, ref.Storage, ref.Bucket, ref.Key)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ref, err)
	}
	defer rc.Close()
	name := cleanName(path.Base(ref.Key))
	if name == "" {
		name = "document"
	}
	var key string
	if info.ETag != "" {
		key = objectKey(ref.Storage, ref.Bucket, ref.Key, info.ETag)
		if e, ok := st.r.cache.get(ctx, key); ok {
			return e, st.check(e)
		}
	}
	if info.Size > st.budget {
		return nil, errTooLarge("document %q is %d bytes, more than the %d allowed", name, info.Size, st.budget)
	}
	data, err := io.ReadAll(io.LimitReader(rc, st.budget+1))
	if err != nil {
		return nil, errFetch("reading %s failed: %v", ref, err)
	}
	if int64(len(data)) > st.budget {
		return nil, errTooLarge("document %q is more than the %d bytes allowed", name, st.budget)
	}
	mt := DetectMIME(info.ContentType, name, data)
	if !st.r.s.mime.allows(mt) {
		return nil, errUnsupported(name, mt)
	}
	if key == "" {
		key = contentKey(data)
		if e, ok := st.r.cache.get(ctx, key); ok && e.MIMEType == mt {
			return &Entry{Name: name, MIMEType: e.MIMEType, Data: data, Text: e.Text}, nil
		}
	}
	e, err := st.r.newEntry(ctx, name, mt, data)
	if err != nil {
		return nil, err
	}
	st.r.cache.set(ctx, key, e, st.r.s.cacheTTL)
	return e, nil
}

// inline loads a data: URL (or bare base64) carried in the request.
func (st *resolveState) inline(ctx context.Context, data, name string) (*Entry, error) {
	declared, payload, err := decodeDataURL(data, st.budget)
	if err != nil {
		return nil, err
	}
	name = cleanName(name)
	if name == "" {
		name = "document"
	}
	mt := DetectMIME(declared, name, payload)
	if !st.r.s.mime.allows(mt) {
		return nil, errUnsupported(name, mt)
	}
	key := contentKey(payload)
	if e, ok := st.r.cache.get(ctx, key); ok && e.MIMEType == mt {
		return &Entry{Name: name, MIMEType: mt, Data: payload, Text: e.Text}, nil
	}
	e, err := st.r.newEntry(ctx, name, mt, payload)
	if err != nil {
		return nil, err
	}
	st.r.cache.set(ctx, key, e, st.r.s.cacheTTL)
	return e, nil
}

// check applies this request's limits to a shared (cached) entry.
func (st *resolveState) check(e *Entry) error {
	if int64(len(e.Data)) > st.budget {
		return errTooLarge("document %q is %d bytes, more than the %d allowed", e.Name, len(e.Data), st.budget)
	}
	if !st.r.s.mime.allows(e.MIMEType) {
		return errUnsupported(e.Name, e.MIMEType)
	}
	return nil
}

// newEntry extracts the text of data (see extractText).
func (r *Resolver) newEntry(ctx context.Context, name, mimeType string, data []byte) (*Entry, error) {
	text, err := r.extractText(ctx, name, mimeType, data)
	if err != nil {
		return nil, err
	}
	return &Entry{Name: name, MIMEType: mimeType, Data: data, Text: text}, nil
}

// decodeDataURL decodes "data:[type][;base64],payload", or a bare base64
// string, refusing payloads larger than limit before decoding them.
func decodeDataURL(s string, limit int64) (mimeType string, data []byte, err error) {
	payload := s
	base64Encoded := true
	if rest, ok := cutPrefixFold(s, "data:"); ok {
		meta, p, found := strings.Cut(rest, ",")
		if !found {
			return "", nil, errInvalid("file_data is not a valid data: URL")
		}
		payload = p
		params := strings.Split(meta, ";")
		mimeType = params[0]
		base64Encoded = false
		for _, prm := range params[1:] {
			if strings.EqualFold(strings.TrimSpace(prm), "base64") {
				base64Encoded = true
			}
		}
	}
	if !base64Encoded {
		if int64(len(payload)) > 3*limit {
			return "", nil, errTooLarge("inline document is more than the %d bytes allowed", limit)
		}
		dec, err := url.PathUnescape(payload)
		if err != nil {
			return "", nil, errInvalid("file_data is not a valid data: URL: %v", err)
		}
		data = []byte(dec)
	} else {
		payload = strings.TrimRight(strings.Map(dropSpace, payload), "=")
		if int64(base64.RawStdEncoding.DecodedLen(len(payload))) > limit {
			return "", nil, errTooLarge("inline document is more than the %d bytes allowed", limit)
		}
		data, err = base64.RawStdEncoding.DecodeString(payload)
		if err != nil {
			data, err = base64.RawURLEncoding.DecodeString(payload)
		}
		if err != nil {
			return "", nil, errInvalid("file_data is not valid base64")
		}
	}
	if int64(len(data)) > limit {
		return "", nil, errTooLarge("inline document is more than the %d bytes allowed", limit)
	}
	return mimeType, data, nil
}

func dropSpace(r rune) rune {
	switch r {
	case ' ', '\n', '\r', '\t':
		return -1
	}
	return r
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
