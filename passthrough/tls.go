package passthrough

import "github.com/graftlb/graftlb/internal/listener"

// listenerTLS is the client listeners' TLS, nil when off.
func (p *Proxy) listenerTLS() *listener.TLS {
	if conf := p.tls.FrontConfig(); conf != nil {
		return &listener.TLS{Config: conf, Log: p.cfg.Logger}
	}
	return nil
}

// ReloadTLS loads the client listeners' certificate and key files again
// now (they are also reloaded on the first handshake a second after they
// change). On error the old pair stays in use. Without TLS it does
// nothing.
func (p *Proxy) ReloadTLS() error { return p.tls.Reload() }
