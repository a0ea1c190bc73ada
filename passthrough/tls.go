package passthrough

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/tlsfiles"
)

// initTLS loads the client listeners' certificate and the backends'
// trust (Config.TLS, Config.BackendTLS).
func (p *Proxy) initTLS() error {
	if err := p.cfg.TLS.Validate(); err != nil {
		return err
	}
	if err := p.cfg.BackendTLS.Validate(); err != nil {
		return fmt.Errorf("backend_%w", err)
	}
	if p.cfg.TLS.Enabled() {
		s, err := tlsfiles.NewServer(p.cfg.TLS, nil, p.cfg.Logger)
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

// backendConn wraps c, dialed to a backend at addr, in TLS when the proxy
// has backend TLS or the backend's address says TLS (addrTLS), and
// completes the handshake within the dial timeout.
func (p *Proxy) backendConn(c net.Conn, addrTLS bool, addr string) (net.Conn, error) {
	if p.backendTLS == nil && !addrTLS {
		return c, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := tls.Client(c, tlsfiles.ForHost(p.backendTLS, host))
	_ = tc.SetDeadline(time.Now().Add(p.cfg.DialTimeout))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}
