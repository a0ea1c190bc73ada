// Package httpserver is what every graftlb HTTP listener does the same
// way on fasthttp (the WebSocket listeners of the proxy and the gateway,
// the gateway's HTTP endpoints, the admin API): timeouts and a cap on
// connections; an HTTP answer to a request fasthttp cannot take (431 for
// a header over the read buffer, 408 for one that does not arrive in
// time, 400 otherwise) that reaches the client instead of a reset; the
// checks of a WebSocket upgrade request that fasthttp/websocket leaves
// out; and which web pages may open WebSocket connections (Origins).
package httpserver

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/protocol"
	"github.com/valyala/fasthttp"
)

// Limits bound an HTTP listener. Zero fields take the defaults.
type Limits struct {
	// ReadTimeout bounds reading a request, header and body, from its
	// first byte (default 10s, as HAProxy's timeout http-request); a
	// connection that has not sent a whole request by then gets 408 and
	// is closed. It also bounds writing a response.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request
	// for this long (default 30s).
	IdleTimeout time.Duration
	// MaxConns caps the connections served at once (default 256); more get
	// 503 and are closed.
	MaxConns int
}

// Defaults of Limits.
const (
	DefaultReadTimeout = 10 * time.Second
	DefaultIdleTimeout = 30 * time.Second
	DefaultMaxConns    = 256
)

// WithDefaults fills the zero fields.
func (l Limits) WithDefaults() Limits {
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = DefaultReadTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// MaxHeader bounds a request's line and header, in bytes (fasthttp's read
// buffer); a larger one gets 431.
const MaxHeader = 4 << 10

// New returns a fasthttp server for h under l (with defaults filled in),
// answering requests it cannot take as ErrorHandler does. Serve it on a
// listener from Listen, so that those answers reach the client.
func New(name string, h fasthttp.RequestHandler, l Limits, log fasthttp.Logger) *fasthttp.Server {
	l = l.WithDefaults()
	return &fasthttp.Server{
		Name:            name,
		Handler:         h,
		ErrorHandler:    ErrorHandler,
		ReadBufferSize:  MaxHeader,
		ReadTimeout:     l.ReadTimeout,
		WriteTimeout:    l.ReadTimeout,
		IdleTimeout:     l.IdleTimeout,
		Concurrency:     l.MaxConns,
		NoDefaultDate:   true,
		CloseOnShutdown: true,
		Logger:          log,
	}
}

// NewUpgrading returns New's server for a WebSocket listener, whose handler
// hijacks each connection it upgrades and owns it from then on: fasthttp
// neither closes it nor reuses its buffers. The 4 KiB request reader goes
// back to fasthttp's pool once the upgrade request is read, when the client
// sent nothing after it (RFC 6455 has clients wait for the 101), and the
// upgraded connection then reads its socket directly; otherwise it would
// keep that reader, in front of the WebSocket library's own, for its life
// (4 KiB per idle connection). A client that does send early keeps it, and
// loses no byte.
func NewUpgrading(name string, h fasthttp.RequestHandler, l Limits, log fasthttp.Logger) *fasthttp.Server {
	s := New(name, h, l, log)
	s.KeepHijackedConns = true
	s.ReduceMemoryUsage = true
	return s
}

// ErrorHandler answers a request fasthttp could not read: 431 for a header
// larger than the read buffer, 408 when the request did not arrive within
// the read timeout, 400 for anything else. The connection closes after the
// answer, lingering (see Listen) so that the client reads it.
func ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		ctx.Error("request header too large", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("request not received in time", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("malformed request", fasthttp.StatusBadRequest)
	}
	Linger(ctx)
}

// Linger makes the connection of ctx close after the response, without
// losing it: instead of closing with the client's unread bytes still
// queued, which makes the kernel answer with a reset that can destroy the
// response in flight, the server half-closes, then reads and discards what
// the client still sends until it closes or lingerTime passes (nginx's
// lingering close). The connection must come from Listen.
func Linger(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	if c, ok := ctx.Conn().(interface{ lingerOnClose() }); ok {
		c.lingerOnClose()
	}
}

// lingerTime bounds a lingering close: how long the client may go on
// sending after the response.
const lingerTime = time.Second

// Listen wraps ln so that Linger works on its connections. Connections
// that are not marked close as usual. A TLS connection (one with
// Handshake and ConnectionState, as listener.WithTLS makes) stays one to
// fasthttp, which runs its handshake within the read timeout.
func Listen(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(tlsConn); ok {
		return &tlsLingerConn{conn: conn{Conn: c}, tls: tc}, nil
	}
	return &conn{Conn: c}, nil
}

// conn is an accepted connection that may linger on Close.
type conn struct {
	net.Conn
	linger atomic.Bool
}

func (c *conn) lingerOnClose() { c.linger.Store(true) }

// NetConn returns the connection beneath (the TLS connection, under TLS).
func (c *conn) NetConn() net.Conn { return c.Conn }

// tlsConn is what fasthttp looks for to run a TLS handshake.
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// tlsLingerConn is a conn over TLS.
type tlsLingerConn struct {
	conn
	tls tlsConn
}

func (c *tlsLingerConn) Handshake() error                     { return c.tls.Handshake() }
func (c *tlsLingerConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

func (c *conn) Close() error {
	if c.linger.CompareAndSwap(true, false) {
		return LingerClose(c.Conn)
	}
	return c.Conn.Close()
}

// LingerClose closes c, an answered connection whose client may still be
// sending, without a reset (protocol.LingerClose, for lingerTime).
func LingerClose(c net.Conn) error { return protocol.LingerClose(c, lingerTime) }

// CloseWrite half-closes the connection, as the socket under it does.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CheckUpgrade refuses, with 400 and a lingering close, a WebSocket
// upgrade request that fasthttp/websocket would accept but must not be:
// a Sec-WebSocket-Key that is not the base64 of 16 bytes (RFC 6455
// section 4.2.1), or both Content-Length and Transfer-Encoding (RFC 9112
// section 6.1: a request that may be smuggled). It reports whether the
// request may be upgraded.
func CheckUpgrade(ctx *fasthttp.RequestCtx) bool {
	msg := ""
	switch {
	case !validKey(ctx.Request.Header.Peek("Sec-WebSocket-Key")):
		msg = "Sec-WebSocket-Key must be the base64 of 16 bytes"
	case hasBoth(ctx.Request.Header.RawHeaders(), "content-length", "transfer-encoding"):
		msg = "a request may not have both Content-Length and Transfer-Encoding"
	default:
		return true
	}
	ctx.Response.Header.Set("Sec-WebSocket-Version", "13")
	ctx.Error(msg, fasthttp.StatusBadRequest)
	Linger(ctx)
	return false
}

func validKey(k []byte) bool {
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], k)
	return len(k) == 24 && err == nil && n == 16
}

// hasBoth reports whether raw header lines name both a and b (lower case).
func hasBoth(raw []byte, a, b string) bool {
	var seenA, seenB bool
	for line := range bytes.SplitSeq(raw, []byte("\r\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		seenA = seenA || bytes.EqualFold(name, []byte(a))
		seenB = seenB || bytes.EqualFold(name, []byte(b))
	}
	return seenA && seenB
}
