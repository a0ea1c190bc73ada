package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/admin"
	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/passthrough"
	"github.com/graftlb/graftlb/transport"
	"github.com/valyala/fasthttp"
)

func runProxy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Every default comes from the packages' own: the command only wires
	// flags to balancer.DefaultConfig() (health, limits and all), with the
	// listeners on the addresses of the command line contract.
	cfg := balancer.DefaultConfig()
	cfg.TCP, cfg.WS = "127.0.0.1:9990", "127.0.0.1:9888"
	name := fs.String("name", cfg.Name, "proxy name (gossip node name, WELCOME)")
	fs.StringVar(&cfg.TCP, "tcp", cfg.TCP, "client TCP listener (empty: off)")
	fs.StringVar(&cfg.WS, "ws", cfg.WS, "client WebSocket listener, path /ws (empty: off)")
	fs.Var((*listFlag)(&cfg.WSAllowedOrigins), "ws-allowed-origins", wsOriginsUsage)
	var af adminFlags
	af.register(fs)
	adminAddr := &af.addr
	accessLog := fs.Bool("access-log", false, "log one line per call (gateway, target, kind, code, duration, trace id)")
	fs.Float64Var(&cfg.AccessLogSample, "access-log-sample", cfg.AccessLogSample, "share of calls the access log logs (0..1]")
	fs.BoolVar(&cfg.TraceIDs, "trace-ids", cfg.TraceIDs, "give calls without a W3C traceparent a new one (calls with one keep it)")
	var backends, passthroughs repeatFlag
	fs.Var(&backends, "backend", "static gateway tcp://host:port[#name=gw1,weight=2] (tls://host:port: over TLS); repeat for more gateways")
	dnsTarget := fs.String("backend-dns", "", "gateways from DNS: name:port, re-resolved every --dns-interval")
	dnsInterval := fs.Duration("dns-interval", discovery.DefaultDNSInterval, "DNS re-resolution interval")
	fs.Var(&passthroughs, "passthrough", "pass-through backend (real GG): ws://host:port/ws[#http=:PORT] or tcp://host:port (wss://, tls://: over TLS); repeat for more")
	ptKey := fs.String("passthrough-key", passthrough.DefaultConfig().Key.String(), "pass-through affinity key: query:NAME, header:NAME, cookie:NAME or addr")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "client connections at once")
	fs.IntVar(&cfg.MaxConnsPerSource, "max-conns-per-source", cfg.MaxConnsPerSource,
		"client connections at once from one source address (IPv4 address, IPv6 /64); negative: no cap")
	fs.IntVar(&cfg.BackendConns, "backend-conns", cfg.BackendConns, "multiplexed connections per gateway")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", cfg.DialTimeout, "gateway dial and handshake timeout")
	fs.Float64Var(&cfg.RetryBudget, "retry-budget", cfg.RetryBudget, "share of active calls that may be retries")
	fs.DurationVar(&cfg.TryTimeout, "try-timeout", cfg.TryTimeout, "per attempt of an IDEMPOTENT stateless call: unanswered this long, it is retried on another gateway (like Envoy's per_try_timeout; negative: off)")
	fs.DurationVar(&cfg.CallTimeout, "call-timeout", cfg.CallTimeout, "deadline given to calls that carry none (0: none)")
	fs.BoolVar(&cfg.ProxyProtocol.Enabled, "proxy-protocol", cfg.ProxyProtocol.Enabled, "read each client's address from a PROXY protocol (v1/v2) header")
	var ppFrom listFlag
	fs.Var(&ppFrom, "proxy-protocol-from", "CIDRs allowed to send the PROXY header, comma-separated (default loopback); others are refused")
	drainGrace := fs.Duration("drain-grace", balancer.DefaultDrainGrace, "longest a drain (SIGTERM) waits for clients to move to another proxy")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", cfg.DrainDelay, "on SIGTERM, how long /readyz fails before the listeners close (0: none)")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", cfg.MaxSessions, "sessions in the proxy's table, in all")
	fs.IntVar(&cfg.MaxSessionsPerSource, "max-sessions-per-source", cfg.MaxSessionsPerSource, "sessions one source address may bring to the table")
	fs.Float64Var(&cfg.CallRate, "call-rate", cfg.CallRate, "calls per second one source address (with --auth-*: one identity) may send over all its connections, then OVERLOADED (0: no limit)")
	fs.IntVar(&cfg.CallBurst, "call-burst", cfg.CallBurst, "calls a source may send at once above --call-rate (default: the rate, at least 1)")
	fs.IntVar(&cfg.MaxSessionsPerConn, "max-sessions-per-conn", cfg.MaxSessionsPerConn, "sessions one client connection may bring to the table")
	fs.DurationVar(&cfg.SessionIdle, "session-idle", cfg.SessionIdle, "forget the binding of a session unused this long")
	fs.Float64Var(&cfg.SessionLoadBound, "session-load-bound", cfg.SessionLoadBound, "place new sessions by consistent hashing with bounded loads: skip gateways holding (1+this) × the mean (0: off; 0.25 is usual)")
	hc := &cfg.Health
	fs.DurationVar(&hc.Check.Interval, "check-interval", hc.Check.Interval, "active check (PING; pass-through: GET /status) interval")
	fs.DurationVar(&hc.Check.Timeout, "check-timeout", hc.Check.Timeout, "active check timeout")
	fs.IntVar(&hc.Check.Fall, "fall", hc.Check.Fall, "failed checks that take a gateway down")
	fs.IntVar(&hc.Check.Rise, "rise", hc.Check.Rise, "passed checks that bring it back")
	fs.IntVar(&hc.Outlier.ConsecutiveFailures, "eject-consecutive", hc.Outlier.ConsecutiveFailures, "consecutive failed calls that eject a gateway (negative: off)")
	fs.DurationVar(&hc.Outlier.BaseEjectionTime, "eject-time", hc.Outlier.BaseEjectionTime, "first ejection length; the n-th lasts n times longer")
	fs.IntVar(&hc.Outlier.MaxEjectionPercent, "max-ejection-percent", hc.Outlier.MaxEjectionPercent, "most of the pool ejected at once, percent")
	fs.Float64Var(&hc.PanicThreshold, "panic-threshold", hc.PanicThreshold, "below this share of healthy gateways, spread over all (negative: off)")
	fs.Float64Var(&hc.Breaker.FailureRate, "breaker-failure-rate", hc.Breaker.FailureRate,
		fmt.Sprintf("failure rate over %v (at least %d calls) that opens a gateway's breaker (1: never)", hc.Breaker.Window, hc.Breaker.MinCalls))
	fs.DurationVar(&hc.Breaker.OpenTimeout, "breaker-open-timeout", hc.Breaker.OpenTimeout, "time an open breaker waits before probing")
	fs.IntVar(&hc.Breaker.MaxConcurrent, "breaker-max-concurrent", hc.Breaker.MaxConcurrent, "calls in flight per gateway before its breaker refuses more")
	var gf gossipFlags
	gf.register(fs)
	var lim limitFlags
	lim.register(fs)
	var lf logFlags
	lf.register(fs)
	var nf natsProxyFlags
	nf.register(fs)
	var auf authFlags
	auf.register(fs)
	var tf tlsFlags
	tf.register(fs)
	tf.registerBackend(fs)
	var ff fileFlags
	ff.register(fs)
	if err := ff.parse(fs, args, stderr); err != nil {
		return ff.exit(2)
	}
	sigs, stopSignals := serverSignals()
	defer stopSignals()
	fail := func(code int, err error) int {
		fmt.Fprintln(stderr, "graftlb proxy:", err)
		return ff.exit(code)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return fail(2, err)
	}
	cfg.Logger = &log
	if *accessLog {
		access := lf.accessLogger()
		cfg.AccessLog = &access
	}
	// flagged is the proxy config the flags describe; a reload (SIGHUP)
	// parses the flags again and takes it anew.
	flagged := func() balancer.Config {
		c := cfg
		c.ProxyProtocol.From = slices.Clone(ppFrom)
		if c.DrainDelay == 0 {
			c.DrainDelay = -1 // none (a zero Config field means the default)
		}
		c.Name = *name
		c.Limits = lim.limits()
		auf.apply(&c)
		c.TLS, c.BackendTLS = tf.server, tf.backend
		return c
	}
	cfg = flagged()
	started := flagValues(fs)

	sources := 0
	for _, set := range []bool{len(backends) > 0, *dnsTarget != "", len(passthroughs) > 0, gf.bind != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 && !(sources == 0 && nf.url != "") { // NATS alone: an empty pool
		return fail(2, fmt.Errorf("give exactly one pool source: --gossip, --backend, --backend-dns or --passthrough"))
	}
	if len(passthroughs) > 0 && (nf.url != "" || len(nf.routes) > 0) {
		// Pass-through relays bytes; it never reads a CALL to route it.
		return fail(2, fmt.Errorf("--nats and --route need the Hypertube proxy; --passthrough relays connections and routes no call"))
	}
	if len(passthroughs) > 0 && (auf.enabled() || cfg.MaxModuleCalls > 0) {
		return fail(2, fmt.Errorf("--auth-* and --max-module-calls need the Hypertube proxy; --passthrough relays connections and reads no HELLO or call"))
	}
	if err := af.resolve(); err != nil {
		return fail(2, err)
	}
	if ff.check {
		if err := checkProxy(cfg, af.addr, backends, passthroughs, *ptKey, *dnsTarget, *dnsInterval, &gf, &nf); err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "graftlb proxy: configuration is valid (%s)\n", configName(ff.set.Path()))
		return 0
	}
	rl := &reloads{log: &log} // what SIGHUP runs (config.go)
	var grace atomic.Int64    // --drain-grace, which a reload changes
	grace.Store(int64(*drainGrace))

	type server interface {
		Start() error
		Addrs() listener.Addrs
		Ready() error
		Close() error
	}
	var srv server
	var gs *discovery.Gossip
	var natsURL string // the NATS transport's server, when there is one
	adm := af.server(admin.New(&log, af.limits))
	switch {
	case len(passthroughs) > 0:
		ms, err := discovery.ParseBackends(passthroughs)
		if err != nil {
			return fail(2, err)
		}
		key, err := affinity.ParseKeySource(*ptKey)
		if err != nil {
			return fail(2, err)
		}
		// A listener only for the kinds of backend there are: a TCP
		// listener with only WebSocket backends would close every
		// connection it took.
		tcp, ws := "", ""
		for _, m := range ms {
			if m.Addrs.TCP != "" {
				tcp = cfg.TCP
			}
			if m.Addrs.WS != "" {
				ws = cfg.WS
			}
		}
		pt, err := passthrough.New(passthrough.Config{TCP: tcp, WS: ws, Key: key,
			MaxConns: cfg.MaxConns, MaxConnsPerSource: cfg.MaxConnsPerSource, DialTimeout: cfg.DialTimeout,
			Check: hc.Check, ProxyProtocol: cfg.ProxyProtocol, TLS: cfg.TLS, BackendTLS: cfg.BackendTLS,
			Logger: &log}, discovery.NewStatic(ms))
		if err != nil {
			return fail(2, err)
		}
		adm.HandleJSON("/pool", func() any { return pt.Pool() })
		adm.HandleJSON("/stats", func() any { return pt.Stats() })
		rl.add("config file", func() error { return reloadFixed(&ff, fs, started, fixedLive, &lf, &log, "pass-through proxy") })
		rl.add("certificates", pt.ReloadTLS)
		srv = pt
	default:
		var src discovery.Source
		pr := &proxyReloader{ff: &ff, fs: fs, started: started, log: &log, lf: &lf, flagged: flagged, backends: &backends, grace: drainGrace,
			pool: func() (proxyPool, error) { return checkProxyPool(backends, *dnsTarget, *dnsInterval, &gf, &nf) }}
		switch {
		case len(backends) > 0:
			ms, err := discovery.ParseBackends(backends)
			if err != nil {
				return fail(2, err)
			}
			pr.static = discovery.NewStatic(ms)
			src = pr.static
		case gf.bind == "" && *dnsTarget == "":
			src = discovery.NewStatic(nil) // every call goes over NATS
		case *dnsTarget != "":
			dc := discovery.DefaultDNSConfig(*dnsTarget)
			dc.Interval = *dnsInterval
			dc.Logger = &log
			d, err := discovery.NewDNS(dc)
			if err != nil {
				return fail(2, err)
			}
			src, pr.dns = d, d
		default:
			local := discovery.Member{Name: *name, Role: discovery.RoleProxy}
			if gs, err = gf.start(local, log); err != nil {
				return fail(1, err)
			}
			src, pr.gossip = gs, gs
		}
		var stopNATS func()
		if natsURL, stopNATS, err = nf.start(&cfg, &log); err != nil {
			_ = src.Close()
			return fail(2, err)
		}
		defer stopNATS() // after the proxy closed
		p, err := balancer.New(cfg, src)
		if err != nil {
			_ = src.Close()
			return fail(2, err)
		}
		disc := gossipView(&gf)
		disc.Backends, disc.DNS = slices.Clone(backends), *dnsTarget
		var discView atomic.Pointer[discoveryView] // a reload changes it
		discView.Store(&disc)
		nf.handleAdmin(adm, func() *transport.Routes { return p.Config().Routes })
		adminView := af.view()
		adm.HandleProxy(p, func() any {
			c := p.Config()
			return proxyConfigView{Proxy: c, Admin: adminView, Discovery: *discView.Load(), DrainGrace: time.Duration(grace.Load()), Routes: c.Routes.Strings()}
		})
		pr.p = p
		pr.applied = func(pp proxyPool, bs []string, dg time.Duration) {
			d := *discView.Load()
			d.Backends, d.DNS, d.Join = bs, pp.dns, pp.join
			discView.Store(&d)
			grace.Store(int64(dg))
		}
		rl.add("config file", pr.reload)
		rl.add("certificates", p.ReloadTLS)
		srv = p
	}
	adm.Handle("/readyz", func(ctx *fasthttp.RequestCtx) {
		if err := srv.Ready(); err != nil {
			ctx.Error("not ready: "+err.Error(), fasthttp.StatusServiceUnavailable)
			return
		}
		ctx.SetBodyString("ready")
	})
	if err := srv.Start(); err != nil {
		_ = srv.Close()
		return fail(1, err)
	}
	defer srv.Close()
	if *adminAddr != "" {
		if err := adm.Start(*adminAddr); err != nil {
			return fail(1, err)
		}
		defer adm.Close()
	}
	a := srv.Addrs()
	l := listening{Name: *name, TCP: a.TCP, WS: a.WS, Admin: adm.Addr(), NATS: natsURL}
	if gs != nil {
		l.Gossip = gs.LocalAddr()
	}
	printListening(stdout, l)

	sig := awaitStop(sigs, rl)
	log.Info().Stringer("signal", sig).Msg("draining")
	if d, ok := srv.(interface{ Drain(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(grace.Load()))
		drained := make(chan error, 1)
		go func() { drained <- d.Drain(ctx) }()
		for waiting := true; waiting; {
			select {
			case <-drained:
				waiting = false
			case sig := <-sigs:
				if !hangup(sig, rl) {
					log.Warn().Stringer("signal", sig).Msg("second signal: stopping now")
					cancel()
					<-drained
					waiting = false
				}
			}
		}
		cancel()
	}
	log.Info().Msg("stopping")
	if gs != nil {
		// Leave before closing so peers see the departure at once; the
		// proxy's Close then shuts the source down.
		_ = gs.Leave(3e9)
	}
	return 0
}
