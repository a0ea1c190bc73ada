package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
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
	fs.StringVar(&kinds, "kinds", "", "fault kinds to draw from, comma-separated (default all: "+strings.Join(chaos.AllFaults, ",")+")")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", 0, "the gateways' session TTL (default 2m)")
	fs.DurationVar(&cfg.DrainGrace, "drain-grace", 0, "the gateways' drain grace (default 10s)")
	fs.DurationVar(&cfg.RecoveryBound, "recovery-bound", 0, "recovery after a fault longer than this is a violation (default 30s)")
	fs.StringVar(&cfg.LogDir, "logs", "", "keep every process's stderr (log level info) in this directory, one file per process")
	fs.StringVar(&jsonPath, "json", "", "write the report as JSON to this file")
	fs.StringVar(&plotPath, "plot", "", "draw calls per second and the faults to this file (.svg or .png)")
	containers := fs.Bool("containers", false, "run in containers on a private network, with partitions (not built yet)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *containers {
		fmt.Fprintln(stderr, "graftlb chaos: --containers is not built yet; processes only (no partitions)")
		return 2
	}
	if kinds != "" {
		for _, k := range strings.Split(kinds, ",") {
			if !slices.Contains(chaos.AllFaults, k) {
				fmt.Fprintf(stderr, "graftlb chaos: unknown fault kind %q (kinds: %s)\n", k, strings.Join(chaos.AllFaults, ","))
				return 2
			}
			cfg.Kinds = append(cfg.Kinds, k)
		}
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
	bin, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "graftlb chaos:", err)
		return 1
	}
	cfg.Binary, cfg.Log = bin, stderr
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
