// Package console is llmproxy's web console at /ui: an operator signs in
// with an admin key and sees instances and their health, routes, keys
// (create, revoke), usage and spend over time, and a playground that
// chats with any routed model.
//
// The console is a few server-rendered pages and one small script, all
// embedded in the binary: nothing is fetched from elsewhere at run time.
//
// Security:
//   - Signing in posts the admin key once; the host keeps it in a
//     server-side session and the browser gets only a random session
//     cookie (HttpOnly, SameSite=Strict, Path=/ui, Secure when the
//     request came over TLS). The key is never sent back to the browser
//     and the script never stores it.
//   - The script reaches the host through /ui/api/..., which needs the
//     session cookie and the session's CSRF token in the X-CSRF-Token
//     header (a header a cross-site form cannot set). The console then
//     serves the request as the host serves /readyz or /admin/v1/...
//     with the session's admin key, so every admin rule applies as for
//     any client.
//   - Form posts (sign in, sign out) must come from the console's own
//     origin when the browser says where they came from.
//   - Pages carry a Content-Security-Policy that allows only the
//     console's own script and styles.
package console

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served.
const Prefix = "/ui"

// CookieName is the session cookie.
const CookieName = "llmproxy_console"

// DefaultSessionTTL is how long a session lives without use.
const DefaultSessionTTL = 12 * time.Hour

// maxSessions bounds the sessions held; the least recently used go first.
const maxSessions = 1024

// Options are what the console needs from the host.
type Options struct {
	// Admin reports whether secret is a key with admin rights now.
	Admin func(secret []byte) bool
	// Dispatch serves a request as the host serves any request; the
	// console calls it with the path of the host endpoint and the
	// session's admin key in the Authorization header.
	Dispatch fasthttp.RequestHandler
	// Info describes the configuration for the routes and instances
	// pages (routes, their targets, instance kinds and types).
	Info func() any
	// SessionTTL is how long a session lives without use
	// (DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Console serves /ui.
type Console struct {
	opts  Options
	mu    sync.Mutex
	byID  map[[32]byte]*session
	pages *template.Template
}

// session is one signed-in browser.
type session struct {
	secret  []byte
	csrf    string
	expires time.Time
	used    time.Time
}

// New returns a console.
func New(opts Options) *Console {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Console{
		opts:  opts,
		byID:  map[[32]byte]*session{},
		pages: template.Must(template.ParseFS(assets, "assets/*.html")),
	}
}

// Handles reports whether path is the console's.
func Handles(path string) bool {
	return path == Prefix || strings.HasPrefix(path, Prefix+"/")
}

// Serve answers a request under /ui.
func (c *Console) Serve(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	switch {
	case p == Prefix:
		ctx.Redirect(Prefix+"/", http.StatusFound)
	case p == Prefix+"/":
		c.index(ctx)
	case p == Prefix+"/login":
		c.login(ctx)
	case p == Prefix+"/logout":
		c.logout(ctx)
	case strings.HasPrefix(p, Prefix+"/assets/"):
		c.asset(ctx, strings.TrimPrefix(p, Prefix+"/"))
	case strings.HasPrefix(p, Prefix+"/api/"):
		c.api(ctx, strings.TrimPrefix(p, Prefix+"/api"))
	default:
		ctx.Error("not found", http.StatusNotFound)
	}
}

// pageHeaders are the headers of every console page.
func pageHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (c *Console) render(ctx *fasthttp.RequestCtx, status int, name string, data any) {
	pageHeaders(ctx)
	var b bytes.Buffer
	if err := c.pages.ExecuteTemplate(&b, name, data); err != nil {
		ctx.Error("the console page failed to render", http.StatusInternalServerError)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

// index shows the console to a signed-in browser and the sign-in form to
// any other.
func (c *Console) index(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := c.session(ctx)
	if s == nil {
		c.render(ctx, http.StatusOK, "login.html", map[string]string{})
		return
	}
	c.render(ctx, http.StatusOK, "app.html", map[string]string{"CSRF": s.csrf})
}

// login signs a browser in with an admin key posted from the form.
func (c *Console) login(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Redirect(Prefix+"/", http.StatusFound)
		return
	}
	if !sameOrigin(ctx) {
		c.render(ctx, http.StatusForbidden, "login.html", map[string]string{"Error": "The sign-in form was posted from another site."})
		return
	}
	key := bytes.TrimSpace(ctx.PostArgs().Peek("key"))
	if len(key) == 0 || !c.opts.Admin(key) {
		c.render(ctx, http.StatusUnauthorized, "login.html", map[string]string{"Error": "That is not an admin key of this gateway."})
		return
	}
	c.setCookie(ctx, c.create(key), c.opts.SessionTTL)
	ctx.Redirect(Prefix+"/", http.StatusSeeOther)
}

// logout ends the session; it needs the session's CSRF token.
func (c *Console) logout(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Error("method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s := c.session(ctx); s != nil && sameOrigin(ctx) && tokenMatches(s.csrf, ctx.PostArgs().Peek("csrf")) {
		c.mu.Lock()
		delete(c.byID, digest(ctx.Request.Header.Cookie(CookieName)))
		c.mu.Unlock()
	}
	c.setCookie(ctx, "", -1)
	ctx.Redirect(Prefix+"/", http.StatusSeeOther)
}

// asset serves an embedded file.
func (c *Console) asset(ctx *fasthttp.RequestCtx, name string) {
	name = path.Clean(name)
	if !strings.HasPrefix(name, "assets/") || strings.HasSuffix(name, ".html") {
		ctx.Error("not found", http.StatusNotFound)
		return
	}
	b, err := assets.ReadFile(name)
	if err != nil {
		ctx.Error("not found", http.StatusNotFound)
		return
	}
	pageHeaders(ctx)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetContentType(mime.TypeByExtension(path.Ext(name)))
	ctx.SetBody(b)
}

// apiRoutes maps the console's API paths to the host's own.
func hostPath(p string) (string, bool) {
	switch {
	case p == "/readyz":
		return "/readyz", true
	case strings.HasPrefix(p, "/admin/"):
		return p, true
	}
	return "", false
}

// api serves the script's calls: the configuration summary itself, the
// rest by dispatching to the host with the session's admin key.
func (c *Console) api(ctx *fasthttp.RequestCtx, p string) {
	s := c.session(ctx)
	if s == nil {
		apiError(ctx, http.StatusUnauthorized, "console_session_required", "sign in to the console first")
		return
	}
	if !tokenMatches(s.csrf, ctx.Request.Header.Peek("X-CSRF-Token")) {
		apiError(ctx, http.StatusForbidden, "console_csrf", "the request lacks the console's X-CSRF-Token header")
		return
	}
	if p == "/info" {
		if !ctx.IsGet() {
			apiError(ctx, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		b, err := json.Marshal(c.opts.Info())
		if err != nil {
			apiError(ctx, http.StatusInternalServerError, "internal_error", err.Error())
			return
		}
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
		return
	}
	target, ok := hostPath(p)
	if !ok {
		apiError(ctx, http.StatusNotFound, "unknown_path", "no console API at "+p)
		return
	}
	req := &ctx.Request
	if q := req.URI().QueryString(); len(q) > 0 {
		target += "?" + string(q)
	}
	req.SetRequestURI(target)
	req.Header.Del("Cookie")
	req.Header.Del("X-API-Key")
	req.Header.Del("X-CSRF-Token")
	req.Header.Set("Authorization", "Bearer "+string(s.secret))
	c.opts.Dispatch(ctx)
	ctx.Response.Header.Set("Cache-Control", "no-store")
}

func apiError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": code}})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// sameOrigin reports whether a form post came from the console's own
// origin. A browser sends Origin with every POST; when it names another
// site (or "null"), the post is refused.
func sameOrigin(ctx *fasthttp.RequestCtx) bool {
	o := string(ctx.Request.Header.Peek("Origin"))
	if o == "" {
		return true
	}
	host := string(ctx.Host())
	return o == "http://"+host || o == "https://"+host
}

// secure reports whether the browser reached the host over TLS, directly
// or through a proxy that says so.
func secure(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsTLS() || strings.EqualFold(string(ctx.Request.Header.Peek("X-Forwarded-Proto")), "https")
}

func (c *Console) setCookie(ctx *fasthttp.RequestCtx, value string, ttl time.Duration) {
	var k fasthttp.Cookie
	k.SetKey(CookieName)
	k.SetValue(value)
	k.SetPath(Prefix)
	k.SetHTTPOnly(true)
	k.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	k.SetSecure(secure(ctx))
	if ttl < 0 {
		k.SetMaxAge(-1)
		k.SetExpire(fasthttp.CookieExpireDelete)
	} else {
		k.SetMaxAge(int(ttl / time.Second))
	}
	ctx.Response.Header.SetCookie(&k)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func digest(id []byte) [32]byte { return sha256.Sum256(id) }

func tokenMatches(want string, got []byte) bool {
	return len(got) > 0 && subtle.ConstantTimeCompare([]byte(want), got) == 1
}

// create starts a session for an admin key and returns its id.
func (c *Console) create(secret []byte) string {
	id := randomToken()
	now := c.opts.Now()
	s := &session{secret: append([]byte(nil), secret...), csrf: randomToken(), expires: now.Add(c.opts.SessionTTL), used: now}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, x := range c.byID {
		if !now.Before(x.expires) {
			delete(c.byID, k)
		}
	}
	for len(c.byID) >= maxSessions {
		var oldest [32]byte
		first := true
		var at time.Time
		for k, x := range c.byID {
			if first || x.used.Before(at) {
				oldest, at, first = k, x.used, false
			}
		}
		delete(c.byID, oldest)
	}
	c.byID[digest([]byte(id))] = s
	return id
}

// session returns the request's live session, or nil. A session whose
// key has lost its admin rights (revoked, changed by a reload) ends.
func (c *Console) session(ctx *fasthttp.RequestCtx) *session {
	id := ctx.Request.Header.Cookie(CookieName)
	if len(id) == 0 {
		return nil
	}
	d := digest(id)
	now := c.opts.Now()
	c.mu.Lock()
	s := c.byID[d]
	if s != nil && !now.Before(s.expires) {
		delete(c.byID, d)
		s = nil
	}
	if s != nil {
		s.used = now
		s.expires = now.Add(c.opts.SessionTTL)
	}
	c.mu.Unlock()
	if s == nil || !c.opts.Admin(s.secret) {
		if s != nil {
			c.mu.Lock()
			delete(c.byID, d)
			c.mu.Unlock()
		}
		return nil
	}
	return s
}
