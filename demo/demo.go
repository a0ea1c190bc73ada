package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Defaults and bounds of Config.
const (
	DefaultGateways = 4
	MinGateways     = 3
	MaxGateways     = 16
	DefaultDuration = 60 * time.Second
	MinDuration     = 10 * time.Second
)

// Exit codes of `graftlb demo`: ExitPass when every step ran and every
// check held, ExitFail when a check failed or the cluster did not start,
// ExitInterrupted when a signal ended the demo before its last step.
const (
	ExitPass        = 0
	ExitFail        = 1
	ExitInterrupted = 130
)

// Config configures a demo run. The zero value runs the default demo.
type Config struct {
	// Gateways is how many gateways start (default 4, at least 3); one
	// more joins in step 3.
	Gateways int
	// Duration is the length of the six steps together (default 60s, at
	// least 10s); starting and stopping take a few seconds more.
	Duration time.Duration
	// Binary is the graftlb binary run as the children (default: this
	// process's own executable).
	Binary string
	// Out receives the narration (default os.Stdout).
	Out io.Writer
	// Color styles the output for a terminal and shows a live status line.
	Color bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Gateways == 0 {
		c.Gateways = DefaultGateways
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("demo: find the graftlb binary: %w", err)
		}
		c.Binary = exe
	}
	switch {
	case c.Gateways < MinGateways || c.Gateways > MaxGateways:
		return c, fmt.Errorf("demo: gateways: want %d to %d, got %d", MinGateways, MaxGateways, c.Gateways)
	case c.Duration < MinDuration:
		return c, fmt.Errorf("demo: duration: want at least %v, got %v", MinDuration, c.Duration)
	}
	return c, nil
}

// Result is what a run measured and concluded.
type Result struct {
	// Passed is true when every step ran and every check held.
	Passed bool
	// Interrupted is true when ctx ended before the last step did.
	Interrupted bool
	steps       []stepResult
}

// ExitCode maps the result to the command's exit code.
func (r Result) ExitCode() int {
	switch {
	case r.Interrupted:
		return ExitInterrupted
	case r.Passed:
		return ExitPass
	default:
		return ExitFail
	}
}

// demo is one run: the cluster, the load and what the steps found.
type demo struct {
	cfg       Config
	p         *printer
	cl        *cluster
	load      *load
	residents []*shopCart // the long-lived carts, opened in step 2
	// next is the tally the load counts in once a step's time is up: the
	// next step's, or after the last step the one of the load's stop.
	next *tally
}

// Run starts the cluster, runs the six steps with live traffic, stops
// everything and prints the summary. Cancelling ctx (Ctrl-C) ends the
// current step early, stops the load and the children, and reports what
// was measured; the Result then says Interrupted. An error means the
// cluster could not be started; its children are stopped before Run
// returns in every case.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	p := newPrinter(cfg.Out, cfg.Color)
	p.line("%s: %d gateways and a proxy as child processes of this one, about %gs of live traffic.",
		p.bold("graftlb demo"), cfg.Gateways, cfg.Duration.Round(time.Second).Seconds())
	p.say("Gossip between them is encrypted with a key made up for this run; every port is picked by the OS.")
	cl, err := startCluster(ctx, cfg.Binary, cfg.Gateways)
	if err != nil {
		if ctx.Err() != nil {
			p.line("%s before the cluster was up", p.red("INTERRUPTED"))
			return Result{Interrupted: true}, nil
		}
		return Result{}, fmt.Errorf("demo: start the cluster: %w", err)
	}
	defer cl.close()
	p.event("cluster up: the proxy routes to %s", joinNames(cl.live()))
	p.line("  %-6s pid %-7d tcp %-21s admin %s", "proxy", cl.proxy.PID(), cl.proxy.Addr.TCP, cl.adminURL("/"))
	for _, g := range cl.procs()[1:] {
		p.line("  %-6s pid %-7d tcp %-21s http %s", g.Name, g.PID(), g.Addr.TCP, g.Addr.HTTP)
	}
	p.line("  dashboard: %s", p.bold(cl.adminURL("/")))
	p.say("Open the dashboard in a browser to watch the pool live (Prometheus metrics: %s); Ctrl-C stops the demo cleanly.",
		cl.adminURL("/metrics"))

	ld, err := newLoad(ctx, "tcp://"+cl.proxy.Addr.TCP)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Interrupted: true}, nil
		}
		return Result{}, fmt.Errorf("demo: %w", err)
	}
	defer ld.stop()
	d := &demo{cfg: cfg, p: p, cl: cl, load: ld}
	var res Result
	for i, st := range d.steps() {
		if ctx.Err() != nil {
			break
		}
		sr, done := d.runStep(ctx, i+1, st)
		res.steps = append(res.steps, sr)
		if !done {
			break
		}
	}
	res.Interrupted = len(res.steps) < stepCount || !res.steps[len(res.steps)-1].done
	res.Passed = !res.Interrupted
	for _, s := range res.steps {
		for _, c := range s.Checks {
			res.Passed = res.Passed && c.ok
		}
	}

	p.line("")
	if res.Interrupted {
		p.event("interrupted: stopping the load, then the gateways and the proxy")
	} else {
		p.event("stopping the load, then the gateways and the proxy (SIGTERM)")
	}
	ld.stop()
	if d.next != nil {
		c := d.next.snapshot()
		p.event("the load stopped once its sessions in progress were done: %s calls, %s failed, %s misrouted",
			num(c.Calls), num(c.failedCalls()), num(c.Misrouted+c.Wrong))
	}
	cl.close()
	p.event("stopped: %s", exits(cl.procs()))
	if !res.Passed && !res.Interrupted {
		for _, pr := range cl.procs() {
			if t := pr.StderrTail(5); t != "" {
				p.line("  last log lines of %s:\n%s", pr.Name, indent(t, "    "))
			}
		}
	}
	p.summary(res, cl.proxy.Addr.Admin)
	return res, nil
}

// exits describes how the children ended.
func exits(ps []*proc) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		switch code := p.ExitCode(); {
		case p.Forced():
			parts[i] = fmt.Sprintf("%s SIGKILLed (still running %v after SIGTERM)", p.Name, stopGrace)
		case code >= 0:
			parts[i] = fmt.Sprintf("%s exit %d", p.Name, code)
		default:
			parts[i] = p.Name + " killed"
		}
	}
	return strings.Join(parts, ", ")
}

func indent(s, by string) string { return by + strings.ReplaceAll(s, "\n", "\n"+by) }
