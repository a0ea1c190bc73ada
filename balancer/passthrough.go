package balancer

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
	"github.com/rs/zerolog"
)

// PassthroughConfig configures pass-through mode: whole connections to
// gateways that do not speak graftlb's protocol (real Graftcode Gateways),
// with connection-level affinity. Zero fields take their defaults.
type PassthroughConfig struct {
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
	// DialTimeout bounds a dial to a backend (default 2s).
	DialTimeout time.Duration `json:"dial_timeout" yaml:"dial_timeout"`
	// HeadTimeout bounds reading the HTTP request head (default 10s).
	HeadTimeout time.Duration `json:"head_timeout" yaml:"head_timeout"`
	// IdleTimeout closes a connection with no traffic either way for this
	// long (default 1h: Hypertube sessions are long-lived and quiet).
	IdleTimeout time.Duration `json:"idle_timeout" yaml:"idle_timeout"`
	// MaxConns caps client connections (default 10000).
	MaxConns int `json:"max_conns" yaml:"max_conns"`
	// MaxConnsPerSource caps the client connections from one source
	// address, as Config.MaxConnsPerSource does (default 1000; negative:
	// no cap). Connections over either cap are closed at once: this mode
	// does not speak the protocol, so it cannot say why.
	MaxConnsPerSource int `json:"max_conns_per_source" yaml:"max_conns_per_source"`
	// Check configures the liveness checks: GET /status on each member's
	// HTTP address (a TCP connect to its data address when it has none).
	Check health.CheckerConfig `json:"check" yaml:"check"`
	// ProxyProtocol reads the client's address from a PROXY protocol
	// header (off by default), so that the addr key sees the client behind
	// a balancer or NAT rather than the balancer.
	ProxyProtocol ProxyProtocol `json:"proxy_protocol" yaml:"proxy_protocol"`
	// Logger receives logs (default: none).
	Logger *zerolog.Logger `json:"-" yaml:"-"`
}

const (
	defaultHeadTimeout    = 10 * time.Second
	defaultPassIdle       = time.Hour
	maxRequestHead        = 16 << 10
	passthroughCopyBuffer = 32 << 10
)

func (c PassthroughConfig) withDefaults() PassthroughConfig {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HeadTimeout <= 0 {
		c.HeadTimeout = defaultHeadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = defaultPassIdle
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerSource == 0 {
		c.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	c.Check = c.Check.WithDefaults()
	c.ProxyProtocol = c.ProxyProtocol.withDefaults()
	if c.Logger == nil {
		nop := zerolog.Nop()
		c.Logger = &nop
	}
	return c
}

// Passthrough forwards whole TCP and WebSocket connections to a pool,
// choosing the backend of each connection by consistent hash of its key,
// among the backends whose liveness check passes.
type Passthrough struct {
	cfg     PassthroughConfig
	src     discovery.Source
	checker *health.Checker
	stop    chan struct{}
	kick    chan struct{}
	warm    chan struct{} // closed once the first snapshot is applied
	wg      sync.WaitGroup
	snap    atomic.Pointer[passPicker]
	// perBackend maps a backend name to its open forwarded connections
	// (*atomic.Int64).
	perBackend sync.Map
	refused    refusalLog // rate-limits the logs of refused connections

	mu      sync.Mutex
	tcpLn   net.Listener
	wsLn    net.Listener
	open    map[net.Conn]struct{} // client and backend connections, closed by Close
	clients int                   // the client connections in open
	sources *sourceConns          // the client connections by source address
	members map[string]discovery.Member
	closed  bool
}

// passPicker is the immutable routing view of pass-through mode.
type passPicker struct {
	members []discovery.Member // sorted by name; index = table member
	table   *affinity.Table
	alive   []bool
}

// NewPassthrough returns a pass-through proxy for the pool src describes;
// it owns src and closes it on Close.
func NewPassthrough(cfg PassthroughConfig, src discovery.Source) (*Passthrough, error) {
	cfg = cfg.withDefaults()
	if cfg.TCP == "" && cfg.WS == "" {
		return nil, errors.New("balancer: passthrough: no listener")
	}
	if err := cfg.Key.Validate(); err != nil {
		return nil, fmt.Errorf("balancer: passthrough: %w", err)
	}
	if err := cfg.ProxyProtocol.Validate(); err != nil {
		return nil, fmt.Errorf("balancer: passthrough: %w", err)
	}
	p := &Passthrough{cfg: cfg, src: src, stop: make(chan struct{}), kick: make(chan struct{}, 1), warm: make(chan struct{}),
		open: make(map[net.Conn]struct{}), sources: newSourceConns(cfg.MaxConnsPerSource),
		members: make(map[string]discovery.Member)}
	cc := cfg.Check
	cc.OnTransition = func(t health.Transition) {
		ev := p.cfg.Logger.Info()
		if t.To == health.Down {
			ev = p.cfg.Logger.Warn().AnErr("cause", t.Err)
		}
		ev.Str("backend", t.Target).Stringer("state", t.To).Msg("pass-through backend liveness changed")
		p.rebuildSoon()
	}
	ch, err := health.NewChecker(cc)
	if err != nil {
		return nil, fmt.Errorf("balancer: passthrough: %w", err)
	}
	p.checker = ch
	p.snap.Store(&passPicker{})
	return p, nil
}

// Start applies the first membership snapshot (waiting up to DialTimeout
// for it), then binds the listeners and starts checking the backends.
func (p *Passthrough) Start() error {
	p.checker.Start()
	p.wg.Add(1)
	go p.control()
	select {
	case <-p.warm:
	case <-time.After(p.cfg.DialTimeout):
		p.cfg.Logger.Warn().Msg("pass-through: no pool yet; serving anyway")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	listen := func(addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		return listen(addr, p.cfg.ProxyProtocol, p.cfg.HeadTimeout)
	}
	var err error
	if p.tcpLn, err = listen(p.cfg.TCP); err != nil {
		return fmt.Errorf("balancer: passthrough: listen %s: %w", p.cfg.TCP, err)
	}
	if p.wsLn, err = listen(p.cfg.WS); err != nil {
		if p.tcpLn != nil {
			_ = p.tcpLn.Close()
		}
		return fmt.Errorf("balancer: passthrough: listen %s: %w", p.cfg.WS, err)
	}
	if p.tcpLn != nil {
		p.wg.Add(1)
		go p.accept(p.tcpLn, false)
	}
	if p.wsLn != nil {
		p.wg.Add(1)
		go p.accept(p.wsLn, true)
	}
	return nil
}

// Addrs returns the bound addresses.
func (p *Passthrough) Addrs() Addrs {
	p.mu.Lock()
	defer p.mu.Unlock()
	var a Addrs
	if p.tcpLn != nil {
		a.TCP = p.tcpLn.Addr().String()
	}
	if p.wsLn != nil {
		a.WS = p.wsLn.Addr().String()
	}
	return a
}

// Close stops listening, closes every forwarded connection and waits.
func (p *Passthrough) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, ln := range []net.Listener{p.tcpLn, p.wsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	for c := range p.open {
		_ = c.Close()
	}
	p.mu.Unlock()
	close(p.stop)
	p.checker.Close()
	p.wg.Wait()
	return p.src.Close()
}

func (p *Passthrough) rebuildSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// control applies membership snapshots and liveness changes.
func (p *Passthrough) control() {
	defer p.wg.Done()
	updates := p.src.Updates()
	for {
		select {
		case <-p.stop:
			return
		case snap, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			p.apply(snap)
			select {
			case <-p.warm:
			default:
				close(p.warm)
			}
		case <-p.kick:
			p.rebuild()
		}
	}
}

func (p *Passthrough) apply(snap discovery.Snapshot) {
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
			_ = p.checker.Add(name, p.probe(m))
		}
	}
	p.rebuild()
}

// probe checks a member's liveness the way GG offers it: GET /status on its
// HTTP listener, 200 meaning alive; without one, a TCP connect.
func (p *Passthrough) probe(m discovery.Member) health.Probe {
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

func (p *Passthrough) rebuild() {
	p.mu.Lock()
	ms := make([]discovery.Member, 0, len(p.members))
	for _, m := range p.members {
		ms = append(ms, m)
	}
	p.mu.Unlock()
	slices.SortFunc(ms, func(a, b discovery.Member) int { return cmp.Compare(a.Name, b.Name) })
	pk := &passPicker{members: ms, alive: make([]bool, len(ms))}
	am := make([]affinity.Member, len(ms))
	for i, m := range ms {
		am[i] = affinity.Member{Name: m.Name, Weight: m.Weight}
		st, ok := p.checker.State(m.Name)
		pk.alive[i] = ok && st == health.Up
	}
	if len(ms) > 0 {
		t, err := affinity.NewTable(am)
		if err != nil {
			p.cfg.Logger.Error().Err(err).Msg("pass-through: cannot build the table")
			return
		}
		pk.table = t
	}
	p.snap.Store(pk)
}

// maxRedispatch bounds the backends one connection tries when dials fail
// (HAProxy's "option redispatch" with retries).
const maxRedispatch = 3

// dial connects to the first live member in key's preference list that has
// the needed listener, moving down the list when a dial fails (the backend
// died before the checks noticed). It returns the backend's name and the
// connection, or ok false.
func (p *Passthrough) dial(key []byte, ws bool) (name string, conn net.Conn, ok bool) {
	pk := p.snap.Load()
	if pk.table == nil {
		return "", nil, false
	}
	var buf [16]int
	tries := 0
	for _, i := range pk.table.Preference(affinity.HashKey(key), buf[:0]) {
		m := pk.members[i]
		addr := m.Addrs.TCP
		if ws {
			addr = m.Addrs.WS
		}
		if !pk.alive[i] || addr == "" {
			continue
		}
		c, err := net.DialTimeout("tcp", addr, p.cfg.DialTimeout)
		if err == nil {
			return m.Name, &countedConn{Conn: c, n: p.forwarded(m.Name)}, true
		}
		p.cfg.Logger.Warn().Err(err).Str("backend", m.Name).Msg("pass-through: dial failed; trying the next backend")
		if tries++; tries == maxRedispatch {
			break
		}
	}
	return "", nil, false
}

func (p *Passthrough) accept(ln net.Listener, ws bool) {
	defer p.wg.Done()
	acceptLoop(ln, p.stop, p.cfg.Logger, func(c net.Conn) {
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrackClient(c)
			if ws {
				p.serveWS(c)
			} else {
				p.serveTCP(c)
			}
		}()
	})
}

// track admits a client connection unless the proxy is closing or full,
// or the connection's source has too many; refusals are logged at most
// once per refusalLogInterval.
func (p *Passthrough) track(c net.Conn) bool {
	p.mu.Lock()
	why := ""
	switch {
	case p.closed:
		p.mu.Unlock()
		return false
	case p.clients >= p.cfg.MaxConns:
		why = "connection limit reached"
	case !p.sources.acquire(c.RemoteAddr()):
		why = fmt.Sprintf("more than %d connections from one source", p.cfg.MaxConnsPerSource)
	default:
		p.open[c] = struct{}{}
		p.clients++
		p.mu.Unlock()
		return true
	}
	p.mu.Unlock()
	if ok, suppressed := p.refused.allow(time.Now().UnixNano()); ok {
		p.cfg.Logger.Warn().Str("client", c.RemoteAddr().String()).Str("reason", why).
			Int64("suppressed", suppressed).Msg("pass-through connection refused")
	}
	return false
}

// untrackClient closes and forgets a client connection that track
// admitted.
func (p *Passthrough) untrackClient(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.open, c)
	p.clients--
	p.sources.release(c.RemoteAddr())
	p.mu.Unlock()
}

// untrack closes and forgets a backend connection.
func (p *Passthrough) untrack(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}
