package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/graftlb/graftlb/bench"
	"github.com/graftlb/graftlb/chaos"
)

func runChaos(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg chaos.Config
	var jsonPath, plotPath, kinds string
	fs.IntVar(&cfg.Proxies, "proxies", 2, "proxies to start")
	fs.IntVar(&cfg.Gateways, "gateways", 5, "gateways to start")
	fs.IntVar(&cfg.Faults, "faults", 0, "faults to run (default 20 unless --duration)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "run faults for this long instead of a count")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of the fault schedule (default: from the clock; printed)")
	fs.BoolVar(&cfg.KeepGoing, "keep-going", false, "run on after a violation")
	fs.Float64Var(&cfg.MaxShare, "max-share", 0.4, "share of the gateways under a fault at once")
	fs.StringVar(&kinds, "kinds", "", "fault kinds to draw from, comma-separated (default all that --net allows: "+strings.Join(chaos.AllFaults, ",")+
		"; with --net netns also "+strings.Join(chaos.PartitionFaults, ",")+")")
	fs.StringVar(&cfg.Net, "net", chaos.NetLoopback, "where the processes run: loopback (all on 127.0.0.1, no partitions) or netns "+
		"(each in a network namespace of its own on a private bridge, so that partitions are real; needs root, ip and nft)")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", 0, "the gateways' session TTL (default 2m)")
	fs.DurationVar(&cfg.DrainGrace, "drain-grace", 0, "the gateways' drain grace (default 10s)")
	fs.DurationVar(&cfg.RecoveryBound, "recovery-bound", 0, "recovery after a fault longer than this is a violation (default 30s)")
	fs.StringVar(&cfg.LogDir, "logs", "", "keep every process's stderr in this directory, one file per process (gateways at debug level, proxies at info)")
	fs.StringVar(&jsonPath, "json", "", "write the report as JSON to this file")
	fs.StringVar(&plotPath, "plot", "", "draw calls per second and the faults to this file (.svg or .png)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if kinds != "" {
		cfg.Kinds = strings.Split(kinds, ",")
	}
	bin, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "graftlb chaos:", err)
		return 1
	}
	cfg.Binary = bin
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "graftlb", err)
		return 2
	}
	if plotPath != "" {
		if err := bench.CheckPlotPath(plotPath); err != nil {
			fmt.Fprintln(stderr, "graftlb chaos:", err)
			return 2
		}
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "graftlb chaos:", err)
			return 2
		}
	}
	cfg.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb chaos:", err)
		return 1
	}
	res.WriteSummary(stdout)
	if jsonPath != "" {
		if err := bench.WriteJSON(jsonPath, res); err != nil {
			fmt.Fprintln(stderr, "graftlb chaos:", err)
			return 1
		}
	}
	if plotPath != "" {
		if err := res.WritePlot(plotPath); err != nil {
			fmt.Fprintln(stderr, "graftlb chaos:", err)
			return 1
		}
	}
	if !res.OK() {
		return 1
	}
	return 0
}
