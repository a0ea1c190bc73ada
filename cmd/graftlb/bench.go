package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/graftlb/graftlb/bench"
	"github.com/mattn/go-isatty"
)

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: graftlb bench --target tcp://HOST:PORT [flags]\n       graftlb bench --scenario scaleout|failover|drain|compare|rolling|soak|transport [flags]\n\nflags:")
		fs.PrintDefaults()
	}
	var cfg bench.Config
	target := fs.String("target", "", "tcp://host:port, tls://host:port, ws://host:port[/ws] or wss://host:port[/ws]: a proxy, a gateway, or anything between")
	var ct clientTLSFlags
	ct.register(fs)
	scenario := fs.String("scenario", "", "run a scenario with its own processes: "+strings.Join(bench.Scenarios, ", "))
	workload := fs.String("workload", "", "stateless, stateful, mixed or sleep (default stateless; scenarios pick their own)")
	fs.IntVar(&cfg.Conns, "conns", bench.DefaultConns, "client connections")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "virtual users, spread over the connections")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "how long to send calls (per run)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: calls per second, latency from when each call was due (0: closed loop; soak: 100)")
	fs.DurationVar(&cfg.CallTimeout, "timeout", bench.DefaultCallTimeout, "deadline of each call")
	fs.IntVar(&cfg.SessionCalls, "session-calls", bench.DefaultSessionCalls, "AddItem calls per cart session (stateful, mixed)")
	fs.DurationVar(&cfg.SessionPause, "session-pause", 0, "cart sessions: pause before each call after the first (rolling default 1s)")
	fs.Float64Var(&cfg.Mix, "mix", bench.DefaultMix, "share of stateless calls in the mixed workload")
	fs.DurationVar(&cfg.SleepMin, "sleep-min", bench.DefaultSleepMin, "shortest Chaos.Sleep of the sleep workload")
	fs.DurationVar(&cfg.SleepMax, "sleep-max", bench.DefaultSleepMax, "longest Chaos.Sleep of the sleep workload")
	fs.DurationVar(&cfg.Bucket, "bucket", bench.DefaultBucket, "width of the time series (plot, recovery time)")
	fs.StringVar(&cfg.Label, "label", "", "label of the run in the report (--target)")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	plotPath := fs.String("plot", "", "plot throughput and p99 over time to this file (.svg or .png)")

	var sc bench.Scenario
	fs.IntVar(&sc.Gateways, "gateways", 0, "scenario pool size (default: failover, drain and rolling 4, compare, soak and transport 3)")
	pools := fs.String("pools", "1,2,4,8", "scaleout: pool sizes")
	fs.IntVar(&sc.Workers, "workers", bench.DefaultScaleoutWorkers, "scaleout: calls each gateway executes at once (its capacity)")
	fs.DurationVar(&sc.At, "at", 0, "failover, drain: when to signal the gateway (default 40% of --duration); rolling: the first restart (15%)")
	fs.StringVar(&sc.Target, "victim", bench.DefaultTargetGateway, "failover, drain: the gateway to kill or drain")
	fs.StringVar(&sc.Discovery, "discovery", bench.DiscoveryStatic, "scenario pool: static (--backend list) or gossip")
	fs.StringVar(&sc.HAProxy, "haproxy", "", "compare: haproxy binary (default: haproxy on PATH, or in /usr/sbin)")
	fs.StringVar(&sc.Nginx, "nginx", "", "compare: nginx binary (default: nginx on PATH, or in /usr/sbin)")
	fs.DurationVar(&sc.SampleEvery, "sample-every", bench.DefaultSampleEvery, "soak: how often to sample RSS, goroutines and fds of every process")
	fs.IntVar(&sc.MaxSessions, "max-sessions", bench.DefaultSoakMaxSessions, "soak: the proxy's --max-sessions, the session table the load fills")
	fs.DurationVar(&sc.SessionIdle, "session-idle", bench.DefaultSoakSessionIdle, "soak: the proxy's --session-idle and the gateways' --session-ttl")
	fs.IntVar(&sc.DurableCalls, "durable-calls", bench.DefaultDurableCalls, "transport: durable calls submitted with every gateway stopped")
	fs.StringVar(&sc.Binary, "bin", "", "scenarios: graftlb binary for gateways and proxies (default: this one)")
	var cf credentialFlags // --target only: scenarios start their own proxies, without credentials
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "graftlb bench: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if (*target == "") == (*scenario == "") {
		return usage("give exactly one of --target and --scenario")
	}
	cred, err := cf.credential()
	if err != nil {
		return usage("%v", err)
	}
	if cred != nil && *scenario != "" {
		return usage("--credential and --credential-file are for --target; scenarios run their own proxies without credentials")
	}
	cfg.Client.Credential = cred
	if *workload != "" {
		w, err := bench.ParseWorkload(*workload)
		if err != nil {
			return usage("--workload: %v", err)
		}
		cfg.Workload = w
	}
	if *plotPath != "" {
		if err := bench.CheckPlotPath(*plotPath); err != nil {
			return usage("--plot: %v", err)
		}
	}
	if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		cfg.Progress = stderr
	}

	// The first SIGINT or SIGTERM stops the run and still writes the
	// report; a second one has its default effect (the children die with
	// the bench: PR_SET_PDEATHSIG).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			signal.Stop(sigs)
			fmt.Fprintf(stderr, "\ngraftlb bench: %v: stopping, the report follows (again to quit now)\n", sig)
			cancel()
		case <-ctx.Done():
		}
	}()

	code := 0
	var (
		violations []string
		title      string
		runs       []*bench.Report
		events     []bench.Event
		report     any
		soak       *bench.SoakReport
	)
	if *target != "" {
		cfg.Target = *target
		tc, err := ct.config()
		if err != nil {
			fmt.Fprintln(stderr, "graftlb bench: --tls-ca:", err)
			return 2
		}
		cfg.Client.TLS = tc
		r, err := bench.Start(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "graftlb bench:", err)
			return 1
		}
		rep := r.Wait()
		if err := bench.WriteTable(stdout, rep); err != nil {
			return 1
		}
		violations = rep.Check()
		for _, v := range violations {
			fmt.Fprintln(stdout, "VIOLATION:", v)
		}
		title = fmt.Sprintf("%s: %s", rep.Target, rep.Workload)
		runs, report = []*bench.Report{rep}, rep
	} else {
		sc.Name = *scenario
		sc.Load = cfg
		sc.Log = stderr
		for _, p := range strings.Split(*pools, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return usage("--pools: %q is not a number", p)
			}
			sc.Pools = append(sc.Pools, n)
		}
		if sc.Binary == "" {
			exe, err := os.Executable()
			if err != nil {
				fmt.Fprintln(stderr, "graftlb bench: finding this binary for the scenario's processes:", err)
				return 1
			}
			sc.Binary = exe
		}
		if err := sc.Validate(); err != nil {
			return usage("%v", err)
		}
		rep, err := bench.RunScenario(ctx, sc)
		if err != nil {
			fmt.Fprintln(stderr, "graftlb bench:", err)
			if rep == nil || len(rep.Runs) == 0 {
				return 1
			}
			code = 1
		}
		if err := bench.WriteScenarioTable(stdout, rep); err != nil {
			return 1
		}
		violations = rep.Violations
		title = "scenario " + rep.Scenario
		runs, events, report, soak = rep.Runs, rep.Events, rep, rep.Soak
	}
	if len(violations) > 0 {
		code = 1
	}
	if *jsonPath != "" {
		if err := bench.WriteJSON(*jsonPath, report); err != nil {
			fmt.Fprintln(stderr, "graftlb bench:", err)
			code = 1
		}
	}
	if *plotPath != "" {
		err := bench.WritePlot(*plotPath, title, runs, events)
		if soak != nil {
			err = bench.WriteSoakPlot(*plotPath, title, soak, events)
		}
		if err != nil {
			fmt.Fprintln(stderr, "graftlb bench:", err)
			code = 1
		}
	}
	return code
}
