package httpserver

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// Origins says which web pages may open a WebSocket connection: the
// policy a listener applies to the Origin header of upgrade requests
// (RFC 6455 section 10.2), against cross-site WebSocket hijacking, where a
// page on any site a user visits drives a server that the user's browser
// can reach.
//
// Browsers send Origin on every WebSocket handshake and a page cannot
// forge it; other clients (the Go client, graftlb's proxy dialing a
// gateway, curl) send none, and a request without Origin is allowed: the
// policy protects browsers' users, it does not authenticate. A request
// with Origin is allowed when the origin is the listener's own (its host
// and port are the request's Host, as a page served by the same host:port
// has) or when it matches one of the patterns; every other one, the
// opaque origin "null" (sandboxed frames, file: pages) included, is
// refused. With no patterns only same-host pages may connect, which is
// what browsers expect of a secure server.
//
// A pattern is an origin, scheme://host[:port], in which the host may
// begin with "*." to match any subdomain (not the domain itself) and the
// port may be "*" to match any port; without a port it matches the
// scheme's default port only. "*" alone allows every origin. Scheme and
// host compare case-insensitively. Examples: https://app.example.com,
// https://*.example.com, http://localhost:*.
//
// The zero value allows same-host pages only. An Origins is immutable and
// safe for concurrent use.
type Origins struct {
	any      bool
	patterns []originPattern
}

type originPattern struct {
	scheme string // lower case
	host   string // lower case; after the "*." for a wildcard
	sub    bool   // host was "*.host": match subdomains of host
	port   string // "" for the scheme's default, "*" for any
	text   string // as written, for String
}

// ParseOrigins parses patterns (see Origins). Errors name the pattern.
func ParseOrigins(patterns []string) (Origins, error) {
	var o Origins
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p == "*" {
			o.any = true
			o.patterns = append(o.patterns, originPattern{text: p})
			continue
		}
		op, err := parseOriginPattern(p)
		if err != nil {
			return Origins{}, fmt.Errorf("origin pattern %q: %w", p, err)
		}
		o.patterns = append(o.patterns, op)
	}
	return o, nil
}

func parseOriginPattern(p string) (originPattern, error) {
	scheme, rest, ok := strings.Cut(p, "://")
	if !ok || scheme == "" {
		return originPattern{}, fmt.Errorf("want scheme://host[:port]")
	}
	if strings.ContainsAny(rest, "/?#@") {
		return originPattern{}, fmt.Errorf("an origin has no path, query, fragment or user")
	}
	op := originPattern{scheme: strings.ToLower(scheme), text: p}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
		if port != "*" && !validPort(port) {
			return originPattern{}, fmt.Errorf("port %q: want a number or *", port)
		}
		if port == defaultPort(op.scheme) {
			port = ""
		}
	}
	if h, ok := strings.CutPrefix(host, "*."); ok {
		op.sub, host = true, h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // as url.URL.Hostname gives it
	if host == "" || strings.Contains(host, "*") {
		return originPattern{}, fmt.Errorf("host %q: a wildcard may only begin it, as *.example.com", host)
	}
	op.host, op.port = strings.ToLower(host), port
	return op, nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// String returns the patterns as ParseOrigins takes them, comma-separated,
// or "same host only".
func (o Origins) String() string {
	if len(o.patterns) == 0 {
		return "same host only"
	}
	s := make([]string, len(o.patterns))
	for i, p := range o.patterns {
		s[i] = p.text
	}
	return strings.Join(s, ",")
}

// Refusal returns why the upgrade request of ctx may not proceed, or ""
// when its Origin is absent or allowed.
func (o Origins) Refusal(ctx *fasthttp.RequestCtx) string {
	origin := ctx.Request.Header.Peek("Origin")
	if origin == nil || o.any {
		return ""
	}
	if string(origin) == "null" {
		return "origin null (a sandboxed frame or a file: page) may not open WebSocket connections here: " +
			"only * in --ws-allowed-origins allows it"
	}
	u, err := url.Parse(string(origin))
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return fmt.Sprintf("Origin %q is not an origin (scheme://host[:port]): refused unless --ws-allowed-origins is *", origin)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if port == defaultPort(scheme) {
		port = ""
	}
	if sameHost(host, port, scheme, ctx.Host()) {
		return ""
	}
	for _, p := range o.patterns {
		if p.matches(scheme, host, port) {
			return ""
		}
	}
	return fmt.Sprintf("origin %s may not open WebSocket connections here: it is not this host (%s) and not in --ws-allowed-origins (%s)",
		origin, ctx.Host(), o)
}

// sameHost reports whether the origin's host and port are those of the
// request's Host header (a port left out is the scheme's default).
func sameHost(host, port, scheme string, reqHost []byte) bool {
	h, p, err := net.SplitHostPort(string(reqHost))
	if err != nil {
		h, p = string(reqHost), ""
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if p == defaultPort(scheme) {
		p = ""
	}
	return host != "" && strings.EqualFold(h, host) && p == port
}

func (p originPattern) matches(scheme, host, port string) bool {
	if p.scheme != scheme || (p.port != "*" && p.port != port) {
		return false
	}
	if p.sub {
		return strings.HasSuffix(host, "."+p.host)
	}
	return host == p.host
}

// Allowed reports whether the Origin of ctx's upgrade request is absent or
// allowed; it suits an upgrader's CheckOrigin.
func (o Origins) Allowed(ctx *fasthttp.RequestCtx) bool { return o.Refusal(ctx) == "" }

// CheckOrigin refuses, with 403, a body saying why and a lingering close,
// an upgrade request whose Origin o does not allow, and returns the
// reason (for the caller's log); "" means the request may proceed.
func (o Origins) CheckOrigin(ctx *fasthttp.RequestCtx) string {
	why := o.Refusal(ctx)
	if why == "" {
		return ""
	}
	ctx.Error(why, fasthttp.StatusForbidden)
	Linger(ctx)
	return why
}
