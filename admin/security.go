package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// TokenEnv is the environment variable that may hold the admin token
// instead of --admin-token (a flag shows in ps; the environment does not).
const TokenEnv = "GRAFTLB_ADMIN_TOKEN"

// tokenCookie carries the token for a browser: the dashboard page and its
// feed cannot send an Authorization header, so GET /?token=... sets it.
const tokenCookie = "graftlb_admin_token"

// CheckExposure is the rule for the admin listener's address: loopback is
// fine as it is; any other address (a LAN address, 0.0.0.0, ":9889")
// exposes pool control and session data to the network, so it needs a
// token or an explicit insecure. The error says why and what to do.
func CheckExposure(addr, token string, insecure bool) error {
	if addr == "" || token != "" || insecure || Loopback(addr) {
		return nil
	}
	return fmt.Errorf("admin listener %s is not on loopback: anyone who reaches it could drain gateways and read sessions; "+
		"give --admin-token (or $%s) to require a bearer token, or --admin-insecure to serve it without one", addr, TokenEnv)
}

// Loopback reports whether addr (host:port) binds loopback only: a
// loopback IP, or "localhost".
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// auth checks the token when one is required, answering 401 when it is
// missing or wrong, and reports whether the request may go on. A browser
// may present it as the cookie GET /?token=... sets, except for requests
// that change something: those need the header, so that another site's
// page cannot make a visitor's browser send them.
func (s *Server) auth(ctx *fasthttp.RequestCtx) bool {
	if s.token == nil {
		return true
	}
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 7 && strings.EqualFold(string(h[:7]), "bearer ") {
		if s.tokenOK(h[7:]) {
			return true
		}
	}
	get := ctx.IsGet() || ctx.IsHead()
	if get {
		if c, err := url.QueryUnescape(string(ctx.Request.Header.Cookie(tokenCookie))); err == nil && c != "" && s.tokenOK([]byte(c)) {
			return true
		}
		if q := ctx.QueryArgs().Peek("token"); len(q) > 0 && string(ctx.Path()) == "/" && s.tokenOK(q) {
			// The dashboard's login: keep the token in a cookie for the
			// page's feed, and take it out of the address bar.
			var ck fasthttp.Cookie
			ck.SetKey(tokenCookie)
			ck.SetValue(url.QueryEscape(string(q)))
			ck.SetHTTPOnly(true)
			ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
			ck.SetPath("/")
			ctx.Response.Header.SetCookie(&ck)
			ctx.Redirect("/", fasthttp.StatusSeeOther)
			return false
		}
	}
	ctx.Error("unauthorized: this admin listener needs its token (Authorization: Bearer ...; a browser: open /?token=...)",
		fasthttp.StatusUnauthorized)
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="graftlb admin"`) // after Error, which resets the header
	return false
}

// tokenOK compares got with the token in constant time (of the token's
// length too: both are hashed first).
func (s *Server) tokenOK(got []byte) bool {
	a, b := sha256.Sum256(got), sha256.Sum256(s.token)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// sameOrigin reports whether a request that changes something comes from
// a page of this listener or from a tool (no Origin header): a browser on
// another site's page sends its Origin, or Sec-Fetch-Site cross-site.
func sameOrigin(ctx *fasthttp.RequestCtx) bool {
	if site := string(ctx.Request.Header.Peek("Sec-Fetch-Site")); site == "cross-site" || site == "same-site" {
		return false
	}
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return true
	}
	u, err := url.Parse(string(origin))
	return err == nil && u.Host == string(ctx.Host())
}
