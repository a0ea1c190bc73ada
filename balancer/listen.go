package balancer

import (
	"fmt"
	"net"
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

func (pp ProxyProtocol) withDefaults() ProxyProtocol {
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

// listen binds a client listener at addr; with the PROXY protocol on, the
// accepted connections' RemoteAddr is the client's, read from the header
// within headerTimeout (on first Read or RemoteAddr, on the connection's
// own goroutine: a slow header never stalls the accept loop).
func listen(addr string, pp ProxyProtocol, headerTimeout time.Duration) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || !pp.Enabled {
		return ln, err
	}
	policy, err := proxyproto.PolicyFromRanges(pp.From, proxyproto.REQUIRE, proxyproto.REJECT)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return &proxyproto.Listener{Listener: ln, ConnPolicy: policy, ReadHeaderTimeout: headerTimeout}, nil
}

// noDelay turns Nagle's algorithm off on a TCP connection, also under a
// PROXY protocol wrapper.
func noDelay(nc net.Conn) {
	if pc, ok := nc.(*proxyproto.Conn); ok {
		nc = pc.Raw()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}
