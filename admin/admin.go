// Package admin is graftlb's HTTP admin endpoint: JSON views of the pool
// and counters (GET /pool, GET /stats), liveness (GET /healthz),
// Prometheus metrics (GET /metrics), operator actions (POST), pprof on
// request, and the live dashboard (GET /, fed by GET /events), served by
// fasthttp on their own listener so that the data path never shares a
// port with operators' tools.
//
// The listener binds loopback unless told otherwise; CheckExposure is the
// rule that a wider address needs a token (bearer auth on every path but
// /healthz) or an explicit insecure flag.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// Limits bound the admin listener: ReadTimeout (default 10s) for a
// request and its response, IdleTimeout (30s) between requests, MaxConns
// (256) connections at once. An operator's tool needs little; a client
// that opens many connections or never finishes its request must not hold
// the process's sockets. The dashboard's live feed is one long response:
// it renews its own write deadline.
type Limits = httpserver.Limits

// route is a handler for a method on an exact path or, when prefix is
// set, on every path under it.
type route struct {
	method string // GET routes answer HEAD too
	path   string
	prefix bool
	h      fasthttp.RequestHandler
}

// Server serves the admin endpoints.
type Server struct {
	log    *zerolog.Logger
	limits Limits
	routes []route
	token  []byte // the bearer token every path but /healthz and /readyz needs; nil: none
	// closing is closed when Close begins, so that long responses (the
	// dashboard's feed) end and the server can stop.
	closing chan struct{}
	// background runs while the server does (the dashboard's watcher),
	// each until its channel is closed; bg waits for them.
	background []func(stop <-chan struct{})
	bg         sync.WaitGroup

	mu      sync.Mutex
	ln      net.Listener
	srv     *fasthttp.Server
	done    chan struct{}
	started bool
	closed  bool
}

// New returns a server with GET /healthz under l (zero fields take the
// defaults); add views with HandleJSON.
func New(log *zerolog.Logger, l Limits) *Server {
	if log == nil {
		nop := zerolog.Nop()
		log = &nop
	}
	s := &Server{log: log, limits: l.WithDefaults(), closing: make(chan struct{})}
	s.Handle("/healthz", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("OK") })
	return s
}

// Handle serves GET (and HEAD) path with h. Call it before Start.
func (s *Server) Handle(path string, h fasthttp.RequestHandler) {
	s.routes = append(s.routes, route{method: fasthttp.MethodGet, path: path, h: h})
}

// HandlePrefix serves method on every path that begins with prefix (it
// ends in "/"), for paths with parameters: /sessions/{id}. Call it before
// Start.
func (s *Server) HandlePrefix(method, prefix string, h fasthttp.RequestHandler) {
	s.routes = append(s.routes, route{method: method, path: prefix, prefix: true, h: h})
}

// HandleJSON serves path with the JSON encoding of what view returns.
func (s *Server) HandleJSON(path string, view func() any) {
	s.Handle(path, func(ctx *fasthttp.RequestCtx) { writeJSON(ctx, fasthttp.StatusOK, view()) })
}

// EnablePprof serves net/http/pprof under /debug/pprof/ (the proxy's
// --admin-pprof). Call it before Start.
func (s *Server) EnablePprof() {
	s.HandlePrefix(fasthttp.MethodGet, "/debug/pprof/", pprofhandler.PprofHandler)
}

// RequireToken makes every path but /healthz and /readyz need "Authorization: Bearer
// token" (the dashboard may also present it as a cookie; see auth). An
// empty token requires none. Call it before Start.
func (s *Server) RequireToken(token string) {
	if token == "" {
		s.token = nil
		return
	}
	s.token = []byte(token)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}

// Start listens on addr (port 0 allowed).
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("admin: already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	s.started, s.ln, s.done = true, ln, make(chan struct{})
	s.srv = httpserver.New("graftlb-admin", s.serve, s.limits, logAdapter{s.log})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(httpserver.Listen(ln))
	}()
	for _, f := range s.background {
		s.bg.Go(func() { f(s.closing) })
	}
	return nil
}

// probe reports whether path is a health probe, served without the token:
// load balancers and kubelets check /healthz and /readyz with no
// credentials, and the answers reveal nothing but up or not.
func probe(path string) bool { return path == "/healthz" || path == "/readyz" }

func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if !probe(path) && !s.auth(ctx) {
		return
	}
	method := string(ctx.Method())
	if method == fasthttp.MethodHead {
		method = fasthttp.MethodGet
	}
	found := false
	for _, r := range s.routes {
		if r.path != path && !(r.prefix && strings.HasPrefix(path, r.path)) {
			continue
		}
		found = true
		if r.method != method {
			continue
		}
		if method != fasthttp.MethodGet && !sameOrigin(ctx) {
			ctx.Error("forbidden: a cross-site request may not change the proxy", fasthttp.StatusForbidden)
			return
		}
		r.h(ctx)
		return
	}
	if found {
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	paths := make([]string, 0, len(s.routes))
	for _, r := range s.routes {
		p := r.path
		if r.prefix {
			p += "..."
		}
		paths = append(paths, r.method+" "+p)
	}
	sort.Strings(paths)
	ctx.Error(fmt.Sprintf("not found; endpoints: %v", paths), fasthttp.StatusNotFound)
}

// Addr returns the bound address, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Closing is closed when Close begins: long responses end on it.
func (s *Server) Closing() <-chan struct{} { return s.closing }

// Close stops the server and waits for it.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown()
	<-done
	s.bg.Wait()
	return err
}

type logAdapter struct{ l *zerolog.Logger }

func (a logAdapter) Printf(format string, args ...any) { a.l.Debug().Msgf(format, args...) }
