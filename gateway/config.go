package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/protocol"
)

// Defaults for Config.
const (
	DefaultSessionTTL = 10 * time.Minute
	DefaultDrainQuiet = 200 * time.Millisecond
	DefaultDrainGrace = 30 * time.Second
	DefaultMaxConns   = 10000
	// Default listen addresses: the ports Graftcode's docs use for GG
	// (WebSocket 8888, HTTP 8889, TCP 8990), on loopback.
	DefaultTCPAddr  = "127.0.0.1:8990"
	DefaultWSAddr   = "127.0.0.1:8888"
	DefaultHTTPAddr = "127.0.0.1:8889"
)

// Config configures a Gateway. The zero value of each field means its
// default (listen addresses excepted: empty means off). It is copied by New
// and never changed afterwards.
type Config struct {
	// Name identifies the gateway in WELCOME, logs, /stats and the results
	// of the example modules (default "gateway").
	Name string

	// TCP, WS and HTTP are the listen addresses of the TCP binding, the
	// WebSocket binding (path /ws) and the HTTP endpoints (/status,
	// /readyz, /stats). Port 0 picks a free port (see Addrs); an empty
	// address leaves that listener off.
	TCP, WS, HTTP string

	// Limits bound each connection: frame size, calls in flight, HELLO and
	// idle timeouts, write queue of a peer that does not read.
	Limits protocol.Limits

	// SessionTTL is how long a session without calls keeps its objects
	// (default 10m, measured on Clock).
	SessionTTL time.Duration
	// DrainQuiet is how long a draining gateway waits, once it holds no
	// session (its sessions moved, ended or expired) and has no call in
	// flight, before it stops: calls already on the wire still reach it
	// (default 200ms). Without a pool (SetPool) sessions cannot move, and
	// a drain ends once no call has been in flight for DrainQuiet; the
	// sessions still held are lost (see Drain).
	DrainQuiet time.Duration
	// DrainGrace ends a drain after this long even if sessions are still
	// held or calls in flight (default 30s); those sessions are lost.
	DrainGrace time.Duration
	// MaxConns is the most connections served at once (default 10000); a
	// connection beyond it gets ERROR OVERLOADED and is closed.
	MaxConns int
	// MaxSubscriptions is the most topic subscriptions ($topic@1) one
	// direct connection may hold, over all its sessions (default 1024);
	// one more is answered OVERLOADED.
	MaxSubscriptions int

	// HTTPReadTimeout bounds reading a request on the HTTP listener and a
	// WebSocket upgrade request, from its first byte (default 10s, as
	// HAProxy's timeout http-request): a client that has not sent a whole
	// request by then gets 408 and is closed. It also bounds writing a
	// response. HTTPIdleTimeout closes a keep-alive HTTP connection with
	// no request for that long (default 30s).
	HTTPReadTimeout time.Duration
	HTTPIdleTimeout time.Duration
	// HTTPMaxConns caps the connections of the HTTP listener (default 256);
	// more get 503.
	HTTPMaxConns int
	// WSAllowedOrigins are the origins of web pages, besides the gateway's
	// own host, that may open WebSocket connections: patterns such as
	// https://*.example.com (see httpserver.Origins). An upgrade request
	// with an Origin header that is neither gets 403 saying why; one
	// without Origin (a client that is not a browser) is not checked. The
	// default, none, allows same-host pages only.
	WSAllowedOrigins []string

	// TLS turns TLS on for the TCP and WS listeners (tls:// and wss://;
	// the HTTP listener stays plain), with a certificate and key reloaded
	// when their files change (Gateway.ReloadTLS forces it); with
	// TLS.ClientCA, peers must present a certificate from that CA (mTLS).
	// Off by default.
	TLS tlsfiles.ServerFiles
	// PeerTLS is the client configuration of the links to other gateways
	// of the pool (session handoff) whose addresses say TLS (nil: trust
	// SSL_CERT_FILE or the system roots). A gateway with TLS presents its
	// own listener certificate (the pair of TLS, as it is reloaded) on
	// those links to peers that ask for a client certificate
	// (TLS.ClientCA), unless PeerTLS sets Certificates or
	// GetClientCertificate; that certificate then needs the clientAuth
	// extended key usage besides serverAuth. Without TLS the links
	// present no certificate.
	PeerTLS *tls.Config

	// Workers caps the calls that execute at once (0, the default: no cap,
	// each call runs on its own goroutine as GG runs each invocation on its
	// own thread). Calls over the cap wait in line, and their wait counts
	// against their deadlines. A cap makes the gateway's capacity finite,
	// which is what a scale-out measurement needs.
	Workers int

	// Modules are the modules the gateway hosts.
	Modules []*Module
	// Interceptors wrap every call, outermost first, inside the gateway's
	// own fault injection.
	Interceptors []Interceptor

	// Logger receives structured logs (default: none).
	Logger *zerolog.Logger
	// Clock drives session TTLs, drain timing and injected latency
	// (default the wall clock). Call deadlines and socket timeouts use the
	// wall clock.
	Clock clock.Clock

	// ChaosFailRate is the initial share of calls (0..1) that fail with
	// INTERNAL before running; ChaosLatency is added before every call.
	// Both apply to every module and can be changed at run time (Faults).
	ChaosFailRate float64
	ChaosLatency  time.Duration

	// OnStateChange, if set, is called after every change of State (from
	// the goroutine that made it, never concurrently for one gateway). It
	// must not call Drain or Close, and must return quickly: it runs
	// before GOAWAY goes out. To announce a drain to a gossip pool use
	// discovery.JoinGateway, which does it on a goroutine of its own.
	OnStateChange func(from, to State)
}

// DefaultConfig returns a Config with every default filled in and the
// listeners on their default loopback addresses.
func DefaultConfig() Config {
	return Config{
		Name:       "gateway",
		TCP:        DefaultTCPAddr,
		WS:         DefaultWSAddr,
		HTTP:       DefaultHTTPAddr,
		Limits:     protocol.Limits{}.WithDefaults(),
		SessionTTL: DefaultSessionTTL,
		DrainQuiet: DefaultDrainQuiet,
		DrainGrace: DefaultDrainGrace,
		MaxConns:   DefaultMaxConns,

		HTTPReadTimeout:  httpserver.DefaultReadTimeout,
		HTTPIdleTimeout:  httpserver.DefaultIdleTimeout,
		HTTPMaxConns:     httpserver.DefaultMaxConns,
		MaxSubscriptions: DefaultMaxSubscriptions,
	}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "gateway"
	}
	c.Limits = c.Limits.WithDefaults()
	if c.SessionTTL <= 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.DrainQuiet <= 0 {
		c.DrainQuiet = DefaultDrainQuiet
	}
	if c.DrainGrace <= 0 {
		c.DrainGrace = DefaultDrainGrace
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	hl := httpserver.Limits{ReadTimeout: c.HTTPReadTimeout, IdleTimeout: c.HTTPIdleTimeout, MaxConns: c.HTTPMaxConns}.WithDefaults()
	c.HTTPReadTimeout, c.HTTPIdleTimeout, c.HTTPMaxConns = hl.ReadTimeout, hl.IdleTimeout, hl.MaxConns
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// validate checks a config that went through withDefaults.
func (c Config) validate() error {
	var errs []error
	if len(c.Name) > protocol.MaxStringLen {
		errs = append(errs, errors.New("name: longer than 255 bytes"))
	}
	if c.SessionTTL/time.Millisecond > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("session_ttl: %v does not fit the protocol's u32 milliseconds", c.SessionTTL))
	}
	if c.Limits.IdleTimeout/time.Millisecond > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("idle_timeout: %v does not fit the protocol's u32 milliseconds", c.Limits.IdleTimeout))
	}
	if err := checkFailRate(c.ChaosFailRate); err != nil {
		errs = append(errs, fmt.Errorf("chaos_fail_rate: %w", err))
	}
	if c.Workers < 0 {
		errs = append(errs, errors.New("workers: must not be negative"))
	}
	if c.ChaosLatency < 0 {
		errs = append(errs, errors.New("chaos_latency: must not be negative"))
	}
	if _, err := httpserver.ParseOrigins(c.WSAllowedOrigins); err != nil {
		errs = append(errs, fmt.Errorf("ws_allowed_origins: %w", err))
	}
	errs = append(errs, c.TLS.Validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway: config: %w", err)
	}
	return nil
}
