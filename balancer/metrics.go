package balancer

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// The proxy's metrics are counted on the forwarding path with atomics only:
// fixed arrays indexed by kind and code, and per gateway a map from module
// to counters that the control goroutine rebuilds (copy on write) when the
// pool announces a new module and that the data path only reads. Nothing is
// allocated and no lock is taken per call; the Prometheus collector
// (metrics_collect.go) reads the atomics when it is scraped.
//
// Labels stay bounded: a module that no gateway of the pool announces is
// counted as "other", and at most maxMetricModules modules get their own
// series.

// Call kinds, the kind label.
const (
	kindStateless = iota
	kindStateful
	numKinds
)

var kindNames = [numKinds]string{"stateless", "stateful"}

// kindOf is the kind of a forwarded call.
func kindOf(pd *call) int {
	if pd.sess == nil {
		return kindStateless
	}
	return kindStateful
}

// maxMetricModules bounds the modules that get series of their own.
const maxMetricModules = 256

// otherModule is the module label of calls of modules the pool does not
// announce (or past maxMetricModules).
const otherModule = "other"

// metricsRetention is how long the counters of a gateway that left the
// pool stay exported, so that a scrape after its death still sees what
// it lost; a gateway that comes back under its name keeps counting on.
const metricsRetention = 10 * time.Minute

// moduleCalls counts one module's calls on one gateway by kind and code.
type moduleCalls struct {
	gateway, module string
	n               [numKinds][protocol.CodeSlots]atomic.Uint64
}

// count records a settled call; a nil mc (metrics off) records nothing.
func (mc *moduleCalls) count(kind int, code protocol.Code) {
	if mc != nil {
		mc.n[kind][protocol.CodeSlot(code)].Add(1)
	}
}

// latencyBounds are the upper bounds of the call latency histogram's
// buckets, nanoseconds: 100 µs to 10 s.
var latencyBounds = [...]int64{
	100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6, 1e9, 2.5e9, 5e9, 10e9,
}

// latencyHist is a histogram of call latencies with atomic buckets (the
// last one is +Inf). The count is the sum of the buckets.
type latencyHist struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64
	sum     atomic.Int64 // nanoseconds
}

func (h *latencyHist) observe(ns int64) {
	i := 0
	for i < len(latencyBounds) && ns > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(ns)
}

// snapshot returns the bucket counts (not cumulative), their total and
// the sum in seconds.
func (h *latencyHist) snapshot() (counts [len(latencyBounds) + 1]uint64, total uint64, sum float64) {
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	return counts, total, float64(h.sum.Load()) / 1e9
}

// gwMetrics are the counters of one gateway, by name: they outlive its
// backend (a gateway that dies and comes back under its name keeps
// counting) for metricsRetention after it left the pool.
type gwMetrics struct {
	name  string
	mods  atomic.Pointer[map[string]*moduleCalls]
	other moduleCalls
	lat   [numKinds]latencyHist

	placed, lost, ejections, trips atomic.Uint64
	bytesIn                        atomic.Uint64 // written by the gateway's connection readers
	// bytesOut is written by every client connection's reader: a cache
	// line of its own, so that it does not bounce the counters the reply
	// path writes.
	_        [56]byte
	bytesOut atomic.Uint64
	_        [56]byte

	goneAt int64 // when its backend left the pool, 0 while in it; under proxyMetrics.mu
}

func newGwMetrics(name string) *gwMetrics {
	g := &gwMetrics{name: name, other: moduleCalls{gateway: name, module: otherModule}}
	g.mods.Store(&map[string]*moduleCalls{})
	return g
}

// module returns the counters of module's calls; nil when metrics are off.
// The lookup m[string(b)] does not allocate.
func (g *gwMetrics) module(module []byte) *moduleCalls {
	if g == nil {
		return nil
	}
	if mc := (*g.mods.Load())[string(module)]; mc != nil {
		return mc
	}
	return &g.other
}

// latency records a call's round trip.
func (g *gwMetrics) latency(pd *call, ns int64) {
	if g != nil {
		g.lat[kindOf(pd)].observe(ns)
	}
}

func (g *gwMetrics) sent(n int) {
	if g != nil {
		g.bytesOut.Add(uint64(n))
	}
}

func (g *gwMetrics) received(n int) {
	if g != nil {
		g.bytesIn.Add(uint64(n))
	}
}

// inc adds one to the counter field of g picks, unless g is nil.
func (g *gwMetrics) inc(field func(*gwMetrics) *atomic.Uint64) {
	if g != nil {
		field(g).Add(1)
	}
}

func placedOf(g *gwMetrics) *atomic.Uint64    { return &g.placed }
func lostOf(g *gwMetrics) *atomic.Uint64      { return &g.lost }
func ejectionsOf(g *gwMetrics) *atomic.Uint64 { return &g.ejections }
func tripsOf(g *gwMetrics) *atomic.Uint64     { return &g.trips }

// ensure adds counters for the modules of known that g lacks (copy on
// write). Only the control goroutine calls it.
func (g *gwMetrics) ensure(known []string) {
	cur := *g.mods.Load()
	missing := 0
	for _, m := range known {
		if cur[m] == nil {
			missing++
		}
	}
	if missing == 0 || len(cur) >= maxMetricModules {
		return
	}
	next := make(map[string]*moduleCalls, len(cur)+missing)
	for k, v := range cur {
		next[k] = v
	}
	for _, m := range known {
		if next[m] == nil && len(next) < maxMetricModules {
			next[m] = &moduleCalls{gateway: g.name, module: m}
		}
	}
	g.mods.Store(&next)
}

// proxyMetrics holds the counters of every gateway the pool had lately,
// and those of calls no gateway took (gateway label "").
type proxyMetrics struct {
	off      bool
	unrouted *gwMetrics // nil when off

	// mu guards gateways; the control goroutine writes it, scrapes read it.
	mu       sync.Mutex
	gateways map[string]*gwMetrics
}

func newProxyMetrics(off bool) *proxyMetrics {
	pm := &proxyMetrics{off: off, gateways: map[string]*gwMetrics{}}
	if !off {
		pm.unrouted = newGwMetrics("")
	}
	return pm
}

// gateway returns the counters of gateway name, creating them; nil when
// metrics are off.
func (pm *proxyMetrics) gateway(name string) *gwMetrics {
	if pm.off {
		return nil
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	g := pm.gateways[name]
	if g == nil {
		g = newGwMetrics(name)
		pm.gateways[name] = g
	}
	g.goneAt = 0
	return g
}

// lostSession counts a session lost just now: on its gateway when it was
// confirmed on one, else as unrouted. Caller holds s.mu.
func (pm *proxyMetrics) lostSession(s *session) {
	g := pm.unrouted
	if s.owner != nil && s.confirmed {
		g = s.owner.m
	}
	g.inc(lostOf)
}

// sync follows a new picker: every gateway's counters get the modules the
// pool announces, and those of gateways gone for metricsRetention are
// dropped. Only the control goroutine calls it.
func (pm *proxyMetrics) sync(pk *snapshot, now int64) {
	if pm.off {
		return
	}
	known := make([]string, 0, len(pk.serves))
	for m := range pk.serves {
		known = append(known, m)
	}
	slices.Sort(known)
	pm.unrouted.ensure(known)
	in := make(map[string]bool, len(pk.backends))
	for _, b := range pk.backends {
		in[b.name] = true
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	for name, g := range pm.gateways {
		switch {
		case in[name]:
			g.goneAt = 0
			g.ensure(known)
		case g.goneAt == 0:
			g.goneAt = now
		case now-g.goneAt > int64(metricsRetention):
			delete(pm.gateways, name)
		}
	}
}

// all returns the counters of every gateway the pool had lately, sorted
// by name, the unrouted ones first.
func (pm *proxyMetrics) all() []*gwMetrics {
	if pm.off {
		return nil
	}
	pm.mu.Lock()
	out := make([]*gwMetrics, 0, len(pm.gateways)+1)
	for _, g := range pm.gateways {
		out = append(out, g)
	}
	pm.mu.Unlock()
	slices.SortFunc(out, func(a, b *gwMetrics) int { return cmp.Compare(a.name, b.name) })
	return append([]*gwMetrics{pm.unrouted}, out...)
}

// settled counts a call that settled with code (0: a RESULT) and writes
// its access log line when it has one.
func (p *Proxy) settled(pd *call, code protocol.Code) {
	pd.mc.count(kindOf(pd), code)
	if pd.acc != nil {
		p.logAccess(pd, code)
	}
}
