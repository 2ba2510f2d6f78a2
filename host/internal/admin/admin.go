// Package admin serves llmproxy's admin API: /admin/v1/keys manages the
// API keys of the store (create, list, read, update, revoke) and
// /admin/v1/usage reads the usage records.
//
// Only admin keys may call it. Errors have the OpenAI shape
// {"error":{"message","type","param","code"}}. A key's secret appears in
// exactly one answer, that of its creation; the store holds its SHA-256
// digest, and nothing here logs either.
package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
	"github.com/llmproxy/llmproxy/host/internal/store"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// SecretPrefix starts every secret the admin API creates.
const SecretPrefix = "sk-llmp-"

// configIDPrefix starts the ids under which keys of the config file are
// listed; they are read-only here.
const configIDPrefix = "config:"

// Path is the prefix of every admin API path.
const Path = "/admin/"

// Options configure an API.
type Options struct {
	// Store holds the keys and usage records; nil answers every request
	// with an error saying that no store is configured.
	Store store.Store
	// Logger records key changes (never secrets); nil logs nothing.
	Logger hclog.Logger
	// Now returns the current time; nil uses time.Now.
	Now func() time.Time
}

// API serves the admin API.
type API struct {
	opts Options
}

// New returns an API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &API{opts: opts}
}

// Request is one admin API call.
type Request struct {
	Ctx *fasthttp.RequestCtx
	// Caller is the authenticated key; Config are the keys of the config
	// file currently served (listed read-only, and names no stored key
	// may take).
	Caller *auth.Key
	Config *auth.Keys
	// Context bounds the store calls.
	Context context.Context
}

// Serve answers one request under Path.
func (a *API) Serve(r Request) {
	ctx := r.Ctx
	if r.Caller == nil {
		writeError(ctx, openai.NewError(http.StatusUnauthorized, openai.TypeInvalidRequest, "invalid_api_key",
			"missing API key: send Authorization: Bearer <admin key>"))
		return
	}
	if !r.Caller.Admin {
		writeError(ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "admin_required",
			"the admin API needs an admin key"))
		return
	}
	path := string(ctx.Path())
	method := string(ctx.Method())
	rest, isKeys := strings.CutPrefix(path, "/admin/v1/keys")
	switch {
	case path == "/admin/v1/usage":
		if a.allow(ctx, method, "GET") && a.ready(ctx) {
			a.usage(r)
		}
	case isKeys && rest == "":
		switch method {
		case "GET":
			if a.ready(ctx) {
				a.list(r)
			}
		case "POST":
			if a.ready(ctx) {
				a.create(r)
			}
		default:
			a.allow(ctx, method, "GET, POST")
		}
	case isKeys && strings.HasPrefix(rest, "/") && len(rest) > 1 && !strings.Contains(rest[1:], "/"):
		id := rest[1:]
		switch method {
		case "GET":
			if a.ready(ctx) {
				a.get(r, id)
			}
		case "PATCH":
			if a.ready(ctx) {
				a.patch(r, id)
			}
		case "DELETE":
			if a.ready(ctx) {
				a.revoke(r, id)
			}
		default:
			a.allow(ctx, method, "GET, PATCH, DELETE")
		}
	default:
		writeError(ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "unknown_path",
			fmt.Sprintf("no admin route for %s %s; see /admin/v1/keys and /admin/v1/usage", method, path)))
	}
}

// allow answers 405 unless method is one of allowed.
func (a *API) allow(ctx *fasthttp.RequestCtx, method, allowed string) bool {
	if slices.Contains(strings.Split(allowed, ", "), method) {
		return true
	}
	ctx.Response.Header.Set("Allow", allowed)
	writeError(ctx, openai.NewError(http.StatusMethodNotAllowed, openai.TypeInvalidRequest, "method_not_allowed",
		fmt.Sprintf("%s %s is not supported; use %s", method, ctx.Path(), allowed)))
	return false
}

// ready answers 501 when no store is configured.
func (a *API) ready(ctx *fasthttp.RequestCtx) bool {
	if a.opts.Store != nil {
		return true
	}
	writeError(ctx, openai.NewError(http.StatusNotImplemented, openai.TypeInvalidRequest, "store_not_configured",
		`the admin API needs a store: add a store { driver = "sqlite" path = "llmproxy.db" } block to the config`))
	return false
}

// keyObject is a key as the admin API shows it.
type keyObject struct {
	Object      string   `json:"object"`
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Group       string   `json:"group"`
	Prefix      *string  `json:"prefix"`
	Models      []string `json:"models"`
	Passthrough []string `json:"passthrough"`
	Instances   []string `json:"instances"`
	StorageOps  []string `json:"storage_ops"`
	Admin       bool     `json:"admin"`
	Budget      *budget  `json:"budget"`
	// Limits are the key's own rate limits, those set; null for none.
	Limits    *ratelimit.KeyLimits `json:"limits"`
	CreatedAt *string              `json:"created_at"`
	ExpiresAt *string              `json:"expires_at"`
	RevokedAt *string              `json:"revoked_at"`
	Source    string               `json:"source"`
	// Key is the secret, set only in the answer to its creation.
	Key string `json:"key,omitempty"`
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func stamp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func storedObject(k *store.Key) keyObject {
	prefix := k.Prefix
	return keyObject{Object: "api_key", ID: k.ID, Name: k.Name, Group: k.Group, Prefix: &prefix,
		Models: nonNil(k.Models), Passthrough: nonNil(k.Passthrough), Instances: nonNil(k.Instances),
		StorageOps: nonNil(k.StorageOps), Admin: k.Admin, Budget: budgetOut(k.Budget), Limits: k.Limits,
		CreatedAt: stamp(&k.CreatedAt), ExpiresAt: stamp(k.ExpiresAt), RevokedAt: stamp(k.RevokedAt), Source: "store"}
}

func configObject(k *auth.Key) keyObject {
	models, passthrough, instances, ops := k.Rights()
	return keyObject{Object: "api_key", ID: configIDPrefix + k.Name, Name: k.Name, Group: k.Group,
		Models: nonNil(models), Passthrough: nonNil(passthrough), Instances: nonNil(instances),
		StorageOps: nonNil(ops), Admin: k.Admin, Budget: budgetOut(k.Budget), Limits: k.Limits, Source: "config"}
}

// budget is a budget as the admin API shows it.
type budget struct {
	USD    float64 `json:"usd"`
	Period string  `json:"period"`
}

// budgetOut shows a budget with its period defaulted.
func budgetOut(b *config.Budget) *budget {
	if b == nil {
		return nil
	}
	c := budget{USD: b.USD, Period: b.Period}
	if c.Period == "" {
		c.Period = "month"
	}
	return &c
}

func (a *API) list(r Request) {
	keys, err := a.opts.Store.Keys(r.Context)
	if err != nil {
		a.storeError(r.Ctx, err)
		return
	}
	data := []keyObject{}
	if r.Config != nil {
		for _, k := range r.Config.List() {
			data = append(data, configObject(k))
		}
	}
	for _, k := range keys {
		data = append(data, storedObject(k))
	}
	writeJSON(r.Ctx, http.StatusOK, struct {
		Object string      `json:"object"`
		Data   []keyObject `json:"data"`
	}{"list", data})
}

func (a *API) get(r Request, id string) {
	if name, ok := strings.CutPrefix(id, configIDPrefix); ok {
		if r.Config != nil {
			if k := r.Config.ByName(name); k != nil {
				writeJSON(r.Ctx, http.StatusOK, configObject(k))
				return
			}
		}
		writeError(r.Ctx, notFound(id))
		return
	}
	k, err := a.opts.Store.Key(r.Context, id)
	if err != nil {
		a.storeError(r.Ctx, err)
		return
	}
	writeJSON(r.Ctx, http.StatusOK, storedObject(k))
}

// keyFields are the writable fields of a key; a PATCH sets those
// present.
var keyFields = []string{"name", "group", "models", "passthrough", "instances", "storage_ops", "admin", "expires_at", "budget", "limits"}

func (a *API) create(r Request) {
	fields, err := decodeObject(r.Ctx.PostBody())
	if err != nil {
		writeError(r.Ctx, err)
		return
	}
	if _, ok := fields["name"]; !ok {
		writeError(r.Ctx, invalid("name", "name is required"))
		return
	}
	now := a.opts.Now().UTC().Truncate(time.Second)
	k := &store.Key{CreatedAt: now}
	if err := apply(k, fields, now); err != nil {
		writeError(r.Ctx, err)
		return
	}
	if err := a.checkName(r, k.Name); err != nil {
		writeError(r.Ctx, err)
		return
	}
	secret, id, err := newSecret()
	if err != nil {
		writeError(r.Ctx, openai.NewError(http.StatusInternalServerError, openai.TypeServer, "internal_error", "cannot draw a random key"))
		return
	}
	k.ID = id
	k.Digest = sha256.Sum256([]byte(secret))
	k.Prefix = secret[:len(SecretPrefix)+4]
	if err := a.opts.Store.CreateKey(r.Context, k); err != nil {
		a.storeError(r.Ctx, err)
		return
	}
	a.opts.Logger.Info("key created", "id", k.ID, "name", k.Name, "by", r.Caller.Name)
	obj := storedObject(k)
	obj.Key = secret
	writeJSON(r.Ctx, http.StatusCreated, obj)
}

func (a *API) patch(r Request, id string) {
	if strings.HasPrefix(id, configIDPrefix) {
		writeError(r.Ctx, readOnly(id))
		return
	}
	fields, err := decodeObject(r.Ctx.PostBody())
	if err != nil {
		writeError(r.Ctx, err)
		return
	}
	k, err := a.opts.Store.ModifyKey(r.Context, id, func(k *store.Key) error {
		old := k.Name
		if err := apply(k, fields, time.Time{}); err != nil {
			return err
		}
		if k.Name != old {
			return a.checkName(r, k.Name)
		}
		return nil
	})
	if err != nil {
		var e *openai.Error
		if errors.As(err, &e) {
			writeError(r.Ctx, e)
		} else {
			a.storeError(r.Ctx, err)
		}
		return
	}
	a.opts.Logger.Info("key updated", "id", k.ID, "name", k.Name, "by", r.Caller.Name)
	writeJSON(r.Ctx, http.StatusOK, storedObject(k))
}

func (a *API) revoke(r Request, id string) {
	if strings.HasPrefix(id, configIDPrefix) {
		writeError(r.Ctx, readOnly(id))
		return
	}
	k, err := a.opts.Store.RevokeKey(r.Context, id, a.opts.Now().UTC().Truncate(time.Second))
	if err != nil {
		a.storeError(r.Ctx, err)
		return
	}
	a.opts.Logger.Info("key revoked", "id", k.ID, "name", k.Name, "by", r.Caller.Name)
	writeJSON(r.Ctx, http.StatusOK, storedObject(k))
}

// checkName refuses a stored key name that a key of the config file has:
// the config file wins, so such a key could never be used by its name.
func (a *API) checkName(r Request, name string) error {
	if r.Config != nil && r.Config.ByName(name) != nil {
		e := openai.NewError(http.StatusConflict, openai.TypeInvalidRequest, "key_exists",
			fmt.Sprintf("the config file has a key named %q; choose another name", name))
		e.Param = "name"
		return e
	}
	return nil
}

// newSecret draws a key secret and a key id.
func newSecret() (secret, id string, err error) {
	b := make([]byte, 32+12)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:32]), "key_" + hex.EncodeToString(b[32:]), nil
}

// decodeObject reads a JSON object and refuses unknown fields.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, invalid("", "the request body must be a JSON object")
	}
	if dec.More() {
		return nil, invalid("", "the request body must hold one JSON object")
	}
	for name := range fields {
		if !slices.Contains(keyFields, name) {
			return nil, invalid(name, fmt.Sprintf("unknown field %q; a key has %s", name, strings.Join(keyFields, ", ")))
		}
	}
	return fields, nil
}

// apply sets the fields present on k, validating each. A non-zero
// created time means a creation, where expires_at must lie ahead.
func apply(k *store.Key, fields map[string]json.RawMessage, created time.Time) error {
	for _, name := range keyFields {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		null := string(bytes.TrimSpace(raw)) == "null"
		var err error
		switch name {
		case "name":
			err = decodeText(raw, &k.Name, name, true)
		case "group":
			err = decodeText(raw, &k.Group, name, false)
		case "models":
			err = decodeList(raw, &k.Models, name)
		case "passthrough":
			err = decodeList(raw, &k.Passthrough, name)
		case "instances":
			err = decodeList(raw, &k.Instances, name)
		case "storage_ops":
			if err = decodeList(raw, &k.StorageOps, name); err == nil {
				for _, op := range k.StorageOps {
					if op != "*" && !slices.Contains(config.StorageOps, op) {
						return invalid(name, fmt.Sprintf("unknown storage operation %q; use %s or *", op, strings.Join(config.StorageOps, ", ")))
					}
				}
			}
		case "admin":
			if json.Unmarshal(raw, &k.Admin) != nil || null {
				err = invalid(name, "admin must be true or false")
			}
		case "expires_at":
			if null {
				k.ExpiresAt = nil
				break
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return invalid(name, "expires_at must be an RFC 3339 time or null")
			}
			t, perr := time.Parse(time.RFC3339, s)
			if perr != nil {
				return invalid(name, fmt.Sprintf("expires_at %q is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)", s))
			}
			if !created.IsZero() && !t.After(created) {
				return invalid(name, "expires_at must lie in the future")
			}
			t = t.UTC()
			k.ExpiresAt = &t
		case "budget":
			if null {
				k.Budget = nil
				break
			}
			var b struct {
				USD    *float64 `json:"usd"`
				Period string   `json:"period"`
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if dec.Decode(&b) != nil {
				return invalid(name, `budget must be {"usd": <dollars>, "period": "day"|"week"|"month"|"total"} or null`)
			}
			if b.USD == nil || *b.USD < 0 || math.IsInf(*b.USD, 0) || math.IsNaN(*b.USD) {
				return invalid(name, "budget.usd must be a number of dollars, zero or more")
			}
			if b.Period == "" {
				b.Period = "month"
			}
			if !slices.Contains(budgetPeriods, b.Period) {
				return invalid(name, fmt.Sprintf("budget.period %q is not one of %s", b.Period, strings.Join(budgetPeriods, ", ")))
			}
			k.Budget = &config.Budget{USD: *b.USD, Period: b.Period}
		case "limits":
			err = applyLimits(k, raw, null)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// limitFields are the members of a key's limits object.
var limitFields = []string{"rpm", "rps", "tpm", "concurrency"}

// applyLimits merges a limits object into k's limits: a member that is
// present sets that limit (null or 0 removes it), an absent one keeps it,
// and null for the whole object removes every limit. Limits that end up
// all zero are none.
func applyLimits(k *store.Key, raw json.RawMessage, null bool) error {
	const usage = `limits must be {"rpm", "rps", "tpm", "concurrency": whole numbers from 0 to %d, or null} or null`
	if null {
		k.Limits = nil
		return nil
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil || members == nil {
		return invalid("limits", fmt.Sprintf(usage, ratelimit.MaxKeyLimit))
	}
	l := ratelimit.KeyLimits{}
	if k.Limits != nil {
		l = *k.Limits
	}
	for name, v := range members {
		var dst *int64
		switch name {
		case "rpm":
			dst = &l.RPM
		case "rps":
			dst = &l.RPS
		case "tpm":
			dst = &l.TPM
		case "concurrency":
			dst = &l.Concurrent
		default:
			return invalid("limits", fmt.Sprintf("unknown limit %q; limits has %s", name, strings.Join(limitFields, ", ")))
		}
		var n *int64
		if err := json.Unmarshal(v, &n); err != nil {
			return invalid("limits", fmt.Sprintf("limits.%s must be a whole number from 0 to %d, or null", name, ratelimit.MaxKeyLimit))
		}
		*dst = 0
		if n != nil {
			*dst = *n
		}
	}
	if err := l.Validate(); err != nil {
		return invalid("limits", err.Error())
	}
	k.Limits = nil
	if !l.Empty() {
		k.Limits = &l
	}
	return nil
}

// budgetPeriods are the periods a budget may span.
var budgetPeriods = []string{"day", "week", "month", "total"}

// maxText bounds names and groups; maxList the entries of a rights list.
const (
	maxText = 128
	maxList = 256
)

func decodeText(raw json.RawMessage, dst *string, name string, required bool) error {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return invalid(name, name+" must be a string")
	}
	if required && s == "" {
		return invalid(name, name+" must not be empty")
	}
	if len(s) > maxText || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalid(name, fmt.Sprintf("%s must be at most %d characters without control characters", name, maxText))
	}
	*dst = s
	return nil
}

func decodeList(raw json.RawMessage, dst *[]string, name string) error {
	var l []string
	if json.Unmarshal(raw, &l) != nil {
		return invalid(name, name+" must be a list of strings")
	}
	if len(l) > maxList {
		return invalid(name, fmt.Sprintf("%s has more than %d entries", name, maxList))
	}
	for _, s := range l {
		if s == "" || len(s) > 256 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return invalid(name, fmt.Sprintf("%s entries must be non-empty patterns of at most 256 characters", name))
		}
	}
	if l == nil {
		l = []string{}
	}
	*dst = l
	return nil
}

func invalid(param, msg string) *openai.Error { return openai.InvalidRequest(param, msg) }

func notFound(id string) *openai.Error {
	return openai.NewError(http.StatusNotFound, openai.TypeNotFound, "key_not_found", fmt.Sprintf("no key with id %q", id))
}

func readOnly(id string) *openai.Error {
	return openai.NewError(http.StatusForbidden, openai.TypePermission, "key_read_only",
		fmt.Sprintf("%s is a key of the config file; change it there", id))
}

// storeError answers a failed store call.
func (a *API) storeError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		id := string(ctx.Path())
		if i := strings.LastIndexByte(id, '/'); i >= 0 {
			id = id[i+1:]
		}
		writeError(ctx, notFound(id))
	case errors.Is(err, store.ErrConflict):
		e := openai.NewError(http.StatusConflict, openai.TypeInvalidRequest, "key_exists", "a stored key with this name exists")
		e.Param = "name"
		writeError(ctx, e)
	default:
		a.opts.Logger.Error("admin: store failed", "error", err)
		writeError(ctx, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "store_unavailable",
			"the key store is unavailable; the error has been logged"))
	}
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, openai.NewError(http.StatusInternalServerError, openai.TypeServer, "internal_error", "cannot encode the answer"))
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// writeError answers err, an *openai.Error (anything else is an
// internal error).
func writeError(ctx *fasthttp.RequestCtx, err error) {
	var e *openai.Error
	if !errors.As(err, &e) {
		e = openai.NewError(http.StatusInternalServerError, openai.TypeServer, "internal_error", "the request failed")
	}
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(e.JSON())
}

// parseLimit reads a positive limit up to max.
func parseLimit(s string, max int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}
