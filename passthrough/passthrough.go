package passthrough

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/rs/zerolog"
)

// Config configures pass-through mode. Zero fields take their defaults.
type Config struct {
	// TCP forwards raw TCP connections to the members' TCP addresses,
	// choosing by client address. Empty: off.
	TCP string `json:"tcp" yaml:"tcp"`
	// WS accepts HTTP connections (WebSocket upgrades on /ws and anything
	// else) and forwards each whole connection, upgrade headers untouched,
	// to the members' WS addresses. Empty: off.
	WS string `json:"ws" yaml:"ws"`
	// Key chooses the backend of a WebSocket connection: query:NAME,
	// header:NAME, cookie:NAME or addr (default addr); a missing key falls
	// back to the client address.
	Key affinity.KeySource `json:"key" yaml:"key"`
	// DialTimeout bounds a dial to a backend (default 2s), and Start's wait
	// for the first membership snapshot.
	DialTimeout time.Duration `json:"dial_timeout" yaml:"dial_timeout"`
	// HeadTimeout bounds reading the HTTP request head, and a PROXY
	// protocol header (default 10s).
	HeadTimeout time.Duration `json:"head_timeout" yaml:"head_timeout"`
	// IdleTimeout closes a connection with no traffic either way for this
	// long (default 1h: Hypertube sessions are long-lived and quiet).
	IdleTimeout time.Duration `json:"idle_timeout" yaml:"idle_timeout"`
	// MaxConns caps client connections (default 10000).
	MaxConns int `json:"max_conns" yaml:"max_conns"`
	// MaxConnsPerSource caps the client connections from one source
	// address, an IPv4 address or an IPv6 /64 (default 1000; negative: no
	// cap). Connections over either cap are closed at once: this mode
	// does not speak the protocol, so it cannot say why.
	MaxConnsPerSource int `json:"max_conns_per_source" yaml:"max_conns_per_source"`
	// Check configures the liveness checks: GET /status on each member's
	// HTTP address (a TCP connect to its data address when it has none);
	// health package defaults (every 1s, down after 3 failures, up after 2
	// passes).
	Check health.CheckerConfig `json:"check" yaml:"check"`
	// ProxyProtocol reads the client's address from a PROXY protocol
	// header (off by default), so that the addr key sees the client behind
	// a balancer or NAT rather than the balancer.
	ProxyProtocol listener.ProxyProtocol `json:"proxy_protocol" yaml:"proxy_protocol"`
	// TLS terminates TLS on the client listeners (TCP, and WS as wss://)
	// with a certificate and key reloaded when their files change; with
	// TLS.ClientCA, clients must present a certificate from it. The
	// connection is forwarded decrypted, or re-encrypted as BackendTLS
	// says. Under the PROXY protocol the header comes first. Off by
	// default.
	TLS tlsfiles.ServerFiles `json:"tls" yaml:"tls"`
	// BackendTLS, when it names any file, makes every backend connection
	// TLS, trusting BackendTLS.CA (default SSL_CERT_FILE or the system
	// roots) and presenting BackendTLS.Cert to backends that ask. Without
	// it, only backends whose address says TLS (tls:// and wss:// entries)
	// are dialed with TLS. The liveness checks stay plain HTTP.
	BackendTLS tlsfiles.ClientFiles `json:"backend_tls" yaml:"backend_tls"`
	// Logger receives logs (default: none).
	Logger *zerolog.Logger `json:"-" yaml:"-"`
}

// Defaults of Config.
const (
	DefaultDialTimeout       = 2 * time.Second
	DefaultHeadTimeout       = 10 * time.Second
	DefaultIdleTimeout       = time.Hour
	DefaultMaxConns          = listener.DefaultMaxConns
	DefaultMaxConnsPerSource = listener.DefaultMaxConnsPerSource
)

const (
	maxRequestHead = 16 << 10 // a longer head is answered 431
	copyBuffer     = 32 << 10 // per direction of a forwarded connection
	// maxRedispatch bounds the backends one connection tries when dials
	// fail (HAProxy's "option redispatch" with retries).
	maxRedispatch = 3
)

// DefaultConfig returns a Config with every default filled in and both
// listeners on loopback with ports chosen by the system.
func DefaultConfig() Config {
	return Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0"}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HeadTimeout <= 0 {
		c.HeadTimeout = DefaultHeadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerSource == 0 {
		c.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	c.Check = c.Check.WithDefaults()
	c.ProxyProtocol = c.ProxyProtocol.WithDefaults()
	if c.Logger == nil {
		nop := zerolog.Nop()
		c.Logger = &nop
	}
	return c
}

// Errors Ready returns.
var (
	ErrNotStarted = errors.New("passthrough: not started")
	ErrNoBackend  = errors.New("passthrough: no live backend")
)

// Proxy forwards whole TCP and WebSocket connections to a pool.
type Proxy struct {
	// Immutable after New.
	cfg       Config
	src       discovery.Source
	checker   *health.Checker
	admission *listener.Admission
	stop      chan struct{}
	ctl       *discovery.Control // the control loop: snapshots and liveness changes
	warm      chan struct{}      // closed once the first snapshot is applied
	tls       tlsfiles.Sides     // the client listeners' certificate and the backends' trust

	wg   sync.WaitGroup // the control loop, accept loops and connections
	snap atomic.Pointer[snapshot]
	// perBackend maps a backend name to its open forwarded connections
	// (*atomic.Int64).
	perBackend sync.Map

	// mu guards what follows.
	mu      sync.Mutex
	lns     *listener.Pair        // nil until Start binds them
	open    map[net.Conn]struct{} // client and backend connections, closed by Close
	members map[string]discovery.Member
	started bool
	closed  bool
}

// snapshot is the immutable routing view: the members, their Maglev
// table and which of them are alive.
type snapshot struct {
	members []discovery.Member // sorted by name; index = table member
	table   *affinity.Table    // nil for an empty pool
	alive   []bool
}

// New returns a pass-through proxy for the pool src describes; it owns
// src and closes it on Close.
func New(cfg Config, src discovery.Source) (*Proxy, error) {
	cfg = cfg.withDefaults()
	if cfg.TCP == "" && cfg.WS == "" {
		return nil, errors.New("passthrough: no listener (tcp and ws are both empty)")
	}
	if err := cfg.Key.Validate(); err != nil {
		return nil, fmt.Errorf("passthrough: %w", err)
	}
	if err := cfg.ProxyProtocol.Validate(); err != nil {
		return nil, fmt.Errorf("passthrough: %w", err)
	}
	p := &Proxy{cfg: cfg, src: src, stop: make(chan struct{}), ctl: discovery.NewControl(), warm: make(chan struct{}),
		admission: listener.NewAdmission(cfg.MaxConns, cfg.MaxConnsPerSource, cfg.Logger, nil),
		open:      make(map[net.Conn]struct{}), members: make(map[string]discovery.Member)}
	cc := cfg.Check
	cc.OnTransition = func(t health.Transition) {
		ev := p.cfg.Logger.Info()
		if t.To == health.Down {
			ev = p.cfg.Logger.Warn().AnErr("cause", t.Err)
		}
		ev.Str("backend", t.Target).Stringer("state", t.To).Msg("pass-through backend liveness changed")
		p.ctl.Kick()
	}
	ch, err := health.NewChecker(cc)
	if err != nil {
		return nil, fmt.Errorf("passthrough: %w", err)
	}
	p.checker = ch
	if p.tls, err = tlsfiles.LoadSides(cfg.TLS, cfg.BackendTLS, nil, cfg.Logger); err != nil {
		return nil, fmt.Errorf("passthrough: %w", err)
	}
	p.snap.Store(&snapshot{})
	return p, nil
}

// Start applies the first membership snapshot (waiting up to DialTimeout
// for it), then binds the listeners and starts checking the backends.
func (p *Proxy) Start() error {
	p.mu.Lock()
	if p.started || p.closed {
		p.mu.Unlock()
		return errors.New("passthrough: already started")
	}
	p.started = true
	p.checker.Start()
	p.wg.Add(1)
	go p.control()
	p.mu.Unlock()
	select {
	case <-p.warm:
	case <-time.After(p.cfg.DialTimeout):
		p.cfg.Logger.Warn().Msg("pass-through: no pool yet; serving anyway")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lns, err := listener.Bind(p.cfg.TCP, p.cfg.WS, p.cfg.ProxyProtocol, p.cfg.HeadTimeout, p.listenerTLS())
	if err != nil {
		return fmt.Errorf("passthrough: %w", err)
	}
	p.lns = lns
	if ln := lns.TCP(); ln != nil {
		p.wg.Add(1)
		go p.accept(ln, p.serveTCP)
	}
	if ln := lns.WS(); ln != nil {
		p.wg.Add(1)
		go p.accept(ln, p.serveWS)
	}
	return nil
}

// Addrs returns the bound addresses (after Start).
func (p *Proxy) Addrs() listener.Addrs {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lns.Addrs()
}

// Ready reports whether the proxy has a live backend.
func (p *Proxy) Ready() error {
	p.mu.Lock()
	started, closed := p.started, p.closed
	p.mu.Unlock()
	if !started || closed {
		return ErrNotStarted
	}
	if !slices.Contains(p.snap.Load().alive, true) {
		return ErrNoBackend
	}
	return nil
}

// Close stops listening, closes every forwarded connection and waits.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.lns.Close()
	for c := range p.open {
		_ = c.Close()
	}
	p.mu.Unlock()
	close(p.stop)
	p.checker.Close()
	p.wg.Wait()
	return p.src.Close()
}

// control applies membership snapshots and liveness changes.
func (p *Proxy) control() {
	defer p.wg.Done()
	p.ctl.Run(p.src, p.stop, discovery.Handlers{Rebuild: p.rebuild, Apply: func(snap discovery.Snapshot) {
		p.apply(snap)
		select {
		case <-p.warm:
		default:
			close(p.warm)
		}
	}})
}

// apply reconciles the checked members with a membership snapshot.
func (p *Proxy) apply(snap discovery.Snapshot) {
	want := map[string]discovery.Member{}
	for _, m := range snap.Gateways() {
		want[m.Name] = m
	}
	p.mu.Lock()
	old := p.members
	p.members = want
	p.mu.Unlock()
	for name := range old {
		if _, ok := want[name]; !ok {
			p.checker.Remove(name)
		}
	}
	for name, m := range want {
		if o, ok := old[name]; !ok || !o.Equal(m) {
			if ok {
				p.checker.Remove(name)
			}
			_ = p.checker.Add(name, probe(m))
		}
	}
	p.rebuild()
}

// probe checks a member's liveness the way GG offers it: GET /status on its
// HTTP listener, 200 meaning alive; without one, a TCP connect.
func probe(m discovery.Member) health.Probe {
	if m.Addrs.HTTP == "" {
		addr := cmp.Or(m.Addrs.WS, m.Addrs.TCP)
		return func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err
		}
	}
	url := "http://" + m.Addrs.HTTP + "/status"
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// rebuild publishes a new snapshot from the members and their liveness.
func (p *Proxy) rebuild() {
	p.mu.Lock()
	ms := make([]discovery.Member, 0, len(p.members))
	for _, m := range p.members {
		ms = append(ms, m)
	}
	p.mu.Unlock()
	slices.SortFunc(ms, func(a, b discovery.Member) int { return cmp.Compare(a.Name, b.Name) })
	s := &snapshot{members: ms, alive: make([]bool, len(ms))}
	am := make([]affinity.Member, len(ms))
	for i, m := range ms {
		am[i] = affinity.Member{Name: m.Name, Weight: m.Weight}
		st, ok := p.checker.State(m.Name)
		s.alive[i] = ok && st == health.Up
	}
	if len(ms) > 0 {
		t, err := affinity.NewTable(am)
		if err != nil {
			p.cfg.Logger.Error().Err(err).Msg("pass-through: cannot build the table; keeping the previous one")
			return
		}
		s.table = t
	}
	p.snap.Store(s)
}

// dial connects to the first live member in key's preference list that has
// the needed listener, moving down the list when a dial fails (the backend
// died before the checks noticed). It returns the connection, or ok false.
func (p *Proxy) dial(key []byte, ws bool) (conn net.Conn, ok bool) {
	s := p.snap.Load()
	if s.table == nil {
		return nil, false
	}
	var buf [16]int
	tries := 0
	for _, i := range s.table.Preference(affinity.HashKey(key), buf[:0]) {
		m := s.members[i]
		addr := m.Addrs.TCP
		if ws {
			addr = m.Addrs.WS
		}
		if !s.alive[i] || addr == "" {
			continue
		}
		c, err := p.dialBackend(addr, m.Addrs.TLS)
		if err == nil {
			return &countedConn{Conn: c, n: p.forwarded(m.Name)}, true
		}
		p.cfg.Logger.Warn().Err(err).Str("backend", m.Name).Msg("pass-through: dial failed; trying the next backend")
		if tries++; tries == maxRedispatch {
			break
		}
	}
	return nil, false
}

// accept admits the connections of ln and serves each on its own
// goroutine. A refused connection is closed at once: this mode does not
// speak the protocol, so it cannot say why (the admission logs it).
func (p *Proxy) accept(ln net.Listener, serve func(net.Conn)) {
	defer p.wg.Done()
	listener.Serve(ln, p.stop, p.cfg.Logger, func(c net.Conn) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// Admission reads the client's address, which under the PROXY
			// protocol waits for its header, and a TLS handshake waits for
			// the client: on this goroutine, not the accept loop's.
			if err := listener.HandshakeWithin(c, p.cfg.HeadTimeout); err != nil {
				_ = c.Close()
				return
			}
			if !p.admit(c) {
				_ = c.Close()
				return
			}
			defer p.release(c)
			serve(c)
		}()
	})
}

// admit counts a client connection in, unless the proxy is closing or
// full, or the connection's source has too many.
func (p *Proxy) admit(c net.Conn) bool {
	if _, ok := p.admission.Admit(c.RemoteAddr()); !ok {
		return false
	}
	if !p.track(c) {
		p.admission.Release(c.RemoteAddr())
		return false
	}
	return true
}

// release closes and forgets a client connection that admit admitted.
func (p *Proxy) release(c net.Conn) {
	p.untrack(c)
	p.admission.Release(c.RemoteAddr())
}

// track records a connection for Close to close, unless the proxy is
// closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[c] = struct{}{}
	return true
}

// untrack closes and forgets a connection.
func (p *Proxy) untrack(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

// dialBackend connects to a backend at addr, with TLS when the proxy has
// backend TLS or addrTLS says so, within DialTimeout.
func (p *Proxy) dialBackend(addr string, addrTLS bool) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return p.tls.Dial(ctx, c, addrTLS, addr)
}
