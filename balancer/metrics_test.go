package balancer

import (
	"errors"
	"testing"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gather scrapes p's collector through a pedantic registry, which also
// checks that every metric matches its description, and returns the
// families by name.
func gather(t *testing.T, p *Proxy) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// sumOf adds the values of family name's series whose labels include want.
func sumOf(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var n float64
	for _, m := range mfs[name].GetMetric() {
		match := 0
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			n += m.Counter.GetValue()
		case m.Gauge != nil:
			n += m.Gauge.GetValue()
		case m.Histogram != nil:
			n += float64(m.Histogram.GetSampleCount())
		}
	}
	return n
}

// modulesPool describes gs as a static pool whose members announce their
// modules, as gossip does.
func modulesPool(gs []*gateway.Gateway) discovery.Source {
	ms := make([]discovery.Member, len(gs))
	for i, g := range gs {
		ms[i] = member(g)
		ms[i].Modules = g.Modules()
	}
	return discovery.NewStatic(ms)
}

// TestMetricsCountCalls: calls are counted by gateway, module, kind and
// code where they settle; the latency histogram counts the answered ones;
// a module nobody announces is "other", and calls no gateway took have
// gateway "".
func TestMetricsCountCalls(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p, err := New(Config{TCP: "127.0.0.1:0"}, modulesPool(gs))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c := dialProxy(t, "tcp://"+p.Addrs().TCP)
	ctx := testCtx(t)
	s := c.Session()
	for i := 0; i < 20; i++ {
		if _, err := s.CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Fatal(err)
		}
	}
	cs := c.NewSession()
	cart, err := cs.New(ctx, "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cart.Call(ctx, "NoSuchMethod"); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("NoSuchMethod: %v, want NOT_FOUND", err)
	}
	if _, err := s.CallStateless(ctx, "nosuch@1.X.Y"); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("nosuch@1: %v, want NOT_FOUND", err)
	}

	mfs := gather(t, p)
	if n := sumOf(mfs, "graftlb_calls_total", map[string]string{"module": "orders@1", "kind": "stateless", "code": "OK"}); n != 20 {
		t.Errorf("orders@1 stateless OK = %v, want 20", n)
	}
	if n := sumOf(mfs, "graftlb_calls_total", map[string]string{"module": "cart@1", "code": "OK"}); n != 1 {
		t.Errorf("cart@1 OK = %v, want 1 ($new)", n)
	}
	if n := sumOf(mfs, "graftlb_calls_total", map[string]string{"module": "cart@1", "code": "NOT_FOUND"}); n != 1 {
		t.Errorf("cart@1 NOT_FOUND = %v, want 1", n)
	}
	if n := sumOf(mfs, "graftlb_calls_total", map[string]string{"gateway": "", "module": "other", "code": "NOT_FOUND"}); n != 1 {
		t.Errorf("unrouted other NOT_FOUND = %v, want 1", n)
	}
	if n := sumOf(mfs, "graftlb_call_duration_seconds", nil); n != 22 {
		t.Errorf("latency histogram counts %v calls, want the 22 that gateways answered", n)
	}
	if n := sumOf(mfs, "graftlb_sessions_placed_total", nil); n != 1 {
		t.Errorf("sessions placed = %v, want 1 (the cart's)", n)
	}
	if n := sumOf(mfs, "graftlb_gateway_up", nil); n != 2 {
		t.Errorf("gateways up = %v, want 2", n)
	}
	if n := sumOf(mfs, "graftlb_client_connections", map[string]string{"binding": "tcp"}); n != 1 {
		t.Errorf("tcp client connections = %v, want 1", n)
	}
	if got := p.callCount("", "NOT_FOUND"); got != 1 {
		t.Errorf("callCount(\"\", NOT_FOUND) = %d, want 1", got)
	}
}

// TestMetricsSessionsLostByGateway: when a gateway dies, the sessions it
// held are counted as lost on it, and its counters stay exported while its
// backend is down.
func TestMetricsSessionsLostByGateway(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p, err := New(Config{TCP: "127.0.0.1:0"}, modulesPool(gs))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c := dialProxy(t, "tcp://"+p.Addrs().TCP)
	ctx := testCtx(t)
	owners := map[string]int{}
	for i := 0; i < 30; i++ {
		s := c.NewSession()
		cart, err := s.New(ctx, "cart@1", "Cart")
		if err != nil {
			t.Fatal(err)
		}
		res, err := cart.Call(ctx, "Total")
		if err != nil {
			t.Fatal(err)
		}
		var tr struct {
			Gateway string `cbor:"gateway"`
		}
		if err := res.Decode(&tr); err != nil {
			t.Fatal(err)
		}
		owners[tr.Gateway]++
	}
	victim := gs[1]
	_ = victim.Close()
	proctest.Eventually(t, 10*time.Second, "the victim's sessions lost and the victim down", func() bool {
		// Sessions are lost as soon as the redial fails; the picker
		// (which gateway_up reads) is rebuilt just after.
		return p.Stats().SessionsLost == int64(owners[victim.Name()]) &&
			sumOf(gather(t, p), "graftlb_gateway_up", map[string]string{"gateway": victim.Name()}) == 0
	})
	mfs := gather(t, p)
	if n := sumOf(mfs, "graftlb_sessions_lost_total", map[string]string{"gateway": victim.Name()}); n != float64(owners[victim.Name()]) {
		t.Errorf("sessions lost on %s = %v, want %d", victim.Name(), n, owners[victim.Name()])
	}
	if n := sumOf(mfs, "graftlb_gateway_up", map[string]string{"gateway": victim.Name()}); n != 0 {
		t.Errorf("graftlb_gateway_up{%s} = %v after it died, want 0", victim.Name(), n)
	}
	if n := sumOf(mfs, "graftlb_sessions_lost_total", nil); n != float64(owners[victim.Name()]) {
		t.Errorf("sessions lost in all = %v, want %d", n, owners[victim.Name()])
	}
}

// TestMetricsOff: with DisableMetrics the proxy counts no call.
func TestMetricsOff(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) { c.DisableMetrics = true })
	c := dialProxy(t, proxyTargets(p)["tcp"])
	if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, p)
	if _, ok := mfs["graftlb_calls_total"]; ok {
		t.Errorf("graftlb_calls_total exported with metrics off")
	}
	if n := sumOf(mfs, "graftlb_gateway_up", nil); n != 1 {
		t.Errorf("gauges are still there: graftlb_gateway_up = %v, want 1", n)
	}
}
