package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/graftlb/graftlb/protocol"
)

// A gateway's metrics (GET /metrics on its HTTP listener) are counted with
// atomics in tables built at New, one per registered method (methods are
// known at registration), and read by a Prometheus collector at scrape
// time. The names begin with graftlb_gateway_ and carry the gateway's name
// as the gateway label; README's "Watching it" lists them.

// callStats counts the calls of one method by outcome code.
type callStats struct {
	module, method string // module@version, Type.Method
	n              [protocol.CodeSlots]atomic.Uint64
}

// gatewayMetrics are a gateway's counters and its registry.
type gatewayMetrics struct {
	methods  map[*method]*callStats   // read-only after New
	releases map[*typeDesc]*callStats // $release, by type
	other    callStats                // calls of no known method

	events, callbacks, topicEvents atomic.Uint64

	handler fasthttp.RequestHandler // GET /metrics
}

func newGatewayMetrics(g *Gateway) *gatewayMetrics {
	m := &gatewayMetrics{methods: map[*method]*callStats{}, releases: map[*typeDesc]*callStats{},
		other: callStats{module: "other", method: "other"}}
	for name, mod := range g.reg.modules {
		for tname, t := range mod.types {
			for mname, me := range t.static {
				m.methods[me] = &callStats{module: name, method: tname + "." + mname}
			}
			for mname, me := range t.instance {
				m.methods[me] = &callStats{module: name, method: tname + "." + mname}
			}
			if t.ctor != nil {
				m.methods[t.ctor] = &callStats{module: name, method: tname + "." + protocol.MethodNew}
				m.releases[t] = &callStats{module: name, method: tname + "." + protocol.MethodRelease}
			}
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{g}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector())
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// count records a call that ended with code (0: a RESULT).
func (m *gatewayMetrics) count(c *Call, code protocol.Code) {
	var st *callStats
	switch {
	case c.m != nil:
		st = m.methods[c.m]
	case c.typ != nil && c.kind == kindRelease:
		st = m.releases[c.typ]
	}
	if st == nil {
		st = &m.other
	}
	st.n[protocol.CodeSlot(code)].Add(1)
}

var (
	gwDescCalls = prometheus.NewDesc("graftlb_gateway_calls_total",
		"Calls the gateway answered or refused, by module, method (Type.Method) and outcome code (OK for a RESULT).",
		[]string{"gateway", "module", "method", "code"}, nil)
	gwDescExecuting = prometheus.NewDesc("graftlb_gateway_calls_executing",
		"Calls running module code now (with --workers, those holding a worker).", []string{"gateway"}, nil)
	gwDescWaiting = prometheus.NewDesc("graftlb_gateway_calls_waiting",
		"Calls admitted and waiting for a worker (--workers); 0 without a cap.", []string{"gateway"}, nil)
	gwDescSessions = prometheus.NewDesc("graftlb_gateway_sessions_held",
		"Sessions the gateway holds.", []string{"gateway"}, nil)
	gwDescObjects = prometheus.NewDesc("graftlb_gateway_objects_held",
		"Objects ($new) the gateway's sessions hold.", []string{"gateway"}, nil)
	gwDescDraining = prometheus.NewDesc("graftlb_gateway_draining",
		"1 once the gateway drains: it sent GOAWAY and refuses new sessions.", []string{"gateway"}, nil)
	gwDescState = prometheus.NewDesc("graftlb_gateway_serving_state",
		"1 for the gateway's lifecycle state: new, ready, draining or stopped.", []string{"gateway", "state"}, nil)
	gwDescConns = prometheus.NewDesc("graftlb_gateway_peer_connections",
		"Connections of clients and proxies, by binding (tcp, ws).", []string{"gateway", "binding"}, nil)
	gwDescEvents = prometheus.NewDesc("graftlb_gateway_events_sent_total",
		"Session EVENTs the gateway sent.", []string{"gateway"}, nil)
	gwDescCallbacks = prometheus.NewDesc("graftlb_gateway_callbacks_sent_total",
		"CALLBACKs the gateway sent to callers.", []string{"gateway"}, nil)
	gwDescTopic = prometheus.NewDesc("graftlb_gateway_topic_events_sent_total",
		"Topic EVENTs the gateway sent (once per proxy, once per subscribed direct client).", []string{"gateway"}, nil)
)

// collector reads a gateway's counters at scrape time.
type collector struct{ g *Gateway }

// Collector returns a prometheus.Collector of the gateway's metrics, for a
// process that serves its own registry. The gateway's HTTP listener
// serves them, with the Go and process metrics, on GET /metrics.
func (g *Gateway) Collector() prometheus.Collector { return collector{g} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gwDescCalls, gwDescExecuting, gwDescWaiting, gwDescSessions, gwDescObjects,
		gwDescDraining, gwDescState, gwDescConns, gwDescEvents, gwDescCallbacks, gwDescTopic} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	g, m := c.g, c.g.metrics
	name := g.cfg.Name
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	send := func(st *callStats, always bool) {
		for i := range protocol.CodeSlots {
			n := st.n[i].Load()
			if n == 0 && (i != 0 || !always) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(gwDescCalls, prometheus.CounterValue, float64(n), name, st.module, st.method, protocol.SlotLabel(i))
		}
	}
	for _, st := range m.methods {
		send(st, true)
	}
	for _, st := range m.releases {
		send(st, true)
	}
	send(&m.other, false)

	inflight := float64(g.inflight.Load())
	executing, waiting := inflight, 0.0
	if g.workers != nil {
		executing = float64(len(g.workers))
		waiting = max(inflight-executing, 0)
	}
	gauge(gwDescExecuting, executing)
	gauge(gwDescWaiting, waiting)
	sessions, objects := g.sessions.held()
	gauge(gwDescSessions, float64(sessions))
	gauge(gwDescObjects, float64(objects))
	st := g.State()
	gauge(gwDescDraining, b01(st >= StateDraining))
	for s, n := range stateNames {
		gauge(gwDescState, b01(State(s) == st), n)
	}
	tcp, ws := 0, 0
	for _, cn := range g.snapshotConns() {
		if cn.ws != nil {
			ws++
		} else {
			tcp++
		}
	}
	gauge(gwDescConns, float64(tcp), "tcp")
	gauge(gwDescConns, float64(ws), "ws")
	counter(gwDescEvents, m.events.Load())
	counter(gwDescCallbacks, m.callbacks.Load())
	counter(gwDescTopic, m.topicEvents.Load())
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// held returns the sessions that have not expired and the objects they
// hold.
func (t *sessions) held() (sessions, objects int) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.m {
		if t.expiredLocked(s, now) {
			continue
		}
		sessions++
		s.mu.Lock()
		objects += len(s.objects)
		s.mu.Unlock()
	}
	return sessions, objects
}
