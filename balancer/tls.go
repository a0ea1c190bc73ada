package balancer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/tlsfiles"
)

// initTLS loads the client listeners' certificate and the gateways'
// trust (Config.TLS, Config.BackendTLS).
func (p *Proxy) initTLS() error {
	if p.cfg.TLS.Enabled() {
		s, err := tlsfiles.NewServer(p.cfg.TLS, p.cfg.Clock.Now, p.cfg.Logger)
		if err != nil {
			return err
		}
		p.tls = s
	}
	if p.cfg.BackendTLS.Enabled() {
		conf, err := p.cfg.BackendTLS.Client()
		if err != nil {
			return fmt.Errorf("backend %w", err)
		}
		p.backendTLS = conf
	}
	return nil
}

// listenerTLS is the client listeners' TLS, nil when off.
func (p *Proxy) listenerTLS() *listener.TLS {
	if p.tls == nil {
		return nil
	}
	return &listener.TLS{Config: p.tls.Config(), Log: p.cfg.Logger}
}

// ReloadTLS loads the client listeners' certificate and key files again
// now (they are also reloaded on the first handshake a second after they
// change). On error the old pair stays in use. Without TLS it does
// nothing.
func (p *Proxy) ReloadTLS() error {
	if p.tls == nil {
		return nil
	}
	return p.tls.Reload()
}

// upstreamTLS wraps nc, a connection dialed to a gateway at addr, in TLS
// when the proxy has backend TLS or the gateway's address says TLS
// (addrTLS), and completes the handshake within ctx; otherwise it
// returns nc.
func (p *Proxy) upstreamTLS(ctx context.Context, nc net.Conn, addrTLS bool, addr string) (net.Conn, error) {
	if p.backendTLS == nil && !addrTLS {
		return nc, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := tls.Client(nc, tlsfiles.ForHost(p.backendTLS, host))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}
