package client

import (
	"crypto/tls"
	"time"

	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// Options configure a connection. The zero value is usable.
type Options struct {
	// Limits bound frames and queues on this side (protocol defaults).
	Limits protocol.Limits
	// DialTimeout bounds dialing and the HELLO/WELCOME exchange (default 5s).
	DialTimeout time.Duration
	// PingInterval is how often an idle connection sends PING so that the
	// server does not close it (default 30s; negative: never).
	PingInterval time.Duration
	// Session is the connection's session; zero lets the server choose.
	Session protocol.SessionID
	// Resume says Session names an existing session (HELLO RESUME).
	Resume bool
	// Credential is sent in HELLO for servers that authenticate.
	Credential []byte
	// Name identifies the client in server logs (default "graftlb-go/1").
	Name string
	// AutoReconnect redials after the connection breaks, with backoff, and
	// resumes the connection's session. Calls made while disconnected fail
	// at once with UNAVAILABLE.
	AutoReconnect bool
	// TLS is the client configuration of tls:// and wss:// targets (nil:
	// trust SSL_CERT_FILE or the system roots, no client certificate). Its
	// ServerName defaults to the target's host; set Certificates for a
	// server that requires client certificates (mTLS).
	TLS *tls.Config
	// Logger receives the client's own logs (default: none).
	Logger *zerolog.Logger
}

const (
	defaultDialTimeout  = 5 * time.Second
	defaultPingInterval = 30 * time.Second
)

func (o Options) withDefaults() Options {
	o.Limits = o.Limits.WithDefaults()
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.Name == "" {
		o.Name = "graftlb-go/1"
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	return o
}
