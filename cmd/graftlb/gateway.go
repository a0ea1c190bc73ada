package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	fs.StringVar(&cfg.HTTP, "http", cfg.HTTP, "HTTP listener: /status, /readyz, /stats (empty: off)")
	modules := fs.String("modules", "orders,cart,ticker,chaos", "example modules to host, comma-separated")
	fs.Float64Var(&cfg.ChaosFailRate, "chaos-fail-rate", 0, "share of all calls (0..1) that fail with INTERNAL")
	fs.DurationVar(&cfg.ChaosLatency, "chaos-latency", 0, "latency added to every call")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", gateway.DefaultSessionTTL, "drop a session's objects after this long without calls")
	fs.DurationVar(&cfg.DrainGrace, "drain-grace", gateway.DefaultDrainGrace, "longest a drain (SIGTERM) waits for calls to finish")
	fs.DurationVar(&cfg.DrainQuiet, "drain-quiet", gateway.DefaultDrainQuiet, "a drain ends once no call has been in flight this long")
	fs.IntVar(&cfg.MaxConns, "max-conns", gateway.DefaultMaxConns, "connections served at once")
	fs.IntVar(&cfg.Workers, "workers", 0, "calls executing at once; more wait in line (0: no cap, a goroutine per call)")
	weight := fs.Int("weight", discovery.DefaultWeight, "share of new sessions and stateless calls, relative to other gateways")
	var gf gossipFlags
	gf.register(fs)
	var lim limitFlags
	lim.register(fs)
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "graftlb gateway: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb gateway:", err)
		return 2
	}
	cfg.Logger = &log
	cfg.Limits = lim.limits()
	for _, name := range strings.Split(*modules, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		mk, ok := exampleModules[name]
		if !ok {
			fmt.Fprintf(stderr, "graftlb gateway: --modules: unknown module %q (have orders, cart, ticker, chaos)\n", name)
			return 2
		}
		cfg.Modules = append(cfg.Modules, mk())
	}
	// Gossip starts after the listeners (it announces their addresses), but
	// the drain hook must exist before New: it reads the member when it runs.
	// The hook runs under the gateway's state lock, before GOAWAY goes out;
	// gossiping waits for the broadcast, so it runs on a goroutine of its
	// own (waited for before the gateway leaves the cluster) and GOAWAY is
	// not held back by it.
	var gossip atomic.Pointer[discovery.Gossip]
	var gossiping sync.WaitGroup
	cfg.OnStateChange = func(_, to gateway.State) {
		if gs := gossip.Load(); gs != nil && to == gateway.StateDraining {
			gossiping.Add(1)
			go func() {
				defer gossiping.Done()
				if err := gs.SetState(discovery.StateDraining); err != nil {
					log.Warn().Err(err).Msg("gossip draining state")
				}
			}()
		}
	}
	g, err := gateway.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb gateway:", err)
		return 2
	}
	if err := g.Start(); err != nil {
		fmt.Fprintln(stderr, "graftlb gateway:", err)
		return 1
	}
	a := g.Addrs()
	local := discovery.Member{Name: cfg.Name, Role: discovery.RoleGateway, Weight: *weight,
		Addrs: discovery.Addrs{TCP: a.TCP, WS: a.WS, HTTP: a.HTTP}}
	for _, m := range cfg.Modules {
		local.Modules = append(local.Modules, m.Name())
	}
	gs, err := gf.start(local, log)
	if err != nil {
		_ = g.Close()
		fmt.Fprintln(stderr, "graftlb gateway: gossip:", err)
		return 1
	}
	gossip.Store(gs)
	defer leave(gs, log)
	defer gossiping.Wait() // the draining state goes out before the leave
	l := listening{Name: cfg.Name, TCP: a.TCP, WS: a.WS, HTTP: a.HTTP}
	if gs != nil {
		l.Gossip = gs.LocalAddr()
	}
	printListening(stdout, l)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	select {
	case <-g.Done():
		return 1
	case sig := <-sigs:
		log.Info().Stringer("signal", sig).Msg("draining")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainGrace+5*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- g.Drain(ctx) }()
	select {
	case err := <-drained:
		if err != nil {
			log.Warn().Err(err).Msg("drain ended early")
		}
	case sig := <-sigs:
		log.Warn().Stringer("signal", sig).Msg("second signal: stopping now")
		_ = g.Close()
		<-drained
	}
	log.Info().Msg("stopped")
	return 0
}
