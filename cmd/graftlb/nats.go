package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/admin"
	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/jobs"
	"github.com/graftlb/graftlb/transport"
)

// The NATS transport's flags (issue 15; README, Transports): the proxy's
// --nats, --route and limits, the gateway's --nats and subscriptions, and
// `graftlb nats`, an embedded server on its own.

func init() {
	exampleModules["jobs"] = func() *gateway.Module { return jobs.Module(jobsRecorder) }
}

// jobsRecorder records the executions of jobs@1 (--jobs-log).
var jobsRecorder = &jobs.Recorder{}

// embeddedFlags configure an embedded nats-server.
type embeddedFlags struct {
	listen, store string
}

func (e *embeddedFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.listen, "nats-listen", "127.0.0.1:0", "embedded NATS server: listen address (port 0 picks one)")
	fs.StringVar(&e.store, "nats-store", "", "embedded NATS server: JetStream store directory (default: a temporary one, removed at exit)")
}

func (e *embeddedFlags) start() (*transport.Embedded, error) {
	return transport.StartEmbedded(transport.EmbeddedConfig{Addr: e.listen, StoreDir: e.store})
}

// natsProxyFlags are the proxy's NATS flags.
type natsProxyFlags struct {
	url    string
	routes repeatFlag
	emb    embeddedFlags
	cfg    transport.Config
	tr     *transport.NATS // set by start
}

func (n *natsProxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.url, "nats", "", "NATS transport: nats://host:port (an external server or cluster) or 'embedded' (run one in this process)")
	fs.Var(&n.routes, "route", "MODULE@V[.Type.Method]=direct|nats:queue|nats:fanout|nats:durable; repeat for more (stateless calls only)")
	n.emb.register(fs)
	fs.DurationVar(&n.cfg.FanoutWindow, "fanout-window", transport.DefaultFanoutWindow, "fan-out calls gather answers this long (at most 90% of the time to their deadline)")
	fs.DurationVar(&n.cfg.NoDeadline, "nats-no-deadline", transport.DefaultNoDeadline, "queue calls without a deadline fail UNAVAILABLE after this long without an answer")
	fs.DurationVar(&n.cfg.DurableTTL, "durable-ttl", transport.DefaultDurableTTL, "the longest a durable call waits to run")
	fs.DurationVar(&n.cfg.DedupWindow, "dedup-window", transport.DefaultDedupWindow, "durable calls submitted again within this window are dropped")
	fs.IntVar(&n.cfg.MaxPending, "nats-max-pending", transport.DefaultMaxPending, "queue and fan-out calls awaiting answers at once (more: OVERLOADED)")
}

// start connects the proxy to NATS (starting the embedded server first)
// and sets cfg's routes; stop undoes it after the proxy closed. url is
// the server's, for the listening line.
func (n *natsProxyFlags) start(cfg *balancer.Config, log *zerolog.Logger) (url string, stop func(), err error) {
	rs, err := transport.ParseRoutes(n.routes)
	if err != nil {
		return "", nil, err
	}
	if n.url == "" {
		if rs.Uses() {
			return "", nil, fmt.Errorf("--route names a NATS transport: give --nats URL or --nats embedded")
		}
		cfg.Routes = rs
		return "", func() {}, nil
	}
	var emb *transport.Embedded
	url = n.url
	if url == "embedded" {
		if emb, err = n.emb.start(); err != nil {
			return "", nil, err
		}
		url = emb.URL()
	}
	tc := n.cfg
	tc.URL = url
	l := log.With().Str("transport", "nats").Logger()
	tc.Logger = &l
	tr, err := transport.Connect(tc)
	if err != nil {
		if emb != nil {
			emb.Shutdown()
		}
		return "", nil, err
	}
	cfg.Routes, cfg.Transport = rs, tr
	n.tr = tr
	return url, func() {
		_ = tr.Close()
		if emb != nil {
			emb.Shutdown()
		}
	}, nil
}

// handleAdmin serves GET /transport on the admin listener: the routes and
// what the NATS transport refused or lost (malformed and stray replies,
// disconnects, calls failed in flight).
func (n *natsProxyFlags) handleAdmin(adm *admin.Server, routes func() *transport.Routes) {
	if n.tr == nil {
		return
	}
	adm.HandleJSON("/transport", func() any {
		return map[string]any{"nats": n.tr.URL(), "routes": routes().Strings(), "counters": n.tr.Counters.Values()}
	})
}

// natsGatewayFlags are the gateway's NATS flags.
type natsGatewayFlags struct {
	url       string
	modules   listFlag
	subscribe listFlag
	jobsLog   string
	cfg       transport.SubscriberConfig
}

func (n *natsGatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.url, "nats", "", "NATS transport: subscribe the gateway's modules on this server (nats://host:port)")
	fs.Var(&n.modules, "nats-modules", "module@version names to subscribe on NATS, comma-separated (default: every module hosted)")
	fs.Var(&n.subscribe, "nats-subscribe", "subjects to subscribe: queue, fanout, durable, comma-separated (default: all three)")
	fs.IntVar(&n.cfg.DurableWorkers, "durable-workers", transport.DefaultDurableWorkers, "durable calls running at once (each worker pulls one message)")
	fs.DurationVar(&n.cfg.AckWait, "durable-ack-wait", transport.DefaultAckWait, "JetStream redelivers a durable call not acked (nor reported in progress) this long")
	fs.IntVar(&n.cfg.MaxDeliver, "durable-max-deliver", transport.DefaultMaxDeliver, "deliveries of one durable call at most")
	fs.StringVar(&n.jobsLog, "jobs-log", "", "module jobs@1: append a JSON line per job start and finish to this file")
}

// start subscribes g to NATS when --nats is set; stop leaves.
func (n *natsGatewayFlags) start(g *gateway.Gateway) (stop func(), err error) {
	if n.jobsLog != "" {
		f, err := os.OpenFile(n.jobsLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--jobs-log: %w", err)
		}
		jobsRecorder.SetWriter(f)
	}
	if n.url == "" {
		return func() {}, nil
	}
	cfg := n.cfg
	cfg.URL, cfg.Modules = n.url, n.modules
	for _, s := range n.subscribe {
		switch strings.TrimSpace(s) {
		case "queue":
			cfg.Queue = true
		case "fanout":
			cfg.Fanout = true
		case "durable":
			cfg.Durable = true
		default:
			return nil, fmt.Errorf("--nats-subscribe: unknown subject kind %q (want queue, fanout, durable)", s)
		}
	}
	sub, err := g.ServeNATS(cfg)
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Close() }, nil
}

// runNATS is `graftlb nats`: an embedded NATS server with JetStream on its
// own, for gateways and proxies to share.
func runNATS(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e embeddedFlags
	e.register(fs)
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb nats:", err)
		return 2
	}
	sigs, stopSignals := serverSignals()
	defer stopSignals()
	srv, err := e.start()
	if err != nil {
		fmt.Fprintln(stderr, "graftlb nats:", err)
		return 1
	}
	printListening(stdout, listening{Name: "nats", NATS: srv.URL()})
	sig := awaitStop(sigs, &reloads{log: &log})
	log.Info().Stringer("signal", sig).Msg("stopping")
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		log.Warn().Msg("nats server did not stop within 10s")
	}
	return 0
}
