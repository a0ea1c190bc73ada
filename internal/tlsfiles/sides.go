package tlsfiles

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// Sides are a proxy's TLS: the front, its client listeners' reloading
// certificate (nil: plain), and the back, its client configuration for
// the servers behind it (nil: TLS only to those whose address says so,
// trusting SSL_CERT_FILE or the system roots).
type Sides struct {
	Front *Server
	Back  *tls.Config
}

// LoadSides loads the files of both sides; either may have none. now and
// log are NewServer's.
func LoadSides(front ServerFiles, back ClientFiles, now func() time.Time, log *zerolog.Logger) (Sides, error) {
	var s Sides
	if err := front.Validate(); err != nil {
		return s, err
	}
	if err := back.Validate(); err != nil {
		return s, fmt.Errorf("backend_%w", err)
	}
	if front.Enabled() {
		srv, err := NewServer(front, now, log)
		if err != nil {
			return s, err
		}
		s.Front = srv
	}
	if back.Enabled() {
		conf, err := back.Client()
		if err != nil {
			return s, fmt.Errorf("backend %w", err)
		}
		s.Back = conf
	}
	return s, nil
}

// FrontConfig is the front's server configuration, nil when plain.
func (s Sides) FrontConfig() *tls.Config {
	if s.Front == nil {
		return nil
	}
	return s.Front.Config()
}

// Reload loads the front's certificate and key again (Server.Reload);
// with a plain front it does nothing.
func (s Sides) Reload() error {
	if s.Front == nil {
		return nil
	}
	return s.Front.Reload()
}

// Dial wraps nc, a connection dialed to a server at addr (host:port), in
// TLS when the back has a configuration or the server's address says TLS
// (addrTLS), and completes the handshake within ctx, checking the
// certificate against addr's host; otherwise it returns nc. On error nc
// is closed.
func (s Sides) Dial(ctx context.Context, nc net.Conn, addrTLS bool, addr string) (net.Conn, error) {
	if s.Back == nil && !addrTLS {
		return nc, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := tls.Client(nc, ForHost(s.Back, host))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}
