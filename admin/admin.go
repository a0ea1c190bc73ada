// Package admin is graftlb's HTTP admin endpoint: JSON views of the pool
// and counters (GET /pool, GET /stats), liveness (GET /healthz), served by
// fasthttp on their own listener so that the data path never shares a
// port with operators' tools.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Limits bound the admin listener: ReadTimeout (default 10s) for a
// request and its response, IdleTimeout (30s) between requests, MaxConns
// (256) connections at once. An operator's tool needs little; a client
// that opens many connections or never finishes its request must not hold
// the process's sockets.
type Limits = httpserver.Limits

// Server serves the admin endpoints.
type Server struct {
	log    *zerolog.Logger
	limits Limits
	routes map[string]fasthttp.RequestHandler

	mu      sync.Mutex
	ln      net.Listener
	srv     *fasthttp.Server
	done    chan struct{}
	started bool
}

// New returns a server with GET /healthz under l (zero fields take the
// defaults); add views with HandleJSON.
func New(log *zerolog.Logger, l Limits) *Server {
	if log == nil {
		nop := zerolog.Nop()
		log = &nop
	}
	s := &Server{log: log, limits: l.WithDefaults(), routes: map[string]fasthttp.RequestHandler{}}
	s.Handle("/healthz", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("OK") })
	return s
}

// Handle serves path with h. Call it before Start.
func (s *Server) Handle(path string, h fasthttp.RequestHandler) { s.routes[path] = h }

// HandleJSON serves path with the JSON encoding of what view returns.
func (s *Server) HandleJSON(path string, view func() any) {
	s.Handle(path, func(ctx *fasthttp.RequestCtx) {
		b, err := json.MarshalIndent(view(), "", "  ")
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '\n'))
	})
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
	return nil
}

func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	h, ok := s.routes[string(ctx.Path())]
	if !ok {
		paths := make([]string, 0, len(s.routes))
		for p := range s.routes {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		ctx.Error(fmt.Sprintf("not found; endpoints: %v", paths), fasthttp.StatusNotFound)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	h(ctx)
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

// Close stops the server and waits for it.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown()
	<-done
	return err
}

type logAdapter struct{ l *zerolog.Logger }

func (a logAdapter) Printf(format string, args ...any) { a.l.Debug().Msgf(format, args...) }
