package balancer

import (
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names and help, the contract README's "Watching it" lists.
var (
	descCalls = prometheus.NewDesc("graftlb_calls_total",
		"Calls settled, by the gateway that answered them (\"\" when none took them), module, kind (stateless or stateful) and outcome code (OK for a RESULT).",
		[]string{"gateway", "module", "kind", "code"}, nil)
	descDuration = prometheus.NewDesc("graftlb_call_duration_seconds",
		"Round trip of the calls gateways answered, from the proxy's forward to the answer.",
		[]string{"gateway", "kind"}, nil)
	descUp = prometheus.NewDesc("graftlb_gateway_up",
		"1 when the proxy routes new sessions and stateless calls to the gateway (connected, healthy or in panic mode, not draining).",
		[]string{"gateway"}, nil)
	descState = prometheus.NewDesc("graftlb_gateway_state",
		"1 when the gateway is in the state: connected, check_failing (active checks down), ejected (outlier detection), breaker_open, breaker_half_open, draining (the gateway says so), admin_drained (an operator drained it here).",
		[]string{"gateway", "state"}, nil)
	descInFlight = prometheus.NewDesc("graftlb_gateway_in_flight",
		"Calls forwarded to the gateway and not answered yet.", []string{"gateway"}, nil)
	descLatency = prometheus.NewDesc("graftlb_gateway_latency_estimate_seconds",
		"The picker's latency estimate of the gateway (decaying EWMA of round trips).", []string{"gateway"}, nil)
	descGwConns = prometheus.NewDesc("graftlb_gateway_connections",
		"Multiplexed connections from the proxy to the gateway that are up.", []string{"gateway"}, nil)
	descBound = prometheus.NewDesc("graftlb_sessions_bound",
		"Sessions this proxy has confirmed on the gateway.", []string{"gateway"}, nil)
	descPlaced = prometheus.NewDesc("graftlb_sessions_placed_total",
		"Sessions this proxy confirmed on the gateway (placed, or found by the NOT_OWNER walk).", []string{"gateway"}, nil)
	descLost = prometheus.NewDesc("graftlb_sessions_lost_total",
		"Sessions lost, by the gateway that held them (\"\": resumed sessions no gateway held).", []string{"gateway"}, nil)
	descEjections = prometheus.NewDesc("graftlb_ejections_total",
		"Times outlier detection ejected the gateway.", []string{"gateway"}, nil)
	descTrips = prometheus.NewDesc("graftlb_breaker_trips_total",
		"Times the gateway's circuit breaker opened.", []string{"gateway"}, nil)
	descBytesOut = prometheus.NewDesc("graftlb_gateway_sent_bytes_total",
		"Bytes of calls the proxy forwarded to the gateway.", []string{"gateway"}, nil)
	descBytesIn = prometheus.NewDesc("graftlb_gateway_received_bytes_total",
		"Bytes of answers the proxy received from the gateway.", []string{"gateway"}, nil)
	descMembers = prometheus.NewDesc("graftlb_pool_members",
		"Gateways in the pool by state: ready, draining or down.", []string{"state"}, nil)
	descPanic = prometheus.NewDesc("graftlb_panic_mode",
		"1 while too few gateways are healthy and the proxy spreads over every connected one.", nil, nil)
	descDraining = prometheus.NewDesc("graftlb_draining",
		"1 while the proxy itself drains (SIGTERM).", nil, nil)
	descSessions = prometheus.NewDesc("graftlb_sessions",
		"Sessions in the proxy's table.", nil, nil)
	descActive = prometheus.NewDesc("graftlb_calls_in_flight",
		"Client calls in flight through the proxy.", nil, nil)
	descClientConns = prometheus.NewDesc("graftlb_client_connections",
		"Client connections, by binding (tcp or ws).", []string{"binding"}, nil)
	descCounters = []struct {
		d   *prometheus.Desc
		get func(*stats) int64
	}{
		{prometheus.NewDesc("graftlb_retries_total", "Retries of calls whose gateway failed, taken from the retry budget.", nil, nil),
			func(s *stats) int64 { return s.retries.Load() }},
		{prometheus.NewDesc("graftlb_retries_denied_total", "Retries the retry budget refused.", nil, nil),
			func(s *stats) int64 { return s.retriesDenied.Load() }},
		{prometheus.NewDesc("graftlb_not_owner_walks_total", "NOT_OWNER answers that moved a session down its preference list.", nil, nil),
			func(s *stats) int64 { return s.notOwnerWalks.Load() }},
		{prometheus.NewDesc("graftlb_callbacks_delivered_total", "CALLBACKs of gateways delivered to clients.", nil, nil),
			func(s *stats) int64 { return s.callbacks.Load() }},
		{prometheus.NewDesc("graftlb_callbacks_dropped_total", "CALLBACKs whose session had no client connection (answered UNAVAILABLE).", nil, nil),
			func(s *stats) int64 { return s.callbacksDropped.Load() }},
		{prometheus.NewDesc("graftlb_events_delivered_total", "Session EVENTs of gateways delivered to clients.", nil, nil),
			func(s *stats) int64 { return s.events.Load() }},
		{prometheus.NewDesc("graftlb_events_dropped_total", "Session EVENTs dropped: the session had no client connection.", nil, nil),
			func(s *stats) int64 { return s.eventsDropped.Load() }},
		{prometheus.NewDesc("graftlb_topic_events_delivered_total", "Topic EVENTs delivered to subscribed sessions.", nil, nil),
			func(s *stats) int64 { return s.topicDeliveries.Load() }},
		{prometheus.NewDesc("graftlb_deadlines_exceeded_total", "Calls the proxy failed with DEADLINE_EXCEEDED.", nil, nil),
			func(s *stats) int64 { return s.deadlinesExceeded.Load() }},
		{prometheus.NewDesc("graftlb_try_timeouts_total", "Attempts of idempotent calls abandoned for another gateway after --try-timeout.", nil, nil),
			func(s *stats) int64 { return s.tryTimeouts.Load() }},
		{prometheus.NewDesc("graftlb_late_replies_total", "Gateway replies dropped: their call's deadline passed at the proxy or its attempt was abandoned.", nil, nil),
			func(s *stats) int64 { return s.lateReplies.Load() }},
		{prometheus.NewDesc("graftlb_session_lost_notices_total", "$session_lost EVENTs sent to clients.", nil, nil),
			func(s *stats) int64 { return s.lostNotices.Load() }},
		{prometheus.NewDesc("graftlb_unauthenticated_total", "HELLOs refused UNAUTHENTICATED (missing or bad credential).", nil, nil),
			func(s *stats) int64 { return s.unauthenticated.Load() }},
		{prometheus.NewDesc("graftlb_module_calls_refused_total", "Calls refused OVERLOADED by max_module_calls.", nil, nil),
			func(s *stats) int64 { return s.moduleCallsRefused.Load() }},
	}
)

// gatewayStates are the states of graftlb_gateway_state.
var gatewayStates = [...]string{"connected", "check_failing", "ejected", "breaker_open", "breaker_half_open", "draining", "admin_drained"}

// latencyBoundsSeconds are latencyBounds in seconds, the le labels.
var latencyBoundsSeconds = func() []float64 {
	out := make([]float64, len(latencyBounds))
	for i, b := range latencyBounds {
		out[i] = float64(b) / 1e9
	}
	return out
}()

// collector exposes a proxy's metrics to Prometheus, reading its atomics
// at scrape time.
type collector struct{ p *Proxy }

// Collector returns a prometheus.Collector of the proxy's metrics (the
// graftlb_* names README lists). Register it with a registry of your own,
// with the Go and process collectors beside it.
func (p *Proxy) Collector() prometheus.Collector { return collector{p} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCalls, descDuration, descUp, descState, descInFlight, descLatency, descGwConns,
		descBound, descPlaced, descLost, descEjections, descTrips, descBytesOut, descBytesIn, descMembers, descPanic,
		descDraining, descSessions, descActive, descClientConns} {
		ch <- d
	}
	for _, dc := range descCounters {
		ch <- dc.d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, g := range p.metrics.all() {
		collectCalls(ch, g)
		counter(descLost, float64(g.lost.Load()), g.name)
		if g.name == "" {
			continue // the unrouted: no gateway, no latency
		}
		for k := range numKinds {
			counts, total, sum := g.lat[k].snapshot()
			buckets := make(map[float64]uint64, len(latencyBoundsSeconds))
			var cum uint64
			for i, le := range latencyBoundsSeconds {
				cum += counts[i]
				buckets[le] = cum
			}
			ch <- prometheus.MustNewConstHistogram(descDuration, total, sum, buckets, g.name, kindNames[k])
		}
		counter(descPlaced, float64(g.placed.Load()), g.name)
		counter(descEjections, float64(g.ejections.Load()), g.name)
		counter(descTrips, float64(g.trips.Load()), g.name)
		counter(descBytesOut, float64(g.bytesOut.Load()), g.name)
		counter(descBytesIn, float64(g.bytesIn.Load()), g.name)
	}

	pk := p.picker.Load()
	now := p.now()
	members := map[string]int{"ready": 0, "draining": 0, "down": 0}
	for i, b := range pk.backends {
		name := b.name
		gauge(descUp, b01(pk.admit[i]), name)
		br := health.Closed
		if b.breaker != nil {
			br = b.breaker.State()
		}
		for _, st := range gatewayStates {
			var on bool
			switch st {
			case "connected":
				on = b.up.Load()
			case "check_failing":
				on = !b.checkUp.Load()
			case "ejected":
				on = b.ejected.Load()
			case "breaker_open":
				on = br == health.Open
			case "breaker_half_open":
				on = br == health.HalfOpen
			case "draining":
				on = b.draining.Load()
			case "admin_drained":
				on = b.adminDrain.Load()
			}
			gauge(descState, b01(on), name, st)
		}
		gauge(descInFlight, float64(b.outstanding.Load()), name)
		gauge(descLatency, float64(decayed(b.ewma.Load(), now-b.lastSample.Load()))/1e9, name)
		gauge(descGwConns, float64(len(*b.conns.Load())), name)
		gauge(descBound, float64(b.sessions.Load()), name)
		switch {
		case !b.up.Load():
			members["down"]++
		case b.draining.Load() || b.adminDrain.Load():
			members["draining"]++
		default:
			members["ready"]++
		}
	}
	for st, n := range members {
		gauge(descMembers, float64(n), st)
	}
	gauge(descPanic, b01(pk.panic))
	gauge(descDraining, b01(p.draining.Load()))
	gauge(descSessions, float64(p.sessions.len()))
	gauge(descActive, float64(p.active.Load()))
	tcp, ws := p.clientConns()
	gauge(descClientConns, float64(tcp), "tcp")
	gauge(descClientConns, float64(ws), "ws")
	for _, dc := range descCounters {
		counter(dc.d, float64(dc.get(&p.stats)))
	}
}

// collectCalls sends g's call counters: every code that counted a call,
// and OK always for the modules of a gateway (so that rates start at 0).
func collectCalls(ch chan<- prometheus.Metric, g *gwMetrics) {
	send := func(mc *moduleCalls) {
		for k := range numKinds {
			for i := range protocol.CodeSlots {
				n := mc.n[k][i].Load()
				if n == 0 && (i != 0 || g.name == "") {
					continue
				}
				ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(n),
					mc.gateway, mc.module, kindNames[k], protocol.SlotLabel(i))
			}
		}
	}
	for _, mc := range *g.mods.Load() {
		send(mc)
	}
	send(&g.other)
}

// clientConns counts the client connections by binding.
func (p *Proxy) clientConns() (tcp, ws int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d := range p.downs {
		if d.pc.IsWebSocket() {
			ws++
		} else {
			tcp++
		}
	}
	return tcp, ws
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// callCount returns the calls counted for gateway ("" for those no
// gateway took) with outcome code label code ("OK", "SESSION_LOST", ...),
// over every module and kind: what graftlb_calls_total sums to.
func (p *Proxy) callCount(gateway, code string) uint64 {
	var n uint64
	for _, g := range p.metrics.all() {
		if g.name != gateway {
			continue
		}
		add := func(mc *moduleCalls) {
			for k := range numKinds {
				for i := range protocol.CodeSlots {
					if protocol.SlotLabel(i) == code {
						n += mc.n[k][i].Load()
					}
				}
			}
		}
		for _, mc := range *g.mods.Load() {
			add(mc)
		}
		add(&g.other)
	}
	return n
}
