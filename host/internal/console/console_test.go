package console

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const adminKey = "sk-admin-0123456789"

// fixture is a console whose dispatch records what it was asked.
type fixture struct {
	c          *Console
	dispatched []string
	now        time.Time
	admin      map[string]bool
}

func newFixture() *fixture {
	f := &fixture{now: time.Unix(1_800_000_000, 0), admin: map[string]bool{adminKey: true}}
	f.c = New(Options{
		Admin: func(secret []byte) bool { return f.admin[string(secret)] },
		Dispatch: func(ctx *fasthttp.RequestCtx) {
			f.dispatched = append(f.dispatched, string(ctx.Method())+" "+string(ctx.RequestURI())+" "+
				string(ctx.Request.Header.Peek("Authorization"))+" cookie="+string(ctx.Request.Header.Peek("Cookie")))
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"object":"list","data":[]}`)
		},
		Info:       func() any { return map[string]any{"routes": []string{"echo"}} },
		SessionTTL: time.Hour,
		Now:        func() time.Time { return f.now },
	})
	return f
}

type req struct {
	method, path, body, cookie, csrf, origin, proto string
}

func (f *fixture) do(r req) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(r.method)
	ctx.Request.SetRequestURI(r.path)
	ctx.Request.Header.SetHost("gw.example:8080")
	if r.body != "" {
		ctx.Request.Header.SetContentType("application/x-www-form-urlencoded")
		ctx.Request.SetBodyString(r.body)
	}
	if r.cookie != "" {
		ctx.Request.Header.SetCookie(CookieName, r.cookie)
	}
	if r.csrf != "" {
		ctx.Request.Header.Set("X-CSRF-Token", r.csrf)
	}
	if r.origin != "" {
		ctx.Request.Header.Set("Origin", r.origin)
	}
	if r.proto != "" {
		ctx.Request.Header.Set("X-Forwarded-Proto", r.proto)
	}
	f.c.Serve(&ctx)
	var out fasthttp.Response
	ctx.Response.CopyTo(&out)
	return &out
}

// login signs in and returns the session cookie and the page's CSRF token.
func (f *fixture) login(t *testing.T) (cookie, csrf string) {
	t.Helper()
	resp := f.do(req{method: "POST", path: "/ui/login", body: "key=" + adminKey, origin: "http://gw.example:8080"})
	if resp.StatusCode() != http.StatusSeeOther {
		t.Fatalf("login: %d %s", resp.StatusCode(), resp.Body())
	}
	var k fasthttp.Cookie
	k.SetKey(CookieName)
	if !resp.Header.Cookie(&k) {
		t.Fatal("login set no session cookie")
	}
	cookie = string(k.Value())
	page := f.do(req{method: "GET", path: "/ui/", cookie: cookie})
	body := string(page.Body())
	i := strings.Index(body, `name="csrf-token" content="`)
	if i < 0 {
		t.Fatalf("no csrf token in the page: %s", body)
	}
	csrf = body[i+len(`name="csrf-token" content="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	return cookie, csrf
}

func TestLoginCookie(t *testing.T) {
	for _, tt := range []struct {
		proto  string
		secure bool
	}{{"", false}, {"https", true}} {
		f := newFixture()
		resp := f.do(req{method: "POST", path: "/ui/login", body: "key=" + adminKey, proto: tt.proto})
		var k fasthttp.Cookie
		k.SetKey(CookieName)
		if !resp.Header.Cookie(&k) {
			t.Fatalf("proto %q: no cookie", tt.proto)
		}
		if !k.HTTPOnly() || k.SameSite() != fasthttp.CookieSameSiteStrictMode || k.Secure() != tt.secure || string(k.Path()) != "/ui" {
			t.Errorf("proto %q: cookie %s: want HttpOnly, SameSite=Strict, Path=/ui, Secure=%v", tt.proto, k.String(), tt.secure)
		}
		if strings.Contains(k.String(), adminKey) || strings.Contains(string(resp.Body()), adminKey) {
			t.Errorf("the admin key went back to the browser")
		}
	}
}

func TestLoginRefused(t *testing.T) {
	f := newFixture()
	f.admin["sk-user-key"] = false
	for name, r := range map[string]req{
		"not an admin key": {method: "POST", path: "/ui/login", body: "key=sk-user-key"},
		"unknown key":      {method: "POST", path: "/ui/login", body: "key=sk-nope"},
		"empty":            {method: "POST", path: "/ui/login", body: "key="},
		"cross-site post":  {method: "POST", path: "/ui/login", body: "key=" + adminKey, origin: "https://evil.example"},
		"null origin":      {method: "POST", path: "/ui/login", body: "key=" + adminKey, origin: "null"},
	} {
		resp := f.do(r)
		if resp.StatusCode() < 400 || len(resp.Header.PeekCookie(CookieName)) > 0 {
			t.Errorf("%s: %d, cookie %q; want a refusal without a session", name, resp.StatusCode(), resp.Header.PeekCookie(CookieName))
		}
		if !strings.Contains(string(resp.Body()), `id="login-error"`) {
			t.Errorf("%s: the sign-in page shows no error", name)
		}
	}
}

func TestAPI(t *testing.T) {
	f := newFixture()
	cookie, csrf := f.login(t)
	tests := []struct {
		name   string
		r      req
		status int
		sent   string
	}{
		{"no session", req{method: "GET", path: "/ui/api/admin/v1/keys", csrf: csrf}, 401, ""},
		{"forged session", req{method: "GET", path: "/ui/api/admin/v1/keys", cookie: "forged", csrf: csrf}, 401, ""},
		{"no csrf token", req{method: "POST", path: "/ui/api/admin/v1/keys", cookie: cookie}, 403, ""},
		{"wrong csrf token", req{method: "DELETE", path: "/ui/api/admin/v1/keys/key_1", cookie: cookie, csrf: csrf + "x"}, 403, ""},
		{"keys", req{method: "GET", path: "/ui/api/admin/v1/keys", cookie: cookie, csrf: csrf}, 200,
			"GET /admin/v1/keys Bearer " + adminKey + " cookie="},
		{"usage with query", req{method: "GET", path: "/ui/api/admin/v1/usage?group_by=hour&key=a", cookie: cookie, csrf: csrf}, 200,
			"GET /admin/v1/usage?group_by=hour&key=a Bearer " + adminKey + " cookie="},
		{"readyz", req{method: "GET", path: "/ui/api/readyz", cookie: cookie, csrf: csrf}, 200,
			"GET /readyz Bearer " + adminKey + " cookie="},
		{"nothing else", req{method: "POST", path: "/ui/api/v1/chat/completions", cookie: cookie, csrf: csrf}, 404, ""},
		{"info", req{method: "GET", path: "/ui/api/info", cookie: cookie, csrf: csrf}, 200, ""},
	}
	for _, tt := range tests {
		f.dispatched = nil
		resp := f.do(tt.r)
		if resp.StatusCode() != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode(), resp.Body(), tt.status)
		}
		got := strings.Join(f.dispatched, "\n")
		if got != tt.sent {
			t.Errorf("%s: dispatched %q, want %q", tt.name, got, tt.sent)
		}
	}
}

func TestSessionEnds(t *testing.T) {
	f := newFixture()
	cookie, csrf := f.login(t)
	get := req{method: "GET", path: "/ui/api/readyz", cookie: cookie, csrf: csrf}
	f.now = f.now.Add(59 * time.Minute)
	if s := f.do(get).StatusCode(); s != 200 {
		t.Fatalf("session used within its ttl: %d", s)
	}
	f.now = f.now.Add(61 * time.Minute)
	if s := f.do(get).StatusCode(); s != 401 {
		t.Errorf("idle session still served: %d", s)
	}

	cookie, csrf = f.login(t)
	f.admin[adminKey] = false // revoked
	if s := f.do(req{method: "GET", path: "/ui/api/readyz", cookie: cookie, csrf: csrf}).StatusCode(); s != 401 {
		t.Errorf("session of a revoked key still served: %d", s)
	}

	f.admin[adminKey] = true
	cookie, csrf = f.login(t)
	if s := f.do(req{method: "POST", path: "/ui/logout", cookie: cookie, body: "csrf=wrong"}).StatusCode(); s != http.StatusSeeOther {
		t.Fatalf("logout: %d", s)
	}
	if s := f.do(req{method: "GET", path: "/ui/api/readyz", cookie: cookie, csrf: csrf}).StatusCode(); s != 200 {
		t.Errorf("a logout without the token ended the session: %d", s)
	}
	f.do(req{method: "POST", path: "/ui/logout", cookie: cookie, body: "csrf=" + csrf})
	if s := f.do(req{method: "GET", path: "/ui/api/readyz", cookie: cookie, csrf: csrf}).StatusCode(); s != 401 {
		t.Errorf("session served after logout: %d", s)
	}
}

func TestPages(t *testing.T) {
	f := newFixture()
	login := f.do(req{method: "GET", path: "/ui/"})
	if login.StatusCode() != 200 || !strings.Contains(string(login.Body()), `action="/ui/login"`) {
		t.Fatalf("signed-out page: %d %s", login.StatusCode(), login.Body())
	}
	csp := string(login.Header.Peek("Content-Security-Policy"))
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for path, ctype := range map[string]string{"/ui/assets/app.js": "javascript", "/ui/assets/app.css": "text/css"} {
		r := f.do(req{method: "GET", path: path})
		if r.StatusCode() != 200 || !strings.Contains(string(r.Header.ContentType()), ctype) || len(r.Body()) == 0 {
			t.Errorf("%s: %d %s", path, r.StatusCode(), r.Header.ContentType())
		}
	}
	for _, path := range []string{"/ui/assets/app.html", "/ui/assets/../console.go", "/ui/assets/nope.js", "/ui/elsewhere"} {
		if s := f.do(req{method: "GET", path: path}).StatusCode(); s != 404 {
			t.Errorf("%s: %d, want 404", path, s)
		}
	}
	if r := f.do(req{method: "GET", path: "/ui"}); r.StatusCode() != http.StatusFound {
		t.Errorf("/ui: %d", r.StatusCode())
	}
}
