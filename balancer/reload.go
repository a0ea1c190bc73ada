package balancer

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// A reload (SIGHUP) changes the configuration of a running proxy without
// dropping a connection, a session or a call. The config in force is an
// immutable Config behind an atomic pointer (Proxy.live), read where a
// setting is used: each call reads its timeout, retry budget and attempts,
// each new client connection its protocol limits, each routing snapshot
// its panic threshold and placement. Reload validates a new Config, keeps
// the settings that cannot change on a running proxy, swaps the pointer
// and hands the parts that live elsewhere (connection and session caps,
// the rate limit, the health machinery) their new values. What is already
// under way keeps what it started with: a client connection its limits,
// an ejection its end, an open breaker its timeout.

// conf returns the config in force.
func (p *Proxy) conf() *Config { return p.live.Load() }

// Reload applies cfg to the running proxy. Zero fields take their
// defaults, as in New; the Logger, Clock, AccessLog and Transport of the
// proxy stay (so cfg need not set them). An invalid cfg changes nothing
// and is returned as the error. The settings a running proxy cannot
// change — its listeners and their origins and PROXY protocol, its name,
// the connections per gateway, the largest frame, the sweep interval, the
// pool settle time, metrics on or off, the NATS transport, the credential
// checks and which TLS files it uses (ReloadTLS reads the certificate and
// key again) — keep their values; kept names those cfg would have
// changed, by their JSON names, and the rest applies. Reload returns once the routing snapshot reflects
// cfg (or after a second, when the control goroutine is busy).
func (p *Proxy) Reload(cfg Config) (kept []string, err error) {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	cur := p.conf()
	cfg.Logger, cfg.Clock, cfg.AccessLog = p.cfg.Logger, p.cfg.Clock, p.cfg.AccessLog
	if cfg.Transport == nil {
		cfg.Transport = p.cfg.Transport
	}
	h := &cfg.Health
	h.Check.Clock, h.Outlier.Clock, h.Breaker.Clock = cur.Health.Check.Clock, cur.Health.Outlier.Clock, cur.Health.Breaker.Clock
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keep := func(name string, differs bool, restore func()) {
		if differs {
			kept = append(kept, name)
			restore()
		}
	}
	keep("tcp", cfg.TCP != cur.TCP, func() { cfg.TCP = cur.TCP })
	keep("ws", cfg.WS != cur.WS, func() { cfg.WS = cur.WS })
	keep("ws_allowed_origins", !slices.Equal(cfg.WSAllowedOrigins, cur.WSAllowedOrigins), func() { cfg.WSAllowedOrigins = cur.WSAllowedOrigins })
	keep("proxy_protocol", !slices.Equal(cfg.ProxyProtocol.From, cur.ProxyProtocol.From) || cfg.ProxyProtocol.Enabled != cur.ProxyProtocol.Enabled,
		func() { cfg.ProxyProtocol = cur.ProxyProtocol })
	keep("name", cfg.Name != cur.Name, func() { cfg.Name = cur.Name })
	keep("backend_conns", cfg.BackendConns != cur.BackendConns, func() { cfg.BackendConns = cur.BackendConns })
	keep("limits.max_frame", cfg.Limits.MaxFrame != cur.Limits.MaxFrame, func() { cfg.Limits.MaxFrame = cur.Limits.MaxFrame })
	keep("sweep_interval", cfg.SweepInterval != cur.SweepInterval, func() { cfg.SweepInterval = cur.SweepInterval })
	keep("pool_settle", cfg.PoolSettle != cur.PoolSettle, func() { cfg.PoolSettle = cur.PoolSettle })
	keep("disable_metrics", cfg.DisableMetrics != cur.DisableMetrics, func() { cfg.DisableMetrics = cur.DisableMetrics })
	keep("transport", cfg.Transport != cur.Transport, func() { cfg.Transport = cur.Transport })
	// Credentials and TLS files are read when the proxy starts (the
	// certificate and key again when they change, or by ReloadTLS).
	cfg.Auth.Clock = cur.Auth.Clock
	keep("auth", cfg.Auth != cur.Auth, func() { cfg.Auth = cur.Auth })
	keep("tls", cfg.TLS != cur.TLS, func() { cfg.TLS = cur.TLS })
	keep("backend_tls", cfg.BackendTLS != cur.BackendTLS, func() { cfg.BackendTLS = cur.BackendTLS })

	// The health machinery first: what it refuses refuses the reload
	// before anything changed (Validate checked the same rules).
	if err := p.checker.SetConfig(cfg.Health.Check); err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	if err := p.detector.SetConfig(cfg.Health.Outlier); err != nil {
		return nil, fmt.Errorf("balancer: %w", err)
	}
	p.admission.SetLimits(cfg.MaxConns, cfg.MaxConnsPerSource)
	p.sessions.setLimits(cfg.MaxSessions, cfg.MaxSessionsPerSource, cfg.MaxSessionsPerConn)
	rl := newRateLimit(cfg.CallRate, cfg.CallBurst)
	p.rate.Store(&rl)
	p.modLimit.setMax(cfg.MaxModuleCalls)
	p.live.Store(&cfg)
	// The breakers belong to backends the control goroutine adds and
	// removes: it gives them the new settings at its next rebuild.
	gen := p.reloads.Add(1)
	p.kick()
	p.mu.Lock()
	running := p.started && !p.closed
	p.mu.Unlock()
	for deadline := time.Now().Add(time.Second); running && p.reloadsApplied.Load() < gen && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return kept, nil
}

// applyReload gives the breakers the reloaded settings, once per Reload.
// Only the control goroutine calls it (rebuild).
func (p *Proxy) applyReload() {
	gen := p.reloads.Load()
	if p.reloadsApplied.Load() >= gen {
		return
	}
	s := p.conf().Health.Breaker
	p.mu.Lock()
	bs := make([]*backend, 0, len(p.backends))
	for _, b := range p.backends {
		bs = append(bs, b)
	}
	p.mu.Unlock()
	for _, b := range bs {
		if b.breaker != nil {
			if err := b.breaker.SetSettings(s); err != nil {
				p.cfg.Logger.Error().Err(err).Str("gateway", b.name).Msg("circuit breaker: reload")
			}
		}
	}
	p.reloadsApplied.Store(gen)
}

// Retire stops placing new sessions and stateless calls on the named
// gateways, ahead of their removal from the pool (a reload that drops
// them from a static list), and waits until the routing snapshot excludes
// them and their calls in flight have ended, or ctx is done. The sessions
// they hold keep their calls going there until the gateways leave the
// pool; then they are lost, as on any gateway's departure. Names not in
// the pool are ignored.
func (p *Proxy) Retire(ctx context.Context, names []string) {
	var bs []*backend
	for _, n := range names {
		if b := p.backendNamed(n); b != nil && !b.retiring.Swap(true) {
			p.cfg.Logger.Info().Str("gateway", n).Msg("retiring: leaving the pool at a reload; no new sessions or stateless calls")
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		return
	}
	p.kick()
	for _, b := range bs {
		for ctx.Err() == nil && (p.admits(b) || b.outstanding.Load() > 0) {
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
}

// admits reports whether the current routing snapshot admits b.
func (p *Proxy) admits(b *backend) bool {
	pk := p.picker.Load()
	for i, pb := range pk.backends {
		if pb == b {
			return pk.admit[i]
		}
	}
	return false
}
