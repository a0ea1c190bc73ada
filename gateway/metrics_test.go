package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// scrape reads the gateway's GET /metrics and returns the value of the
// series of family name whose labels include want (summed).
func scrape(t *testing.T, g *gateway.Gateway) func(name string, want map[string]string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.Addrs().HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return func(name string, want map[string]string) float64 {
		var n float64
		mf := mfs[name]
		if mf == nil {
			return -1
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				n += m.Counter.GetValue()
			case m.Gauge != nil:
				n += m.Gauge.GetValue()
			}
		}
		return n
	}
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	match := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			match++
		}
	}
	return match == len(want)
}

// TestGatewayMetrics: /metrics counts calls by module, method and code,
// the sessions and objects held, the calls executing and waiting for a
// worker, and the drain.
func TestGatewayMetrics(t *testing.T) {
	g := testgw.Start(t, "gw1", func(c *gateway.Config) { c.Workers = 1 })
	c, err := client.Dial(context.Background(), testgw.Targets(g)["tcp"], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.NoSuch"); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("NoSuch: %v", err)
	}
	cart, err := c.Session().New(ctx, "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cart.Call(ctx, "AddItem", "x", int64(1)); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, g)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"graftlb_gateway_calls_total", map[string]string{"gateway": "gw1", "module": "orders@1", "method": "Orders.GetOrder", "code": "OK"}, 5},
		{"graftlb_gateway_calls_total", map[string]string{"module": "other", "code": "NOT_FOUND"}, 1},
		{"graftlb_gateway_calls_total", map[string]string{"module": "cart@1", "method": "Cart.$new", "code": "OK"}, 1},
		{"graftlb_gateway_calls_total", map[string]string{"module": "cart@1", "method": "Cart.AddItem", "code": "OK"}, 1},
		{"graftlb_gateway_sessions_held", nil, 1},
		{"graftlb_gateway_objects_held", nil, 1},
		{"graftlb_gateway_peer_connections", map[string]string{"binding": "tcp"}, 1},
		{"graftlb_gateway_draining", nil, 0},
		{"graftlb_gateway_serving_state", map[string]string{"state": "ready"}, 1},
		{"go_goroutines", nil, -2}, // present: checked below
	} {
		got := m(tc.name, tc.labels)
		if tc.want == -2 {
			if got <= 0 {
				t.Errorf("%s missing (%v): the Go collector is not registered", tc.name, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	// Three slow calls and one worker: one executes, two wait.
	g.Faults().SetLatency(300 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Go(func() { _, _ = c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-2") })
	}
	proctest.Eventually(t, 5*time.Second, "1 call executing and 2 waiting", func() bool {
		m := scrape(t, g)
		return m("graftlb_gateway_calls_executing", nil) == 1 && m("graftlb_gateway_calls_waiting", nil) == 2
	})
	wg.Wait()
	g.Faults().SetLatency(0)

	drained := make(chan error, 1)
	go func() { drained <- g.Drain(ctx) }()
	proctest.Eventually(t, 5*time.Second, "draining to show", func() bool {
		if g.State() != gateway.StateDraining {
			return false
		}
		m := scrape(t, g)
		return m("graftlb_gateway_draining", nil) == 1 && m("graftlb_gateway_serving_state", map[string]string{"state": "draining"}) == 1
	})
	_ = c.Close()
	<-drained
}
