package listener

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// TLS turns TLS on for a server's client listeners. Under the PROXY
// protocol the header is read first, in the clear, and the handshake
// follows (as HAProxy sends it: the header, then the client's bytes).
type TLS struct {
	// Config is the server configuration of every handshake (typically
	// tlsfiles.Server.Config, which reloads the certificate).
	Config *tls.Config
	// Log gets failed handshakes at warn level, at most one line per
	// RefusalLogInterval, which counts the failures it did not log.
	Log *zerolog.Logger
}

// WithTLS wraps ln so that its connections speak TLS under t (nil t: ln
// itself). Accept returns at once: the handshake runs on the connection's
// own goroutine, at its first Read or Write or at Handshake (which
// fasthttp calls within its read timeout, and the TCP servers call with
// HandshakeWithin), so a slow or silent client never stalls the accept
// loop or any other client.
func WithTLS(ln net.Listener, t *TLS) net.Listener {
	if t == nil || t.Config == nil {
		return ln
	}
	log := t.Log
	if log == nil {
		nop := zerolog.Nop()
		log = &nop
	}
	return &tlsListener{Listener: ln, conf: t.Config, log: log}
}

type tlsListener struct {
	net.Listener
	conf  *tls.Config
	log   *zerolog.Logger
	fails refusalLog // shared by the listener's connections
}

func (l *tlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &TLSConn{Conn: tls.Server(nc, l.conf), ln: l}, nil
}

// TLSConn is a connection accepted by a listener with TLS on. Its
// Handshake logs a failure (rate-limited per listener).
type TLSConn struct {
	*tls.Conn
	ln *tlsListener
}

// Handshake runs the TLS handshake (once; later calls return its result)
// and logs a failure.
func (c *TLSConn) Handshake() error {
	err := c.Conn.Handshake()
	if err != nil {
		if ok, suppressed := c.ln.fails.allow(time.Now().UnixNano()); ok {
			c.ln.log.Warn().Str("client", c.RemoteAddr().String()).Err(err).
				Int64("suppressed", suppressed).Msg("TLS handshake failed")
		}
	}
	return err
}

// HandshakeWithin completes the TLS handshake of nc, a connection from a
// listener with TLS on, within timeout (and logs a failure); for any
// other connection it does nothing. The connection's deadlines are clear
// afterwards.
func HandshakeWithin(nc net.Conn, timeout time.Duration) error {
	tc, ok := nc.(*TLSConn)
	if !ok {
		return nil
	}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	err := tc.Handshake()
	_ = tc.SetDeadline(time.Time{})
	return err
}
