package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/flagfile"
	"github.com/graftlb/graftlb/transport"
	"github.com/rs/zerolog"
)

// The config file (--config, README "Configuration"): every flag of
// gateway and proxy has a key of its name in a YAML file, the command line
// overrides the file, --check-config validates and exits, and SIGHUP reads
// the file again and applies what a running process can change.

// fileFlags are --config and --check-config.
type fileFlags struct {
	check bool
	set   *flagfile.Set // after parse
}

func (f *fileFlags) register(fs *flag.FlagSet) {
	fs.String(flagfile.ConfigFlag, "", "YAML config file: a key per flag (max-conns: 5000, backend: [tcp://a:8990]); "+
		"flags on the command line override it; SIGHUP reloads it")
	fs.BoolVar(&f.check, "check-config", false, "validate the flags and the config file, bind nothing, and exit 0 (valid) or 1")
}

// parse parses args and the config file into fs; errors are printed.
func (f *fileFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	set, err := flagfile.Parse(fs, args)
	if err != nil {
		if fe := (*flagfile.FileError)(nil); errors.As(err, &fe) {
			fmt.Fprintf(stderr, "graftlb %s: %v\n", fs.Name(), err) // fs.Parse prints its own errors
		}
		return err
	}
	f.set = set
	return nil
}

// exit is the exit code for a failure that would be code: with
// --check-config every failure is 1.
func (f *fileFlags) exit(code int) int {
	if f.check {
		return 1
	}
	return code
}

// flagValues returns every flag's value as a string.
func flagValues(fs *flag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = f.Value.String() })
	return out
}

// unreloadable returns, sorted, the flags outside live whose values
// differ between was and now: what a reload asked for and cannot do.
func unreloadable(was, now map[string]string, live map[string]bool) []string {
	var out []string
	for name, v := range now {
		if !live[name] && was[name] != v {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// flagSet turns a list of names into a set.
func flagSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Flags every reloading command applies live.
var commonLive = []string{flagfile.ConfigFlag, "check-config", "log-level"}

// proxyLive are the proxy's flags a SIGHUP applies; any other flag that
// the file changes is refused with a warning (so that a flag added later
// is refused until someone makes it live and lists it here).
var proxyLive = flagSet(append([]string{
	"backend", "backend-dns", "dns-interval", "join",
	"max-conns", "max-conns-per-source", "dial-timeout", "retry-budget", "try-timeout", "call-timeout",
	"drain-grace", "drain-delay", "max-sessions", "max-sessions-per-source", "max-sessions-per-conn",
	"call-rate", "call-burst", "session-idle", "session-load-bound", "access-log-sample", "trace-ids",
	"check-interval", "check-timeout", "fall", "rise", "eject-consecutive", "eject-time", "max-ejection-percent",
	"panic-threshold", "breaker-failure-rate", "breaker-open-timeout", "breaker-max-concurrent",
	"max-inflight", "idle-timeout", "hello-timeout", "max-pending-write", "write-timeout", "route", "max-module-calls",
}, commonLive...)...)

// fixedLive are the flags a SIGHUP applies on a command that reloads its
// log level only: the gateway and the pass-through proxy.
var fixedLive = flagSet(commonLive...)

// reloads are what SIGHUP runs, in order: the config file's reload, then
// the listeners' certificate and key files (ReloadTLS: a no-op without
// TLS). A failing one is logged and the next still runs.
type reloads struct {
	log *zerolog.Logger
	mu  sync.Mutex
	fns []namedReload
}

type namedReload struct {
	name string
	fn   func() error
}

// add registers fn to run on SIGHUP under name (for the logs).
func (r *reloads) add(name string, fn func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fns = append(r.fns, namedReload{name, fn})
}

// run runs every reload function.
func (r *reloads) run() {
	r.mu.Lock()
	fns := slices.Clone(r.fns)
	r.mu.Unlock()
	if len(fns) == 0 {
		r.log.Info().Msg("SIGHUP: nothing to reload; still running")
		return
	}
	r.log.Info().Msg("SIGHUP: reloading")
	for _, f := range fns {
		if err := f.fn(); err != nil {
			r.log.Error().Err(err).Str("reload", f.name).Msg("SIGHUP: reload failed; still running with the previous settings")
		}
	}
}

// levelFilter drops the log events under its level, which a reload
// changes: the logger itself logs at debug, so that a reload can turn
// debug logs on.
type levelFilter struct {
	w   io.Writer
	min *atomic.Int32 // a zerolog.Level
}

func (f levelFilter) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f levelFilter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < zerolog.Level(f.min.Load()) && l != zerolog.NoLevel {
		return len(p), nil
	}
	return f.w.Write(p)
}

// checkAddrSyntax checks a listener address (empty: off) without binding.
func checkAddrSyntax(flagName, addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: %w", flagName, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--%s %q: port %q: want 0 to 65535", flagName, addr, port)
	}
	return nil
}

// proxyPool is the proxy's pool source as the flags describe it.
type proxyPool struct {
	static   []discovery.Member
	dns      string
	interval time.Duration
	join     []string
	routes   *transport.Routes
}

// checkProxyPool parses the pool and routes the flags give, binding and
// resolving nothing.
func checkProxyPool(backends []string, dns string, interval time.Duration, gf *gossipFlags, nf *natsProxyFlags) (proxyPool, error) {
	pp := proxyPool{dns: dns, interval: interval, join: gf.join}
	var err error
	if len(backends) > 0 {
		if pp.static, err = discovery.ParseBackends(backends); err != nil {
			return pp, err
		}
	}
	if dns != "" {
		dc := discovery.DefaultDNSConfig(dns)
		dc.Interval = interval
		if err := dc.Validate(); err != nil {
			return pp, err
		}
	}
	if gf.bind != "" {
		if err := gf.config(nil).Validate(); err != nil {
			return pp, err
		}
	}
	if pp.routes, err = transport.ParseRoutes(nf.routes); err != nil {
		return pp, err
	}
	if pp.routes.Uses() && nf.url == "" {
		return pp, fmt.Errorf("--route names a NATS transport: give --nats URL or --nats embedded")
	}
	return pp, nil
}

// checkProxy is --check-config: everything the flags and the file
// describe is parsed and validated, nothing is bound, dialled or resolved.
func checkProxy(cfg balancer.Config, adminAddr string, backends, passthroughs []string, ptKey, dns string, interval time.Duration,
	gf *gossipFlags, nf *natsProxyFlags) error {
	for _, a := range []struct{ flag, addr string }{{"tcp", cfg.TCP}, {"ws", cfg.WS}, {"admin", adminAddr}, {"gossip", gf.bind}} {
		if err := checkAddrSyntax(a.flag, a.addr); err != nil {
			return err
		}
	}
	if len(passthroughs) > 0 {
		if _, err := discovery.ParseBackends(passthroughs); err != nil {
			return err
		}
		if _, err := affinity.ParseKeySource(ptKey); err != nil {
			return err
		}
	}
	if _, err := checkProxyPool(backends, dns, interval, gf, nf); err != nil {
		return err
	}
	return cfg.Validate()
}

// proxyReloader is the proxy's SIGHUP: the flags parsed again from the
// command line and the file, and what changed applied to the running
// proxy and its pool source.
type proxyReloader struct {
	ff      *fileFlags
	fs      *flag.FlagSet
	started map[string]string // every flag's value at start
	log     *zerolog.Logger
	lf      *logFlags
	p       *balancer.Proxy
	flagged func() balancer.Config // the config the flags describe now
	// pool reads the pool flags; static, dns and gossip are the running
	// source (one of them, or none: NATS alone).
	pool   func() (proxyPool, error)
	static *discovery.Static
	dns    *discovery.DNS
	gossip *discovery.Gossip
	// applied is told the pool flags and drain grace of each reload that
	// applied, for /config and the drain.
	applied  func(pp proxyPool, backends []string, drainGrace time.Duration)
	backends *repeatFlag
	grace    *time.Duration
}

// retireGrace bounds how long a reload waits for the calls in flight on
// the gateways it removes from a static pool.
const retireGrace = 5 * time.Second

func (r *proxyReloader) reload() error {
	if err := r.ff.set.Reparse(); err != nil {
		return err
	}
	pp, err := r.pool()
	if err != nil {
		return err
	}
	now := flagValues(r.fs)
	refused := unreloadable(r.started, now, proxyLive)
	kind := func(v map[string]string) string {
		switch {
		case v["backend"] != "":
			return "backend"
		case v["backend-dns"] != "":
			return "backend-dns"
		}
		return ""
	}
	sourceChanged := kind(now) != kind(r.started)
	if sourceChanged {
		refused = append(refused, "pool source ("+kind(r.started)+" → "+kind(now)+")")
	}
	next := r.flagged()
	next.Routes = pp.routes
	lvl, err := zerolog.ParseLevel(r.lf.level)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	kept, err := r.p.Reload(next)
	if err != nil {
		return err
	}
	if !sourceChanged {
		switch {
		case r.static != nil:
			r.applyStatic(pp.static)
		case r.dns != nil:
			if err := r.dns.Reconfigure(pp.dns, pp.interval, 0); err != nil {
				r.log.Error().Err(err).Msg("SIGHUP: --backend-dns not changed")
			}
		}
	}
	if r.gossip != nil {
		if err := r.gossip.SetJoin(pp.join); err != nil {
			r.log.Error().Err(err).Msg("SIGHUP: --join not changed")
		}
	}
	r.lf.live.Store(int32(lvl))
	r.applied(pp, slices.Clone(*r.backends), *r.grace)
	ev := r.log.Info()
	if len(refused) > 0 || len(kept) > 0 {
		ev = r.log.Warn().Strs("not_reloaded", refused).Strs("kept", kept).
			Str("hint", "listeners, name, gossip, NATS, pass-through and the pool source kind change only with a restart")
	}
	ev.Str("config", configName(r.ff.set.Path())).Msg("SIGHUP: configuration reloaded")
	return nil
}

// applyStatic retires the gateways a reload removes from the static list,
// so that their calls in flight finish, then publishes the new list.
func (r *proxyReloader) applyStatic(ms []discovery.Member) {
	var removed []string
	for _, m := range r.static.Snapshot().Members() {
		if !slices.ContainsFunc(ms, func(n discovery.Member) bool { return n.Name == m.Name }) {
			removed = append(removed, m.Name)
		}
	}
	if len(removed) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), retireGrace)
		r.p.Retire(ctx, removed)
		cancel()
	}
	if r.static.Set(ms) {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.Name
		}
		r.log.Info().Strs("gateways", names).Strs("removed", removed).Msg("SIGHUP: static pool changed")
	}
}

// configName names the config file for a message.
func configName(path string) string {
	if path == "" {
		return "flags only, no config file"
	}
	return path
}

// reloadFixed is the SIGHUP of a command that changes nothing live but its
// log level: the file is read and checked again, the level applied, and
// every other change refused with a warning naming the flags.
func reloadFixed(ff *fileFlags, fs *flag.FlagSet, started map[string]string, live map[string]bool,
	lf *logFlags, log *zerolog.Logger, what string) error {
	if err := ff.set.Reparse(); err != nil {
		return err
	}
	lvl, err := zerolog.ParseLevel(lf.level)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	lf.live.Store(int32(lvl))
	ev := log.Info()
	if refused := unreloadable(started, flagValues(fs), live); len(refused) > 0 {
		ev = log.Warn().Strs("not_reloaded", refused).Str("hint", "a "+what+" reloads only its log level; the rest needs a restart")
	}
	ev.Str("config", configName(ff.set.Path())).Msg("SIGHUP: configuration reloaded")
	return nil
}

// checkGateway is the gateway's --check-config beyond gateway.New's
// validation: listener and gossip address syntax.
func checkGateway(cfg gateway.Config, gf *gossipFlags) error {
	for _, a := range []struct{ flag, addr string }{{"tcp", cfg.TCP}, {"ws", cfg.WS}, {"http", cfg.HTTP}, {"gossip", gf.bind}} {
		if err := checkAddrSyntax(a.flag, a.addr); err != nil {
			return err
		}
	}
	if gf.bind != "" {
		return gf.config(nil).Validate()
	}
	return nil
}
