package admin

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/balancer"
)

// fakePool is a scripted proxy view.
type fakePool struct {
	mu sync.Mutex
	v  balancer.View
}

func (f *fakePool) view() balancer.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.v
	out.Gateways = append([]balancer.GatewayView(nil), f.v.Gateways...)
	for i := range out.Gateways {
		out.Gateways[i].Latency = append([]uint64(nil), f.v.Gateways[i].Latency...)
	}
	return out
}

func (f *fakePool) set(fn func(v *balancer.View)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.v)
}

func gw(name string) balancer.GatewayView {
	g := balancer.GatewayView{Latency: make([]uint64, len(balancer.LatencyBounds)+1)}
	g.Name, g.State, g.Check, g.Breaker = name, "ready", "up", "closed"
	return g
}

// TestDashboardTimeline: the watcher turns samples into rates, p99 and
// a timeline of what changed.
func TestDashboardTimeline(t *testing.T) {
	f := &fakePool{v: balancer.View{Gateways: []balancer.GatewayView{gw("gw1"), gw("gw2")}}}
	d := &dashboard{view: f.view, every: DashboardInterval, rows: map[string]Row{}, gone: map[string]time.Time{},
		feeds: map[chan []byte]struct{}{}}
	t0 := time.Unix(1000, 0)
	d.tick(t0)
	for i := 1; i <= 4; i++ { // 2 s at 100 calls per 500 ms on gw1, all in the 1-2.5 ms bucket
		f.set(func(v *balancer.View) { v.Gateways[0].Calls += 100; v.Gateways[0].Latency[4] += 100 })
		d.tick(t0.Add(time.Duration(i) * DashboardInterval))
	}
	r := d.rows["gw1"]
	if math.Abs(r.Rate-200) > 1 {
		t.Errorf("gw1 rate %v, want 200/s", r.Rate)
	}
	if r.P99 <= 1 || r.P99 > 2.5 {
		t.Errorf("gw1 p99 %v ms, want within its bucket (1, 2.5]", r.P99)
	}
	if d.rows["gw2"].P99 != -1 || d.rows["gw2"].Rate != 0 {
		t.Errorf("idle gw2: %+v", d.rows["gw2"])
	}
	f.set(func(v *balancer.View) {
		v.Gateways[1].State = "down"
		v.Gateways[1].SessionsLost = 7
		v.Gateways[0].AdminDrain = true
		v.Gateways = append(v.Gateways, gw("gw3"))
	})
	d.tick(t0.Add(5 * DashboardInterval))
	f.set(func(v *balancer.View) { v.Gateways = v.Gateways[1:] })
	d.tick(t0.Add(6 * DashboardInterval))
	// The proxy keeps a gateway that left in its view, as "left", with its
	// counters: sessions lost as it left still show.
	f.set(func(v *balancer.View) { v.Gateways[0].State = "left"; v.Gateways[0].SessionsLost = 9 })
	d.tick(t0.Add(7 * DashboardInterval))
	var texts []string
	for _, e := range d.events {
		texts = append(texts, e.Kind+": "+e.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"join: gw1 joined", "join: gw2 joined", "down: gw2 is DOWN", "lost: 7 sessions lost with gw2",
		"drain: gw1 drained by an operator", "join: gw3 joined", "leave: gw1 left the pool", "leave: gw2 left the pool",
		"lost: 2 sessions still bound to gw2 are lost: it left the pool (9 in all)"} {
		if !strings.Contains(all, want) {
			t.Errorf("timeline lacks %q:\n%s", want, all)
		}
	}
	if d.rows["gw2"].State != "left" || d.rows["gw2"].Lost != 9 || d.rows["gw1"].State != "left" {
		t.Errorf("rows %+v", d.rows)
	}
}

func TestP99(t *testing.T) {
	cur := make([]uint64, len(balancer.LatencyBounds)+1)
	prev := make([]uint64, len(cur))
	if p99(cur, prev) != -1 {
		t.Error("p99 of nothing is not -1")
	}
	cur[0] = 98 // 98 calls under 100 µs, 2 between 100 and 250 µs
	cur[1] = 2
	if got := p99(cur, prev); got <= 0.1 || got > 0.25 {
		t.Errorf("p99 = %v ms, want in (0.1, 0.25]", got)
	}
}

// TestDashboardFeed: GET / is the page, GET /events streams an init
// message with the history and then a tick per sample.
func TestDashboardFeed(t *testing.T) {
	f := &fakePool{v: balancer.View{Gateways: []balancer.GatewayView{gw("gw1")}}}
	s := New(nil, Limits{})
	s.HandleDashboard(f.view)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	if code, body, _ := do(t, "GET", base+"/", nil); code != 200 || !strings.Contains(body, "EventSource") {
		t.Fatalf("GET / = %d", code)
	}
	resp, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var types []string
	for len(types) < 3 && sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var m feedMsg
		if err := json.Unmarshal([]byte(line[6:]), &m); err != nil {
			t.Fatal(err)
		}
		types = append(types, m.Type)
		if m.Type == "tick" && (len(m.Rows) != 1 || m.Rows[0].Name != "gw1") {
			t.Errorf("tick rows %+v", m.Rows)
		}
		f.set(func(v *balancer.View) { v.Gateways[0].Calls += 10 })
	}
	if strings.Join(types, ",") != "init,tick,tick" {
		t.Errorf("feed messages %v, want init then ticks", types)
	}
}
