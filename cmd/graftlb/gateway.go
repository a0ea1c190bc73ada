package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/chaos"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
)

// exampleModules are the modules `graftlb gateway --modules` can host.
var exampleModules = map[string]func() *gateway.Module{
	"orders": orders.Module,
	"cart":   cart.Module,
	"ticker": ticker.Module,
	"chaos":  chaos.Module,
}

func runGateway(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := gateway.DefaultConfig()
	fs.StringVar(&cfg.Name, "name", "gw1", "gateway name (in WELCOME, logs, results)")
	fs.StringVar(&cfg.TCP, "tcp", cfg.TCP, "TCP listener (port 0 picks one; empty: off)")
	fs.StringVar(&cfg.WS, "ws", cfg.WS, "WebSocket listener, path /ws (empty: off)")
	fs.Var((*listFlag)(&cfg.WSAllowedOrigins), "ws-allowed-origins", wsOriginsUsage)
	fs.StringVar(&cfg.HTTP, "http", cfg.HTTP, "HTTP listener: /status, /readyz, /stats (empty: off)")
	modules := fs.String("modules", "orders,cart,ticker,chaos", "example modules to host, comma-separated")
	fs.Float64Var(&cfg.ChaosFailRate, "chaos-fail-rate", 0, "share of all calls (0..1) that fail with INTERNAL")
	fs.DurationVar(&cfg.ChaosLatency, "chaos-latency", 0, "latency added to every call")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", gateway.DefaultSessionTTL, "drop a session's objects after this long without calls")
	fs.DurationVar(&cfg.DrainGrace, "drain-grace", gateway.DefaultDrainGrace, "longest a drain (SIGTERM) waits for calls to finish")
	fs.DurationVar(&cfg.DrainQuiet, "drain-quiet", gateway.DefaultDrainQuiet, "a drain ends once no call has been in flight this long")
	fs.IntVar(&cfg.MaxConns, "max-conns", gateway.DefaultMaxConns, "connections served at once")
	fs.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", cfg.HTTPReadTimeout, "HTTP and WebSocket-upgrade requests: time to send a whole request (408 after)")
	fs.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", cfg.HTTPIdleTimeout, "HTTP listener: close keep-alive connections idle this long")
	fs.IntVar(&cfg.HTTPMaxConns, "http-max-conns", cfg.HTTPMaxConns, "HTTP listener: connections at once (503 beyond)")
	fs.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", gateway.DefaultMaxSubscriptions, "topic subscriptions ($topic@1) per direct connection")
	fs.IntVar(&cfg.Workers, "workers", 0, "calls executing at once; more wait in line (0: no cap, a goroutine per call)")
	weight := fs.Int("weight", discovery.DefaultWeight, "share of new sessions and stateless calls, relative to other gateways")
	var gf gossipFlags
	gf.register(fs)
	var lim limitFlags
	lim.register(fs)
	var lf logFlags
	lf.register(fs)
	var nf natsGatewayFlags
	nf.register(fs)
	var tf tlsFlags
	tf.register(fs)
	tf.registerPeer(fs)
	var ff fileFlags
	ff.register(fs)
	if err := ff.parse(fs, args, stderr); err != nil {
		return ff.exit(2)
	}
	started := flagValues(fs)
	sigs, stopSignals := serverSignals()
	defer stopSignals()
	if gf.bind == "" && gf.advertise != "" {
		fmt.Fprintln(stderr, "graftlb gateway: --advertise needs --gossip: it is the address gossip announces")
		return ff.exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "graftlb gateway: unexpected argument %q\n", fs.Arg(0))
		return ff.exit(2)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb gateway:", err)
		return ff.exit(2)
	}
	cfg.Logger = &log
	cfg.Limits = lim.limits()
	cfg.TLS = tf.server
	if cfg.PeerTLS, err = tf.peerConfig(); err != nil {
		fmt.Fprintln(stderr, "graftlb gateway: --tls-ca:", err)
		return 2
	}
	for _, name := range strings.Split(*modules, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		mk, ok := exampleModules[name]
		if !ok {
			fmt.Fprintf(stderr, "graftlb gateway: --modules: unknown module %q (have orders, cart, ticker, chaos)\n", name)
			return ff.exit(2)
		}
		cfg.Modules = append(cfg.Modules, mk())
	}
	g, err := gateway.New(cfg)
	if err == nil && ff.check {
		err = checkGateway(cfg, &gf)
	}
	if err != nil {
		fmt.Fprintln(stderr, "graftlb gateway:", err)
		return ff.exit(2)
	}
	if ff.check {
		fmt.Fprintf(stdout, "graftlb gateway: configuration is valid (%s)\n", configName(ff.set.Path()))
		return 0
	}
	rl := &reloads{log: &log} // what SIGHUP runs (config.go)
	rl.add("config file", func() error { return reloadFixed(&ff, fs, started, fixedLive, &lf, &log, "gateway") })
	rl.add("certificates", g.ReloadTLS)
	if err := g.Start(); err != nil {
		fmt.Fprintln(stderr, "graftlb gateway:", err)
		return 1
	}
	leaveNATS, err := nf.start(g)
	if err != nil {
		_ = g.Close()
		fmt.Fprintln(stderr, "graftlb gateway: nats:", err)
		return 1
	}
	defer leaveNATS()
	a := g.Addrs()
	l := listening{Name: cfg.Name, TCP: a.TCP, WS: a.WS, HTTP: a.HTTP}
	if gf.bind != "" {
		// Gossip starts after the listeners: it announces their addresses.
		// The membership gossips the drain and leaves once g has stopped.
		dc := gf.config(&log)
		dc.Local.Weight = *weight
		ms, err := discovery.JoinGateway(g, dc)
		if err != nil {
			_ = g.Close()
			fmt.Fprintln(stderr, "graftlb gateway: gossip:", err)
			return 1
		}
		defer ms.Close() // after the drain: waits for the leave
		l.Gossip = ms.Gossip().LocalAddr()
	}
	printListening(stdout, l)

	for waiting := true; waiting; {
		select {
		case <-g.Done():
			return 1
		case sig := <-sigs:
			if !hangup(sig, rl) {
				log.Info().Stringer("signal", sig).Msg("draining")
				waiting = false
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainGrace+5*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- g.Drain(ctx) }()
	for waiting := true; waiting; {
		select {
		case err := <-drained:
			if err != nil {
				log.Warn().Err(err).Msg("drain ended early")
			}
			waiting = false
		case sig := <-sigs:
			if !hangup(sig, rl) {
				log.Warn().Stringer("signal", sig).Msg("second signal: stopping now")
				_ = g.Close()
				<-drained
				waiting = false
			}
		}
	}
	log.Info().Msg("stopped")
	return 0
}
