package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/protocol"
)

// ErrClosed is returned by Start and ServeConn after Close or Drain, and by
// a Drain that Close interrupted.
var ErrClosed = errors.New("gateway: closed")

// Gateway hosts modules and serves their calls over the protocol's TCP and
// WebSocket bindings. Create it with New, bind with Start, stop with Drain
// (graceful) or Close (immediate); Done tells when it has stopped.
type Gateway struct {
	// Immutable after New.
	cfg         Config
	log         zerolog.Logger
	reg         *registry
	handler     Handler // the interceptor chain around execute
	faults      *Faults
	workers     chan struct{} // a slot per executing call, when Config.Workers caps them
	sessions    *sessions
	topics      *topics
	served      map[string]*moduleStats // by module@version
	metrics     *gatewayMetrics         // metrics.go
	welcomeBody []byte
	connOpts    protocol.ConnOptions
	upgrader    websocket.FastHTTPUpgrader
	origins     httpserver.Origins // pages that may open WebSocket connections
	tls         *tlsfiles.Server   // the listeners' certificate; nil: plain
	baseCtx     context.Context    // parent of every connection's context
	cancelBase  context.CancelFunc
	stop        chan struct{} // closed when shutdown begins
	done        chan struct{} // closed when the gateway has stopped
	drainingCh  chan struct{} // closed by the transition to StateDraining
	modules     []string      // module@version, sorted

	// Changed only through transition.
	state   atomic.Int32
	stateMu sync.Mutex

	// Updated by calls on any connection.
	inflight     atomic.Int64 // calls admitted and not yet answered
	lastActivity atomic.Int64 // Clock time (UnixNano) a call last started or ended

	// Handoff (handoff.go, link.go). pool is set by SetPool.
	pool            atomic.Pointer[func() []PeerInfo]
	sessionsMoved   atomic.Uint64 // handed over to another gateway
	sessionsAdopted atomic.Uint64 // taken over from another gateway
	sessionsLost    atomic.Uint64 // still held when a drain ended
	callsRelayed    atomic.Uint64 // calls of moved sessions passed on
	viewMu          sync.Mutex    // guards lastView
	lastView        *poolView
	handoffMu       sync.Mutex // guards the maps below
	movedTo         map[string]uint64
	moveFailures    map[protocol.SessionID]int
	linkMu          sync.Mutex // guards links
	links           map[string]*linkSlot

	mu         sync.Mutex // guards the fields below
	started    bool
	closing    bool
	conns      map[*conn]struct{}
	nextConnID uint64
	tcpLn      net.Listener
	wsLn       net.Listener
	httpLn     net.Listener
	wsSrv      *fasthttp.Server
	httpSrv    *fasthttp.Server
	addrs      Addrs

	// wg counts every goroutine the gateway owns: listeners, connections,
	// calls, the janitor. Add only through acquire, or while holding a slot.
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// Addrs are the bound listen addresses; empty for a listener that is off.
type Addrs struct {
	TCP, WS, HTTP string
	// TLS says the TCP and WS listeners speak TLS (Config.TLS).
	TLS bool
}

// New checks cfg and returns a gateway that is not yet listening.
func New(cfg Config) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	reg, err := newRegistry(cfg.Modules)
	if err != nil {
		return nil, err
	}
	welcome, err := protocol.Marshal(protocol.Welcome{
		Server:        cfg.Name,
		MaxFrame:      uint32(cfg.Limits.MaxFrame),
		MaxInflight:   uint32(cfg.Limits.MaxInflight),
		IdleTimeoutMs: uint32(cfg.Limits.IdleTimeout / time.Millisecond),
		SessionTTLMs:  uint32(cfg.SessionTTL / time.Millisecond),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: encoding WELCOME: %w", err)
	}
	g := &Gateway{
		cfg:          cfg,
		log:          orNop(cfg.Logger).With().Str("gateway", cfg.Name).Logger(),
		reg:          reg,
		faults:       newFaults(cfg.Clock, cfg.ChaosFailRate, cfg.ChaosLatency),
		sessions:     newSessions(cfg.Clock, cfg.SessionTTL),
		topics:       newTopics(),
		served:       make(map[string]*moduleStats, len(reg.modules)),
		welcomeBody:  welcome,
		connOpts:     protocol.ConnOptions{Limits: cfg.Limits},
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		drainingCh:   make(chan struct{}),
		conns:        map[*conn]struct{}{},
		movedTo:      map[string]uint64{},
		moveFailures: map[protocol.SessionID]int{},
		links:        map[string]*linkSlot{},
	}
	// Small WebSocket buffers, the write buffer shared: idle connections
	// are what a gateway holds most of.
	// The origin is checked (with a 403 that says why) before Upgrade;
	// CheckOrigin applies the same policy, in case a path skips that.
	g.origins, _ = httpserver.ParseOrigins(cfg.WSAllowedOrigins) // validated
	if cfg.TLS.Enabled() {
		if g.tls, err = tlsfiles.NewServer(cfg.TLS, cfg.Clock.Now, &g.log); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	g.upgrader = websocket.FastHTTPUpgrader{ReadBufferSize: protocol.WSReadBufferSize,
		WriteBufferSize: protocol.WSWriteBufferSize, WriteBufferPool: protocol.WSWriteBufferPool(),
		CheckOrigin: g.origins.Allowed, Subprotocols: []string{protocol.WSSubprotocol}}
	for name, m := range reg.modules {
		g.served[name] = &moduleStats{}
		g.modules = append(g.modules, name)
		for _, err := range m.skipped {
			g.log.Warn().Err(err).Msg("instance method skipped")
		}
	}
	slices.Sort(g.modules)
	g.metrics = newGatewayMetrics(g)
	if cfg.Workers > 0 {
		g.workers = make(chan struct{}, cfg.Workers)
	}
	g.baseCtx, g.cancelBase = context.WithCancel(context.Background())
	g.handler = chain(append([]Interceptor{g.faults.intercept}, cfg.Interceptors...), g.execute)
	g.lastActivity.Store(cfg.Clock.Now().UnixNano())
	return g, nil
}

// orNop returns *l, or a logger that logs nothing when l is nil.
func orNop(l *zerolog.Logger) zerolog.Logger {
	if l == nil {
		return zerolog.Nop()
	}
	return *l
}

// Name returns the gateway's name.
func (g *Gateway) Name() string { return g.cfg.Name }

// Modules returns the module@version names the gateway hosts, sorted, as
// discovery announces them.
func (g *Gateway) Modules() []string { return slices.Clone(g.modules) }

// Faults returns the gateway's fault injection settings.
func (g *Gateway) Faults() *Faults { return g.faults }

// Addrs returns the addresses the listeners are bound to (after Start).
func (g *Gateway) Addrs() Addrs {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs
}

// Done is closed when the gateway has stopped: every connection, listener
// and goroutine it owns is gone.
func (g *Gateway) Done() <-chan struct{} { return g.done }

// Draining is closed when the gateway starts to drain (Drain): from then
// on it refuses new sessions, and discovery should announce it (see
// discovery.JoinGateway, which waits on it). Close without Drain does not
// close it; Done does not wait for it.
func (g *Gateway) Draining() <-chan struct{} { return g.drainingCh }

// Close stops the gateway at once: listeners and connections are closed,
// calls in flight are canceled and not answered. It waits for every
// goroutine of the gateway, including module code that ignores its
// context. It is safe to call more than once.
func (g *Gateway) Close() error {
	g.shutdown(false)
	return nil
}

// acquire takes a slot in wg for a new goroutine, unless the gateway is
// shutting down.
func (g *Gateway) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

// ServeConn serves a connection that the caller established (a proxy test
// handing over one end of a pipe, say) until it ends. It takes ownership of
// pc and closes it.
func (g *Gateway) ServeConn(pc *protocol.Conn) error {
	if !g.acquire() {
		pc.Abort()
		return ErrClosed
	}
	defer g.wg.Done()
	g.serve(pc, nil, nil, "conn")
	return nil
}

// serve runs one connection on the calling goroutine, which holds a wg
// slot. raw is the socket under pc (for a lingering close), ws the
// WebSocket when the binding is WebSocket; both may be nil.
func (g *Gateway) serve(pc *protocol.Conn, raw net.Conn, ws *websocket.Conn, binding string) {
	c, refusal := g.addConn(pc, raw, ws, binding)
	if refusal != nil {
		c.log.Warn().Str("code", refusal.Code.String()).Msg("connection refused: " + refusal.Message)
		c.sendError(0, protocol.SessionID{}, 0, refusal)
		c.lingerClose()
		return
	}
	defer g.removeConn(c)
	c.serve()
}

var errTooManyConns = &protocol.Error{Code: protocol.CodeOverloaded, Message: "too many connections"}
var errShuttingDown = &protocol.Error{Code: protocol.CodeUnavailable, Message: "gateway is shutting down"}

// addConn registers a new connection, or returns why it is refused.
func (g *Gateway) addConn(pc *protocol.Conn, raw net.Conn, ws *websocket.Conn, binding string) (*conn, *protocol.Error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextConnID++
	c := newConn(g, g.nextConnID, pc, raw, ws, binding)
	switch {
	case g.closing:
		return c, errShuttingDown
	case len(g.conns) >= g.cfg.MaxConns:
		return c, errTooManyConns
	}
	g.conns[c] = struct{}{}
	return c, nil
}

func (g *Gateway) removeConn(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.topics.dropConn(c)
}

func (g *Gateway) snapshotConns() []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	cs := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		cs = append(cs, c)
	}
	return cs
}

// shutdownTimeout bounds how long the HTTP servers may take to stop.
const shutdownTimeout = 5 * time.Second

// shutdown stops everything once; later callers wait for the first.
// graceful flushes each connection's queued frames before closing it.
func (g *Gateway) shutdown(graceful bool) {
	g.stopOnce.Do(func() {
		g.mu.Lock()
		g.closing = true
		lns := []net.Listener{g.tcpLn, g.wsLn, g.httpLn}
		srvs := []*fasthttp.Server{g.wsSrv, g.httpSrv}
		g.mu.Unlock()
		close(g.stop)
		for _, ln := range lns {
			if ln != nil {
				_ = ln.Close()
			}
		}
		var closers sync.WaitGroup
		for _, c := range g.snapshotConns() {
			if graceful {
				closers.Go(c.closeGracefully)
			} else {
				c.abort()
			}
		}
		closers.Wait()
		g.closeLinks()
		g.cancelBase()
		for _, s := range srvs {
			if s != nil {
				ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
				if err := s.ShutdownWithContext(ctx); err != nil {
					g.log.Warn().Err(err).Msg("HTTP server shutdown")
				}
				cancel()
			}
		}
		g.wg.Wait()
		g.transition(StateStopped, StateNew, StateReady, StateDraining)
		close(g.done)
	})
}

// callStarted and callEnded keep the counts that drain and /stats read.
func (g *Gateway) callStarted() {
	g.inflight.Add(1)
	g.lastActivity.Store(g.cfg.Clock.Now().UnixNano())
}

func (g *Gateway) callEnded() {
	g.lastActivity.Store(g.cfg.Clock.Now().UnixNano())
	g.inflight.Add(-1)
}
