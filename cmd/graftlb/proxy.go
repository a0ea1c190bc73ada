package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/admin"
	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/discovery"
)

func runProxy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := balancer.Config{}
	name := fs.String("name", "graftlb", "proxy name (gossip node name, WELCOME)")
	fs.StringVar(&cfg.TCP, "tcp", "127.0.0.1:9990", "client TCP listener (empty: off)")
	fs.StringVar(&cfg.WS, "ws", "127.0.0.1:9888", "client WebSocket listener, path /ws (empty: off)")
	adminAddr := fs.String("admin", "127.0.0.1:9889", "admin HTTP listener: /pool, /stats, /healthz (empty: off)")
	var backends, passthrough listFlag
	fs.Var(&backends, "backend", "static gateway tcp://host:port[#name=gw1,weight=2] (repeatable)")
	dnsTarget := fs.String("backend-dns", "", "gateways from DNS: name:port, re-resolved every --dns-interval")
	dnsInterval := fs.Duration("dns-interval", discovery.DefaultDNSInterval, "DNS re-resolution interval")
	fs.Var(&passthrough, "passthrough", "pass-through backend (real GG): ws://host:port/ws[#http=:PORT] or tcp://host:port (repeatable)")
	ptKey := fs.String("passthrough-key", "addr", "pass-through affinity key: query:NAME, header:NAME, cookie:NAME or addr")
	fs.IntVar(&cfg.MaxConns, "max-conns", balancer.DefaultMaxConns, "client connections at once")
	fs.IntVar(&cfg.BackendConns, "backend-conns", balancer.DefaultBackendConns, "multiplexed connections per gateway")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", balancer.DefaultDialTimeout, "gateway dial and handshake timeout")
	fs.Float64Var(&cfg.RetryBudget, "retry-budget", balancer.DefaultRetryBudget, "share of active calls that may be retries")
	fs.DurationVar(&cfg.CallTimeout, "call-timeout", 0, "deadline given to calls that carry none (0: none)")
	hc := &cfg.Health
	fs.DurationVar(&hc.Check.Interval, "check-interval", time.Second, "active check (PING; pass-through: GET /status) interval")
	fs.DurationVar(&hc.Check.Timeout, "check-timeout", time.Second, "active check timeout")
	fs.IntVar(&hc.Check.Fall, "fall", 3, "failed checks that take a gateway down")
	fs.IntVar(&hc.Check.Rise, "rise", 2, "passed checks that bring it back")
	fs.IntVar(&hc.Outlier.ConsecutiveFailures, "eject-consecutive", 5, "consecutive failed calls that eject a gateway (negative: off)")
	fs.DurationVar(&hc.Outlier.BaseEjectionTime, "eject-time", 30*time.Second, "first ejection length; the n-th lasts n times longer")
	fs.IntVar(&hc.Outlier.MaxEjectionPercent, "max-ejection-percent", 50, "most of the pool ejected at once, percent")
	fs.Float64Var(&hc.PanicThreshold, "panic-threshold", 0.5, "below this share of healthy gateways, spread over all (negative: off)")
	fs.Float64Var(&hc.Breaker.FailureRate, "breaker-failure-rate", 0.5, "failure rate over 10s (at least 20 calls) that opens a gateway's breaker (1: never)")
	fs.DurationVar(&hc.Breaker.OpenTimeout, "breaker-open-timeout", 5*time.Second, "time an open breaker waits before probing")
	fs.IntVar(&hc.Breaker.MaxConcurrent, "breaker-max-concurrent", 1024, "calls in flight per gateway before its breaker refuses more")
	var gf gossipFlags
	gf.register(fs)
	var lim limitFlags
	lim.register(fs)
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb proxy:", err)
		return 2
	}
	cfg.Logger = &log
	cfg.Name = *name
	cfg.Limits = lim.limits()
	fail := func(code int, err error) int {
		fmt.Fprintln(stderr, "graftlb proxy:", err)
		return code
	}

	sources := 0
	for _, set := range []bool{len(backends) > 0, *dnsTarget != "", len(passthrough) > 0, gf.bind != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return fail(2, fmt.Errorf("give exactly one pool source: --gossip, --backend, --backend-dns or --passthrough"))
	}

	type server interface {
		Start() error
		Addrs() balancer.Addrs
		Close() error
	}
	var srv server
	var gs *discovery.Gossip
	adm := admin.New(&log)
	switch {
	case len(passthrough) > 0:
		ms, err := discovery.ParseBackends(passthrough)
		if err != nil {
			return fail(2, err)
		}
		key, err := affinity.ParseKeySource(*ptKey)
		if err != nil {
			return fail(2, err)
		}
		pt, err := balancer.NewPassthrough(balancer.PassthroughConfig{TCP: cfg.TCP, WS: cfg.WS, Key: key,
			MaxConns: cfg.MaxConns, DialTimeout: cfg.DialTimeout, Check: hc.Check, Logger: &log}, discovery.NewStatic(ms))
		if err != nil {
			return fail(2, err)
		}
		srv = pt
	default:
		var src discovery.Source
		switch {
		case len(backends) > 0:
			ms, err := discovery.ParseBackends(backends)
			if err != nil {
				return fail(2, err)
			}
			src = discovery.NewStatic(ms)
		case *dnsTarget != "":
			dc := discovery.DefaultDNSConfig(*dnsTarget)
			dc.Interval = *dnsInterval
			dc.Logger = &log
			d, err := discovery.NewDNS(dc)
			if err != nil {
				return fail(2, err)
			}
			src = d
		default:
			local := discovery.Member{Name: *name, Role: discovery.RoleProxy}
			if gs, err = gf.start(local, log); err != nil {
				return fail(1, err)
			}
			src = gs
		}
		p, err := balancer.New(cfg, src)
		if err != nil {
			_ = src.Close()
			return fail(2, err)
		}
		adm.HandleJSON("/pool", func() any { return p.Pool() })
		adm.HandleJSON("/stats", func() any { return p.Stats() })
		srv = p
	}
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
	l := listening{Name: *name, TCP: a.TCP, WS: a.WS, Admin: adm.Addr()}
	if gs != nil {
		l.Gossip = gs.LocalAddr()
	}
	printListening(stdout, l)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	sig := <-sigs
	log.Info().Stringer("signal", sig).Msg("stopping")
	if gs != nil {
		// Leave before closing so peers see the departure at once; the
		// proxy's Close then shuts the source down.
		_ = gs.Leave(3e9)
	}
	return 0
}
