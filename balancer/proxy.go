// Package balancer is graftlb's L7 data plane: it accepts client
// connections speaking the Hypertube frame protocol (TCP and WebSocket),
// and routes every frame by its header alone:
//
//   - stateless calls go, call by call, to the gateway chosen by the power of
//     two choices over the expected wait (latency estimate × calls in
//     flight, near ties broken at random), so one client connection spreads
//     over the whole pool;
//   - stateful calls go to their session's owner: the first gateway in the
//     session id's Maglev preference list that serves the module and admits
//     new sessions (with Config.SessionLoadBound, the first whose load is
//     under the bound). Each proxy binds the sessions it sees; a gateway asked
//     for a resumed session it does not hold answers NOT_OWNER and the proxy
//     walks down the list, so proxies agree on owners without sharing state
//     (DESIGN.md section 4);
//   - callbacks and events from a gateway go to the client connection that
//     last used their session.
//
// With credentials (Config.Auth), a client's HELLO must carry a good one
// (else ERROR UNAUTHENTICATED), and the session ids a client names are
// bound to its identity: gateways see ids derived from both, which the
// proxy maps back on every frame to the client, so another identity naming
// a leaked id reaches no one's objects, through any proxy (auth.go).
//
// Calls of many clients share a few multiplexed connections per gateway
// (upstreams), under call ids the proxy assigns. The forwarding path
// patches call ids and session ids in place and copies each frame once,
// into the destination's write batch: it allocates nothing per frame.
//
// A call reads one way through the package: decide (picker.go: a picker
// of the routing snapshot chooses the gateway, route.go applies it),
// forward (upstream.go: onto one of that gateway's connections, recorded in
// its call table) and settle (call.go: the call gives back what it holds,
// and its client gets the answer, dispatch.go routing the gateway's).
//
// Threading: one control goroutine applies membership snapshots and
// gateway state and health changes, and publishes an immutable snapshot
// with its pickers; readers of client and gateway connections route
// concurrently from the current snapshot without locks. The locks of this
// package a call takes are its client connection's, its session's (a
// stateful call), one shard of its upstream's call table and, for a call
// naming another session than its connection's, one shard of the session
// table: none is shared by all the clients of a gateway. The outlier
// counters it feeds are atomics, and so is the breaker's count of a
// success (health.Breaker locks only for a failure or a transition). The
// write batch of the upstream connection (protocol.Writer) is the one lock
// those clients share. BenchmarkForwardLocks counts the waits.
package balancer

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/protocol"
	"github.com/valyala/fasthttp"
)

// Proxy is a running graftlb proxy.
type Proxy struct {
	// Immutable after New. cfg is the config New was given, for what no
	// reload changes (listeners, name, clock, logger...); live is the one
	// in force, cfg at first and then each Reload's (reload.go).
	cfg      Config
	live     atomic.Pointer[Config]
	src      discovery.Source
	upLimits protocol.Limits
	sessions *sessionTable
	rate     atomic.Pointer[rateLimit] // calls per source, or per identity with credentials (Config.CallRate)
	// verifier checks HELLO credentials (Config.Auth); nil: credentials
	// off. idRates are the rate limit words of identities, authLog rate
	// limits the logs of refusals (auth.go).
	verifier *credential.Verifier
	idRates  identityRates
	authLog  listener.RefusalLog
	modLimit *moduleLimit // Config.MaxModuleCalls
	topics   topicTable
	instance string // random per process: gateways send topic EVENTs once per proxy
	stop     chan struct{}
	ctl      *discovery.Control // the control loop (control.go)
	done     chan struct{}
	warm     chan struct{} // closed once the first pool is connected
	// expiredFn is p.expired as a func value made once, so that sweeps
	// allocate nothing.
	expiredFn func(call)
	abandonFn func(*call, int64) bool // p.abandonable, made once
	triedFn   func(*backend, call)    // p.tried, made once

	checker  *health.Checker
	detector *health.Detector

	tls tlsfiles.Sides // the client listeners' certificate and the gateways' trust

	picker atomic.Pointer[snapshot] // the current routing snapshot and its pickers
	// reloadMu serialises Reload; reloads counts them, reloadsApplied
	// those the control goroutine has applied (reload.go).
	reloadMu       sync.Mutex
	reloads        atomic.Uint64
	reloadsApplied atomic.Uint64
	draining       atomic.Bool  // Drain was called: not ready, GOAWAY to clients
	startedAt      atomic.Int64 // unix nanoseconds when Start began serving
	// admission counts the client connections, in all and by source.
	admission *listener.Admission
	active    atomic.Int64 // client calls in flight
	retries   atomic.Int64 // retries in flight
	stats     stats
	metrics   *proxyMetrics // metrics.go
	operator  operatorState // operator.go

	// wg counts the goroutines the proxy owns: the control loop, the
	// accept loops, the WebSocket server and client connections.
	wg sync.WaitGroup

	// mu guards the listeners, the client connections and the backends.
	mu       sync.Mutex
	lns      *listener.Pair // nil until Start binds them
	wsSrv    *fasthttp.Server
	downs    map[*downstream]struct{}
	backends map[string]*backend // by member name
	started  bool
	closed   bool
}

// stats are counters for the admin API and tests.
type stats struct {
	sessionsLost      atomic.Int64
	retries           atomic.Int64
	retriesDenied     atomic.Int64
	callbacksDropped  atomic.Int64
	eventsDropped     atomic.Int64
	deadlinesExceeded atomic.Int64
	tryTimeouts       atomic.Int64 // attempts abandoned by Config.TryTimeout
	lateReplies       atomic.Int64 // replies to calls no longer in flight there, dropped
	lostNotices       atomic.Int64
	topicDeliveries   atomic.Int64
	sessionsMoved     atomic.Int64
	notOwnerWalks     atomic.Int64
	callbacks         atomic.Int64 // CALLBACKs delivered to clients
	events            atomic.Int64 // session EVENTs delivered to clients
	// unauthenticated counts HELLOs refused UNAUTHENTICATED;
	// moduleCallsRefused the calls refused by Config.MaxModuleCalls.
	unauthenticated    atomic.Int64
	moduleCallsRefused atomic.Int64
}

// New returns a proxy for the pool src describes. It owns src from then on
// and closes it on Close.
func New(cfg Config, src discovery.Source) (*Proxy, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:      cfg,
		src:      src,
		sessions: newSessionTable(cfg.MaxSessions, cfg.MaxSessionsPerSource, cfg.MaxSessionsPerConn),
		instance: protocol.NewSessionID().String(),
		stop:     make(chan struct{}),
		ctl:      discovery.NewControl(),
		done:     make(chan struct{}),
		warm:     make(chan struct{}),
		downs:    make(map[*downstream]struct{}),
		backends: make(map[string]*backend),
		metrics:  newProxyMetrics(cfg.DisableMetrics),
		modLimit: newModuleLimit(cfg.MaxModuleCalls),
	}
	if cfg.Auth.Clock == nil {
		cfg.Auth.Clock = cfg.Clock
	}
	v, err := credential.New(cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	p.verifier = v
	p.live.Store(&cfg)
	rl := newRateLimit(cfg.CallRate, cfg.CallBurst)
	p.rate.Store(&rl)
	p.admission = listener.NewAdmission(cfg.MaxConns, cfg.MaxConnsPerSource, cfg.Logger, p.now)
	// Upstream frames are client frames plus nothing: the same size limit,
	// and room for many clients' calls in flight.
	p.upLimits = protocol.Limits{MaxFrame: cfg.Limits.MaxFrame, MaxPendingWrite: 4 * cfg.Limits.MaxPendingWrite,
		WriteTimeout: cfg.Limits.WriteTimeout}.WithDefaults()
	p.expiredFn = p.expired
	p.abandonFn = p.abandonable
	p.triedFn = p.tried
	if p.tls, err = tlsfiles.LoadSides(cfg.TLS, cfg.BackendTLS, cfg.Clock.Now, cfg.Logger); err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	if err := p.initHealth(); err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	pk, _ := buildSnapshot(nil, nil, routingOf(cfg))
	p.picker.Store(pk)
	return p, nil
}

// Start connects to the pool and then binds the listeners. Like Envoy's
// cluster warming, it waits (up to DialTimeout) until the first membership
// snapshot is applied and every gateway in it had a first connection
// attempt, so that the first clients do not find a pool that seems empty:
// a resumed session must not be declared lost because its gateway was not
// connected yet.
func (p *Proxy) Start() error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("balancer: already started")
	}
	p.started = true
	p.checker.Start()
	p.detector.Start()
	p.wg.Add(1)
	go p.control()
	p.mu.Unlock()
	select {
	case <-p.warm:
	case <-time.After(p.cfg.DialTimeout + time.Second):
		p.cfg.Logger.Warn().Msg("pool not fully connected at start; serving anyway")
	}
	p.startedAt.Store(p.now())
	p.mu.Lock()
	defer p.mu.Unlock()
	lns, err := listener.Bind(p.cfg.TCP, p.cfg.WS, p.cfg.ProxyProtocol, p.cfg.Limits.HelloTimeout, p.listenerTLS())
	if err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	p.lns = lns
	if ln := lns.WS(); ln != nil {
		// The origin is checked (with a 403 that says why) before Upgrade;
		// CheckOrigin applies the same policy, in case a path skips that.
		origins, _ := httpserver.ParseOrigins(p.cfg.WSAllowedOrigins) // validated
		up := websocket.FastHTTPUpgrader{ReadBufferSize: protocol.WSReadBufferSize,
			WriteBufferSize: protocol.WSWriteBufferSize, WriteBufferPool: protocol.WSWriteBufferPool(),
			CheckOrigin: origins.Allowed, Subprotocols: []string{protocol.WSSubprotocol}}
		// The upgrade request must arrive within the HELLO timeout.
		// The handler owns and closes WebSocket connections.
		p.wsSrv = httpserver.NewUpgrading("graftlb", func(ctx *fasthttp.RequestCtx) { p.serveHTTP(ctx, &up, origins) },
			httpserver.Limits{ReadTimeout: p.cfg.Limits.HelloTimeout, MaxConns: p.cfg.MaxConns + 16}, fasthttpLogger{p.cfg.Logger})
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_ = p.wsSrv.Serve(httpserver.Listen(ln))
		}()
	}
	if ln := lns.TCP(); ln != nil {
		p.wg.Add(1)
		go p.acceptTCP(ln)
	}
	return nil
}

// Addrs returns the bound addresses (after Start).
func (p *Proxy) Addrs() Addrs {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lns.Addrs()
}

func (p *Proxy) serveHTTP(ctx *fasthttp.RequestCtx, up *websocket.FastHTTPUpgrader, origins httpserver.Origins) {
	if string(ctx.Path()) != protocol.WSPath {
		ctx.Error("not found: the Hypertube WebSocket endpoint is /ws", fasthttp.StatusNotFound)
		return
	}
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		ctx.Error("WebSocket upgrade required", fasthttp.StatusUpgradeRequired)
		return
	}
	if !httpserver.CheckUpgrade(ctx) {
		return
	}
	if why := origins.CheckOrigin(ctx); why != "" {
		p.cfg.Logger.Warn().Str("remote", ctx.RemoteAddr().String()).Msg("WebSocket upgrade refused: " + why)
		return
	}
	_ = up.Upgrade(ctx, func(ws *websocket.Conn) {
		pc := protocol.NewWSConn(ws, protocol.ConnOptions{Limits: p.conf().Limits})
		if d := p.admit(pc); d != nil {
			// On a goroutine of its own: fasthttp releases the upgrade
			// request (its RequestCtx) when this handler returns, and
			// the connection's goroutine starts with a small stack.
			go d.serve()
		}
	})
}

func (p *Proxy) acceptTCP(ln net.Listener) {
	defer p.wg.Done()
	listener.Serve(ln, p.stop, p.cfg.Logger, func(nc net.Conn) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// Admission reads the client's address, which under the PROXY
			// protocol waits for its header, and a TLS handshake waits for
			// the client: on this goroutine, not the accept loop's, within
			// the HELLO timeout.
			listener.NoDelay(nc)
			if err := listener.HandshakeWithin(nc, p.conf().Limits.HelloTimeout); err != nil {
				_ = nc.Close()
				return
			}
			pc := protocol.NewStreamConn(nc, protocol.ConnOptions{Limits: p.conf().Limits})
			if d := p.admit(pc); d != nil {
				d.serve()
			}
		}()
	})
}

// admit registers a new client connection, or refuses it when the proxy is
// full, its source has too many connections, or the proxy is closing. An
// admitted connection is released once, by downstream.close.
func (p *Proxy) admit(pc *protocol.Conn) *downstream {
	if why, ok := p.admission.Admit(pc.RemoteAddr()); !ok {
		// Refusals are logged by the admission, at most once per
		// listener.RefusalLogInterval per kind, so that a flood of
		// connections does not become a flood of log lines.
		_ = pc.Send(&protocol.Frame{Type: protocol.TypeError,
			Body: protocol.AppendErrorBody(nil, protocol.CodeOverloaded, why, "")})
		_ = pc.Close()
		return nil
	}
	d := newDownstream(p, pc, p.conf().Limits)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.admission.Release(pc.RemoteAddr())
		pc.Abort()
		return nil
	}
	p.downs[d] = struct{}{}
	p.mu.Unlock()
	return d
}

func (p *Proxy) dropConn(d *downstream) {
	p.mu.Lock()
	delete(p.downs, d)
	p.mu.Unlock()
}

// Close stops the proxy: listeners, client connections, gateway
// connections and the discovery source, and waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	started := p.started
	p.lns.Close()
	downs := make([]*downstream, 0, len(p.downs))
	for d := range p.downs {
		downs = append(downs, d)
	}
	p.mu.Unlock()
	close(p.stop)
	if p.wsSrv != nil {
		_ = p.wsSrv.Shutdown()
	}
	for _, d := range downs {
		d.pc.Abort()
	}
	if started {
		p.wg.Wait()
	}
	p.checker.Close()
	p.detector.Close()
	p.mu.Lock()
	backends := p.backends
	p.backends = map[string]*backend{}
	p.mu.Unlock()
	for _, b := range backends {
		b.close()
	}
	err := p.src.Close()
	close(p.done)
	return err
}

func (p *Proxy) now() int64 { return p.cfg.Clock.Now().UnixNano() }

// kick asks the control goroutine to rebuild the picker.
func (p *Proxy) kick() { p.ctl.Kick() }

// logBad logs a client's protocol error, once per event.
func (p *Proxy) logBad(d *downstream, pe *protocol.Error) {
	p.cfg.Logger.Warn().Str("client", d.pc.RemoteAddr().String()).Stringer("code", pe.Code).
		Str("error", pe.Message).Msg("bad frame from client")
}
