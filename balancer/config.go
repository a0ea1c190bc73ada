package balancer

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
	"github.com/rs/zerolog"
)

// Config configures a Proxy. Zero fields take the defaults named in their
// doc comments; Validate reports what cannot be defaulted.
type Config struct {
	// TCP and WS are the client listeners (host:port; port 0 picks one;
	// empty turns the listener off). WS serves WebSocket on /ws.
	TCP string `json:"tcp" yaml:"tcp"`
	WS  string `json:"ws" yaml:"ws"`
	// WSAllowedOrigins are the origins of web pages, besides the proxy's
	// own host, that may open connections to the WS listener: patterns
	// such as https://*.example.com (see httpserver.Origins). An upgrade
	// request with an Origin header that is neither gets 403 saying why;
	// one without Origin (a client that is not a browser) is not checked.
	// The default, none, allows same-host pages only.
	WSAllowedOrigins []string `json:"ws_allowed_origins" yaml:"ws_allowed_origins"`
	// Name is what WELCOME tells clients (default "graftlb").
	Name string `json:"name" yaml:"name"`
	// Limits bound each client connection (protocol defaults: 1 MiB frames,
	// 1024 calls in flight, 10s to HELLO, 5m idle).
	Limits protocol.Limits `json:"limits" yaml:"limits"`
	// MaxConns caps client connections (default 10000); more are refused
	// with OVERLOADED.
	MaxConns int `json:"max_conns" yaml:"max_conns"`
	// MaxSessions caps the proxy's session table as a whole (default
	// 1000000, about 250 MB at most); MaxSessionsPerSource caps the sessions
	// one source address may bring to it (default 250000), and
	// MaxSessionsPerConn those one client connection may bring besides its
	// own (default 100000). A call that would add a session past a cap gets
	// OVERLOADED, naming the cap. A connection's own session (its HELLO's)
	// is never refused; sessions that never held an object leave the table
	// with their connection, the others after SessionIdle.
	MaxSessions          int `json:"max_sessions" yaml:"max_sessions"`
	MaxSessionsPerSource int `json:"max_sessions_per_source" yaml:"max_sessions_per_source"`
	MaxSessionsPerConn   int `json:"max_sessions_per_conn" yaml:"max_sessions_per_conn"`
	// CallRate limits the calls one source address sends, over all its
	// connections, to this many per second, with bursts of CallBurst
	// (default: CallRate rounded up, at least 1); calls past it get
	// OVERLOADED and are not forwarded. 0 (the default) sets no limit.
	// The source is the PROXY protocol's when the listener takes it.
	// With credentials (Auth), the limit is per identity instead: all the
	// connections of one identity, from any address, share one budget.
	CallRate  float64 `json:"call_rate" yaml:"call_rate"`
	CallBurst int     `json:"call_burst" yaml:"call_burst"`
	// MaxModuleCalls caps the calls in flight of each module
	// (module@version) through this proxy, over all clients and gateways;
	// a call past it gets OVERLOADED naming the cap and is not forwarded.
	// A call holds its slot until it is settled (answered, failed, timed
	// out; a ONEWAY call until its gateway acknowledged it). 0, the
	// default: no cap.
	MaxModuleCalls int `json:"max_module_calls" yaml:"max_module_calls"`
	// Auth turns credentials on when it names a token file or a JWT key
	// (credential.Config; off by default). A HELLO without a good
	// credential is then answered ERROR UNAUTHENTICATED and its
	// connection closed; each session is bound to the identity that named
	// it (auth.go: gateways see ids derived from identity and session id,
	// so another identity naming a leaked session id gets SESSION_LOST),
	// and CallRate counts per identity. Auth.Clock defaults to Clock.
	Auth credential.Config `json:"auth" yaml:"auth"`
	// MaxSubscriptions caps the topic subscriptions of one client
	// connection (default 1024); more get OVERLOADED.
	MaxSubscriptions int `json:"max_subscriptions" yaml:"max_subscriptions"`
	// BackendConns is the number of multiplexed connections per gateway
	// (default 2).
	BackendConns int `json:"backend_conns" yaml:"backend_conns"`
	// DialTimeout bounds a dial and handshake to a gateway (default 2s).
	DialTimeout time.Duration `json:"dial_timeout" yaml:"dial_timeout"`
	// RetryBudget is the share of active calls that may be retries at once
	// (default 0.2); RetryMin is the floor (default 3). Envoy's defaults.
	RetryBudget float64 `json:"retry_budget" yaml:"retry_budget"`
	RetryMin    int     `json:"retry_min" yaml:"retry_min"`
	// MaxAttempts bounds the gateways one stateless call may be sent to
	// (default 3).
	MaxAttempts int `json:"max_attempts" yaml:"max_attempts"`
	// TryTimeout bounds one attempt of an IDEMPOTENT stateless call (not
	// ONEWAY): an attempt its gateway has not answered within it is
	// abandoned and the call is sent to another gateway, as for a
	// retriable failure, while it has attempts left (MaxAttempts) and the
	// retry budget allows; the abandoned attempt's late reply is dropped,
	// and the timeout counts as a failure of its gateway (outlier
	// detection, breaker). The last attempt has none: it waits for the
	// call's own deadline. Default 1s (negative: off, as in Envoy, whose
	// per_try_timeout has no default): a gateway that stops (SIGSTOP, a
	// hung process) keeps its connections open and answers nothing, and
	// without it every idempotent call sent there waits for its deadline
	// although other gateways are healthy. An idempotent call that
	// legitimately runs longer is sent again, which is safe by its flag
	// and bounded by the budget; raise it for such modules. Checked every
	// SweepInterval.
	TryTimeout time.Duration `json:"try_timeout" yaml:"try_timeout"`
	// MaxOwnerProbes bounds how far down a session's preference list the
	// proxy walks to place a new session or find a resumed one (default 8).
	MaxOwnerProbes int `json:"max_owner_probes" yaml:"max_owner_probes"`
	// SessionLoadBound, when positive, places new sessions by consistent
	// hashing with bounded loads (affinity.BoundedOwner) with epsilon =
	// SessionLoadBound: a new session skips, down its preference list, the
	// gateways that hold (1+ε) × the mean of the sessions this proxy bound
	// or more; 0.25 is the usual choice. 0, the default: off (plain Maglev,
	// the first gateway of the list that admits sessions). Each proxy
	// counts its own loads, so with several proxies a resumed session may
	// take a longer NOT_OWNER walk to be found; use it where balance matters
	// more than that.
	SessionLoadBound float64 `json:"session_load_bound" yaml:"session_load_bound"`
	// SessionIdle is how long the proxy keeps the binding of a session that
	// makes no call and sends no PING (default 5m; the gateways keep its
	// objects for their own --session-ttl, 10m by default). Forgetting is
	// safe: a later call of the session finds its gateway again by the
	// NOT_OWNER walk; it only costs that walk.
	SessionIdle time.Duration `json:"session_idle" yaml:"session_idle"`
	// CallTimeout is the deadline the proxy gives a call that carries none
	// (0, the default: none, as the protocol allows; Envoy's route timeout
	// is 15s). It protects clients that send no deadline from a gateway that
	// hangs: the call fails with DEADLINE_EXCEEDED, and the gateway is told
	// the deadline in the forwarded header.
	CallTimeout time.Duration `json:"call_timeout" yaml:"call_timeout"`
	// DrainDelay is how long Drain keeps the listeners open after Ready
	// starts failing, so that the balancer in front (its health checks, a
	// Kubernetes endpoint update) stops sending first (default 1s;
	// negative: none).
	DrainDelay time.Duration `json:"drain_delay" yaml:"drain_delay"`
	// PoolSettle is how long after Start a resumed session that no known
	// gateway holds gets UNAVAILABLE (try again) instead of SESSION_LOST:
	// a restarted proxy learns its pool over a few gossip rounds (default
	// 5s; negative: none).
	PoolSettle time.Duration `json:"pool_settle" yaml:"pool_settle"`
	// ProxyProtocol reads the client's address from a PROXY protocol
	// header on the client listeners (off by default).
	ProxyProtocol ProxyProtocol `json:"proxy_protocol" yaml:"proxy_protocol"`
	// TLS turns TLS on for the client listeners: the TCP listener speaks
	// Hypertube inside TLS (tls://) and the WS listener is wss://, with a
	// certificate and key read from files and reloaded when they change
	// (tlsfiles.Server; Proxy.ReloadTLS forces it). With TLS.ClientCA,
	// clients must present a certificate from that CA (mTLS). Under the
	// PROXY protocol the header comes first, then the handshake. Off by
	// default.
	TLS tlsfiles.ServerFiles `json:"tls" yaml:"tls"`
	// BackendTLS, when it names any file, makes the proxy dial every
	// gateway with TLS, trusting BackendTLS.CA (default SSL_CERT_FILE or
	// the system roots) and presenting BackendTLS.Cert when a gateway
	// requires client certificates. Without it, only gateways whose
	// address says TLS (discovery.Addrs.TLS: tls:// entries, or a gateway
	// that announces it in gossip) are dialed with TLS, trusting
	// SSL_CERT_FILE or the system roots. The certificate is checked
	// against the host of the gateway's address.
	BackendTLS tlsfiles.ClientFiles `json:"backend_tls" yaml:"backend_tls"`

	// SweepInterval is how often deadlines and idle sessions are checked
	// (default 10ms): the resolution of proxy-enforced deadlines.
	SweepInterval time.Duration `json:"sweep_interval" yaml:"sweep_interval"`

	// Health configures active checks, outlier detection, circuit breakers
	// and panic mode (health package defaults: PING every 1s, down after 3
	// failures, up after 2 successes; ejection after 5 consecutive failures
	// for 30s growing to 300s, at most 50% of the pool; breakers open at 50%
	// failures over 10s with at least 20 calls; panic below 50% healthy).
	Health health.Config `json:"health" yaml:"health"`

	// Logger receives the proxy's logs (default: none).
	Logger *zerolog.Logger `json:"-" yaml:"-"`
	// Clock is the time source of deadlines and sweeps (default: real).
	Clock clock.Clock `json:"-" yaml:"-"`

	// MaxConnsPerSource caps the client connections from one source
	// address (an IPv4 address, an IPv6 /64) at once, so that one host
	// cannot take all MaxConns (default DefaultMaxConnsPerSource;
	// negative: no cap). More are refused with OVERLOADED.
	MaxConnsPerSource int `json:"max_conns_per_source" yaml:"max_conns_per_source"`

	// DisableMetrics turns the per-call counters and histograms off (on by
	// default; they cost no allocation and a few atomic adds per call). It
	// exists to measure that cost.
	DisableMetrics bool `json:"disable_metrics" yaml:"disable_metrics"`
	// AccessLog, when set, gets one line per call (accesslog.go): gateway,
	// target, kind, code, duration and trace id. Off by default; off, it
	// costs nothing per call. AccessLogSample is the share of calls logged
	// (default 1: all).
	AccessLog       *zerolog.Logger `json:"-" yaml:"-"`
	AccessLogSample float64         `json:"access_log_sample" yaml:"access_log_sample"`
	// TraceIDs gives a call that carries no W3C traceparent a new one, so
	// that the gateway's logs and the proxy's share the trace id. A call
	// that carries one is forwarded with it unchanged either way.
	TraceIDs bool `json:"trace_ids" yaml:"trace_ids"`

	// Routes send chosen modules (or methods) of stateless calls over
	// Transport instead of the pool (transport.go); nil: every call is
	// direct. Routes naming a NATS mode need a Transport.
	Routes    *transport.Routes   `json:"-" yaml:"-"`
	Transport transport.Transport `json:"-" yaml:"-"`
}

// Defaults of Config.
const (
	// DefaultMaxConns and DefaultMaxConnsPerSource are the connection caps
	// every graftlb server has (listener.DefaultMaxConnsPerSource says why
	// a tenth).
	DefaultMaxConns           = listener.DefaultMaxConns
	DefaultMaxConnsPerSource  = listener.DefaultMaxConnsPerSource
	DefaultBackendConns       = 2
	DefaultMaxSessions        = 1000000
	DefaultMaxSessionsSource  = 250000
	DefaultMaxSessionsPerConn = 100000
	DefaultMaxSubscriptions   = 1024
	DefaultDialTimeout        = 2 * time.Second
	DefaultRetryBudget        = 0.2
	DefaultRetryMin           = 3
	DefaultMaxAttempts        = 3
	DefaultTryTimeout         = time.Second
	DefaultMaxOwnerProbes     = 8
	DefaultSessionIdle        = 5 * time.Minute
	DefaultSweepInterval      = 10 * time.Millisecond
	DefaultDrainDelay         = time.Second
	DefaultPoolSettle         = 5 * time.Second
)

// DefaultConfig returns a Config with every default filled in and the
// listeners on loopback with ports chosen by the system.
func DefaultConfig() Config {
	return Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0"}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "graftlb"
	}
	c.Limits = c.Limits.WithDefaults()
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxSessionsPerSource <= 0 {
		c.MaxSessionsPerSource = DefaultMaxSessionsSource
	}
	if c.CallRate > 0 && c.CallBurst <= 0 {
		c.CallBurst = max(1, int(math.Ceil(c.CallRate)))
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxSessionsPerConn <= 0 {
		c.MaxSessionsPerConn = DefaultMaxSessionsPerConn
	}
	if c.BackendConns <= 0 {
		c.BackendConns = DefaultBackendConns
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RetryBudget <= 0 {
		c.RetryBudget = DefaultRetryBudget
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.TryTimeout == 0 {
		c.TryTimeout = DefaultTryTimeout
	}
	if c.MaxOwnerProbes <= 0 {
		c.MaxOwnerProbes = DefaultMaxOwnerProbes
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	// Negative PoolSettle and DrainDelay mean none, and stay negative, so
	// that a defaulted Config defaults to itself (Reload of Config()).
	if c.PoolSettle == 0 {
		c.PoolSettle = DefaultPoolSettle
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = DefaultDrainDelay
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Logger == nil {
		nop := zerolog.Nop()
		c.Logger = &nop
	}
	c.ProxyProtocol = c.ProxyProtocol.WithDefaults()
	c.Clock = clock.OrReal(c.Clock)
	// Health rules run on the proxy's clock unless given their own.
	for _, hc := range []*clock.Clock{&c.Health.Check.Clock, &c.Health.Outlier.Clock, &c.Health.Breaker.Clock} {
		if *hc == nil {
			*hc = c.Clock
		}
	}
	c.Health = c.Health.WithDefaults()
	if c.MaxConnsPerSource == 0 {
		c.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if c.AccessLogSample <= 0 {
		c.AccessLogSample = 1
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.TCP == "" && c.WS == "" {
		return errors.New("balancer: config: no listener (tcp and ws are both empty)")
	}
	if c.AccessLogSample > 1 {
		return fmt.Errorf("balancer: config: access_log_sample %v must be in (0, 1]", c.AccessLogSample)
	}
	if c.CallRate < 0 || math.IsNaN(c.CallRate) || math.IsInf(c.CallRate, 0) {
		return fmt.Errorf("balancer: config: call_rate %v must be 0 (no limit) or a positive number of calls per second", c.CallRate)
	}
	if c.MaxModuleCalls < 0 {
		return fmt.Errorf("balancer: config: max_module_calls %d must not be negative (0: no cap)", c.MaxModuleCalls)
	}
	if c.CallBurst < 0 {
		return fmt.Errorf("balancer: config: call_burst %d must not be negative", c.CallBurst)
	}
	if c.SessionLoadBound < 0 || math.IsNaN(c.SessionLoadBound) {
		return fmt.Errorf("balancer: config: session_load_bound %v must not be negative", c.SessionLoadBound)
	}
	if c.RetryBudget > 1 {
		return fmt.Errorf("balancer: config: retry_budget %v must be in (0, 1]", c.RetryBudget)
	}
	if err := c.ProxyProtocol.Validate(); err != nil {
		return fmt.Errorf("balancer: config: %w", err)
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("balancer: config: %w", err)
	}
	if err := c.BackendTLS.Validate(); err != nil {
		return fmt.Errorf("balancer: config: backend_%w", err)
	}
	if _, err := httpserver.ParseOrigins(c.WSAllowedOrigins); err != nil {
		return fmt.Errorf("balancer: config: ws_allowed_origins: %w", err)
	}
	if c.Routes.Uses() && c.Transport == nil {
		return errors.New("balancer: config: routes name a NATS transport but none is configured")
	}
	if err := c.Health.Validate(); err != nil {
		return fmt.Errorf("balancer: config: %w", err)
	}
	return nil
}
