package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/graftlb/graftlb/demo"
	"github.com/mattn/go-isatty"
)

// runDemo runs `graftlb demo`; the demo package holds the logic. The first
// Ctrl-C (or SIGTERM) ends the demo cleanly; a second one kills it at once
// (on Linux the kernel then kills its children).
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg demo.Config
	fs.IntVar(&cfg.Gateways, "gateways", demo.DefaultGateways,
		fmt.Sprintf("gateways to start (%d to %d); one more joins in step 3", demo.MinGateways, demo.MaxGateways))
	fs.DurationVar(&cfg.Duration, "duration", demo.DefaultDuration,
		fmt.Sprintf("length of the six steps together (at least %v)", demo.MinDuration))
	color := fs.String("color", "auto", "colour and a live status line: auto (on a terminal, unless $NO_COLOR), always, never")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: graftlb demo [--gateways 4] [--duration 60s] [--color auto]\n\n"+
			"Starts a proxy and gateways on this machine and shows, with live traffic, stateless spread,\n"+
			"stateful affinity, a join, a drain and a kill. Exit code 0: every check held; 1: a check\n"+
			"failed; 130: interrupted.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "graftlb demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	switch *color {
	case "always":
		cfg.Color = true
	case "never":
	case "auto":
		f, ok := stdout.(*os.File)
		cfg.Color = ok && isatty.IsTerminal(f.Fd()) && os.Getenv("NO_COLOR") == ""
	default:
		fmt.Fprintf(stderr, "graftlb demo: --color: want auto, always or never, got %q\n", *color)
		return 2
	}
	cfg.Out = stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // from now on the next signal ends the process at once
	}()
	res, err := demo.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb demo:", err)
		return demo.ExitFail
	}
	return res.ExitCode()
}
