package listener

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// ProxyProtocol configures the PROXY protocol (HAProxy's, versions 1 and
// 2) on the client listeners: a balancer in front (HAProxy `send-proxy`,
// nginx `proxy_protocol on`, an AWS NLB) prefixes each connection with the
// client's address, so that pass-through's addr key, the limits per source
// address and the logs see the client rather than the balancer.
type ProxyProtocol struct {
	// Enabled requires the header on every connection from From; a
	// connection without one is closed.
	Enabled bool `json:"enabled" yaml:"enabled"`
	// From lists the CIDRs allowed to send the header (default loopback:
	// 127.0.0.0/8 and ::1/128). A connection from anywhere else is refused:
	// it could forge any client address.
	From []string `json:"from,omitempty" yaml:"from,omitempty"`
}

// WithDefaults returns pp with From defaulted when the protocol is on.
func (pp ProxyProtocol) WithDefaults() ProxyProtocol {
	if pp.Enabled && len(pp.From) == 0 {
		pp.From = []string{"127.0.0.0/8", "::1/128"}
	}
	return pp
}

// Validate reports a CIDR that does not parse.
func (pp ProxyProtocol) Validate() error {
	for _, c := range pp.From {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("proxy_protocol.from: %w", err)
		}
	}
	return nil
}

// Listen binds a client listener at addr; with the PROXY protocol on, the
// accepted connections' RemoteAddr is the client's, read from the header
// within headerTimeout (on first Read or RemoteAddr, on the connection's
// own goroutine: a slow header never stalls the accept loop). With t, the
// connections speak TLS after the header (WithTLS).
func Listen(addr string, pp ProxyProtocol, headerTimeout time.Duration, t *TLS) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if !pp.Enabled {
		return WithTLS(ln, t), nil
	}
	policy, err := proxyproto.PolicyFromRanges(pp.From, proxyproto.REQUIRE, proxyproto.REJECT)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return WithTLS(&proxyproto.Listener{Listener: ln, ConnPolicy: policy, ReadHeaderTimeout: headerTimeout}, t), nil
}

// NoDelay turns Nagle's algorithm off on a TCP connection, also under a
// TLS or PROXY protocol wrapper.
func NoDelay(nc net.Conn) {
	if tc, ok := nc.(*TLSConn); ok {
		nc = tc.NetConn()
	}
	if pc, ok := nc.(*proxyproto.Conn); ok {
		nc = pc.Raw()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

// Addrs are a server's bound client listener addresses.
type Addrs struct {
	TCP string `json:"tcp,omitempty"`
	WS  string `json:"ws,omitempty"`
}

// Pair is a server's two client listeners, TCP and WebSocket, either of
// which may be off. Its methods are safe for concurrent use, and on a nil
// *Pair (a server not started): Addrs is empty and Close does nothing.
type Pair struct {
	tcp, ws net.Listener // immutable after Bind; nil when off

	mu     sync.Mutex
	closed bool
}

// Bind binds the listeners at tcp and ws (an empty address leaves one
// off), each as Listen does. On error nothing stays bound.
func Bind(tcp, ws string, pp ProxyProtocol, headerTimeout time.Duration, t *TLS) (*Pair, error) {
	p := &Pair{}
	for _, l := range []struct {
		kind, addr string
		ln         *net.Listener
	}{{"tcp", tcp, &p.tcp}, {"ws", ws, &p.ws}} {
		if l.addr == "" {
			continue
		}
		ln, err := Listen(l.addr, pp, headerTimeout, t)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("listen %s %s: %w", l.kind, l.addr, err)
		}
		*l.ln = ln
	}
	if p.tcp == nil && p.ws == nil {
		return nil, errors.New("listen: no listener (tcp and ws are both empty)")
	}
	return p, nil
}

// TCP returns the TCP listener, or nil when it is off.
func (p *Pair) TCP() net.Listener { return p.tcp }

// WS returns the WebSocket listener, or nil when it is off.
func (p *Pair) WS() net.Listener { return p.ws }

// Addrs returns the bound addresses.
func (p *Pair) Addrs() Addrs {
	var a Addrs
	if p == nil {
		return a
	}
	if p.tcp != nil {
		a.TCP = p.tcp.Addr().String()
	}
	if p.ws != nil {
		a.WS = p.ws.Addr().String()
	}
	return a
}

// Close closes both listeners (once): new connections are refused, and
// Serve loops on them return.
func (p *Pair) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, ln := range []net.Listener{p.tcp, p.ws} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
