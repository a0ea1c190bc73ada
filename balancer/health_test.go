package balancer

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// loadResult counts a load run's outcomes.
type loadResult struct {
	mu        sync.Mutex
	ok        int
	failed    map[string]int
	latencies []time.Duration
	served    map[string]int
}

func (r *loadResult) successRate() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.failed {
		n += v
	}
	return float64(r.ok) / float64(r.ok+n)
}

func (r *loadResult) p99() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := append([]time.Duration(nil), r.latencies...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)*99/100]
}

// runLoad makes n stateless calls of req from workers goroutines on c,
// each with deadline d.
func runLoad(t *testing.T, c *client.Conn, workers, n int, d time.Duration, req client.Request) *loadResult {
	t.Helper()
	return runLoadCtx(context.Background(), c, workers, n, d, req)
}

// runLoadCtx is runLoad that also stops when ctx is done.
func runLoadCtx(ctx context.Context, c *client.Conn, workers, n int, d time.Duration, req client.Request) *loadResult {
	r := &loadResult{failed: map[string]int{}, served: map[string]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.Session()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				ctx, cancel := context.WithTimeout(ctx, d)
				begin := time.Now()
				res, err := s.Do(ctx, req)
				lat := time.Since(begin)
				cancel()
				var gw struct {
					Gateway string `cbor:"gateway"`
				}
				if err == nil {
					err = res.Decode(&gw)
				}
				r.mu.Lock()
				if err != nil {
					code := "other"
					var pe *protocol.Error
					if errors.As(err, &pe) {
						code = pe.Code.String()
					}
					r.failed[code]++
				} else {
					r.ok++
					r.latencies = append(r.latencies, lat)
					r.served[gw.Gateway]++
				}
				r.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return r
}

var getOrderReq = client.Request{Target: protocol.Target{Module: "orders@1", Type: "Orders", Method: "GetOrder"},
	Args: []any{"o-1"}, Stateless: true}

func poolMember(p *Proxy, name string) PoolMember {
	for _, m := range p.Pool() {
		if m.Name == name {
			return m
		}
	}
	return PoolMember{}
}

// TestEjectsFailingGateway (issue 5): one of three gateways fails half its
// calls; once outlier detection ejects it, at least 99.5% of stateless
// calls through the proxy succeed.
func TestEjectsFailingGateway(t *testing.T) {
	gs := []*gateway.Gateway{
		testgwStart(t, "gw1", 0),
		testgwStart(t, "gw2", 0.5),
		testgwStart(t, "gw3", 0),
	}
	// The breaker is set never to trip, so that ejection is what acts (the
	// breaker has its own test).
	p := startProxy(t, gs, func(c *Config) { c.Health.Breaker = health.Settings{FailureRate: 1} })
	c := dialProxy(t, proxyTargets(p)["tcp"])
	proctest.Eventually(t, 20*time.Second, "gw2 to be ejected", func() bool {
		runLoad(t, c, 8, 200, 5*time.Second, getOrderReq)
		return poolMember(p, "gw2").Ejected
	})
	if m := poolMember(p, "gw2"); m.Health == nil || m.Health.Outlier == nil || m.Health.Outlier.Ejections < 1 {
		t.Errorf("GET /pool does not count gw2's ejection: %+v", m.Health)
	}
	r := runLoad(t, c, 8, 4000, 5*time.Second, getOrderReq)
	t.Logf("after ejection: %d ok, failed %v, served %v", r.ok, r.failed, r.served)
	if rate := r.successRate(); rate < 0.995 {
		t.Errorf("success rate after ejection %.4f, want ≥ 0.995", rate)
	}
}

func testgwStart(t *testing.T, name string, failRate float64) *gateway.Gateway {
	return startGatewaysNamed(t, name, func(c *gateway.Config) { c.ChaosFailRate = failRate })
}

// TestAvoidsSlowGateway (issue 5): one of five gateways adds 200 ms to every
// call; the p99 of stateless calls through the proxy stays within 2× of the
// p99 with all five healthy. Both are measured in the same run and at the
// same time — two proxies, each with its own five gateways, loaded together
// — so that the noise of a shared machine hits both alike. Every call does
// 5 ms of simulated work, so the healthy p99 is the work, not the noise.
func TestAvoidsSlowGateway(t *testing.T) {
	pools := make([][]*gateway.Gateway, 2)
	conns := make([]*client.Conn, 2)
	for k := range pools {
		for i := 0; i < 5; i++ {
			pools[k] = append(pools[k], startGatewaysNamed(t, gwName(i), nil))
		}
		conns[k] = dialProxy(t, proxyTargets(startProxy(t, pools[k], nil))["tcp"])
	}
	if err := pools[1][4].Faults().SetLatency(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	work := client.Request{Target: protocol.Target{Module: "chaos@1", Type: "Chaos", Method: "Sleep"}, Args: []any{5}, Stateless: true}
	results := make([]*loadResult, 2)
	var wg sync.WaitGroup
	for k := range results {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			runLoad(t, conns[k], 8, 300, 10*time.Second, work) // warm up
			results[k] = runLoad(t, conns[k], 8, 3000, 10*time.Second, work)
		}(k)
	}
	wg.Wait()
	healthy, slow := results[0], results[1]
	t.Logf("p99 with 5 healthy gateways: %v; with gw5 adding 200ms: %v (gw5 served %d of %d)",
		healthy.p99(), slow.p99(), slow.served["gw5"], slow.ok)
	if healthy.successRate() != 1 || slow.successRate() != 1 {
		t.Fatalf("failures: healthy %v, slow %v", healthy.failed, slow.failed)
	}
	if slow.p99() > 2*healthy.p99() {
		t.Errorf("p99 %v with a slow gateway, more than 2× the healthy %v", slow.p99(), healthy.p99())
	}
}

// TestHungGatewayMarkedDown (issue 5): SIGSTOP one of three gateway
// processes under load: the active checker marks it down within
// fall × interval + timeout, stateless calls stop going there, and SIGCONT
// brings it back after rise successes.
func TestHungGatewayMarkedDown(t *testing.T) {
	const interval, timeout, fall, rise = 200 * time.Millisecond, 200 * time.Millisecond, 3, 2
	procs := make([]*proctest.Proc, 3)
	ms := make([]discovery.Member, 3)
	for i := range procs {
		procs[i] = proctest.Start(t, "gateway", "--name", gwName(i), "--tcp", "127.0.0.1:0", "--ws", "", "--http", "", "--log-level", "warn")
		ms[i] = discovery.Member{Name: gwName(i), Role: discovery.RoleGateway, Addrs: discovery.Addrs{TCP: procs[i].Addr.TCP}}
	}
	cfg := Config{TCP: "127.0.0.1:0"}
	cfg.Health.Check = health.CheckerConfig{Interval: interval, Timeout: timeout, Fall: fall, Rise: rise}
	p, err := New(cfg, discovery.NewStatic(ms))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dialProxy(t, "tcp://"+p.Addrs().TCP)
	runLoad(t, c, 8, 300, 2*time.Second, getOrderReq)

	if err := procs[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer procs[1].Signal(syscall.SIGCONT)
	stopped := time.Now()
	// Load goes on while the checker detects the hang.
	bgCtx, stopBG := context.WithCancel(context.Background())
	bg := make(chan *loadResult, 1)
	go func() { bg <- runLoadCtx(bgCtx, c, 4, 1<<30, 2*time.Second, getOrderReq) }()
	proctest.Eventually(t, 10*time.Second, "gw2 marked down", func() bool { return poolMember(p, "gw2").Check == "down" })
	took := time.Since(stopped)
	bound := fall*interval + timeout
	t.Logf("SIGSTOP to down: %v (bound fall×interval+timeout = %v)", took.Round(time.Millisecond), bound)
	if took > bound+interval { // one interval of slack for where in its period the stop fell
		t.Errorf("gw2 marked down after %v, want within %v", took, bound)
	}
	stopBG()
	during := <-bg
	t.Logf("load while gw2 hung, before it was marked down: %d ok, failed %v", during.ok, during.failed)
	after := runLoad(t, c, 8, 1000, 2*time.Second, getOrderReq)
	if after.successRate() != 1 || after.served["gw2"] != 0 {
		t.Errorf("after gw2 was marked down: failed %v, gw2 served %d", after.failed, after.served["gw2"])
	}
	if err := procs[1].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	proctest.Eventually(t, 10*time.Second, "gw2 back up", func() bool { return poolMember(p, "gw2").Check == "up" })
	t.Logf("SIGCONT to up: %v (rise %d × interval %v)", time.Since(resumed).Round(time.Millisecond), rise, interval)
	proctest.Eventually(t, 10*time.Second, "gw2 to serve again", func() bool {
		return runLoad(t, c, 8, 300, 2*time.Second, getOrderReq).served["gw2"] > 0
	})
}

// TestBreakerEndToEnd (issue 5): a gateway whose calls all fail trips its
// breaker: its session's calls get CIRCUIT_OPEN while stateless calls go
// elsewhere; once it recovers, the breaker goes half-open and closes.
func TestBreakerEndToEnd(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p := startProxy(t, gs, func(c *Config) {
		// Open for 2 s: the stateless load below (at most 1 s) must end
		// before the breaker lets a half-open probe reach the failing
		// gateway, or a probe is a failed stateless call.
		c.Health.Breaker = health.Settings{MinCalls: 10, Window: 2 * time.Second, OpenTimeout: 2 * time.Second,
			HalfOpenMax: 1, HalfOpenSuccesses: 2}
		c.Health.Outlier = health.OutlierConfig{ConsecutiveFailures: -1, FailureRate: -1}
	})
	c := dialProxy(t, proxyTargets(p)["tcp"])
	s := c.NewSession()
	obj, err := s.New(testCtx(t), "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}
	res, _ := obj.Call(testCtx(t), "Total")
	var tr struct {
		Gateway string `cbor:"gateway"`
	}
	_ = res.Decode(&tr)
	var owner *gateway.Gateway
	for _, g := range gs {
		if g.Name() == tr.Gateway {
			owner = g
		}
	}
	states := []string{poolMember(p, owner.Name()).Breaker}
	_ = owner.Faults().SetFailRate(1)
	var circuitOpen int
	for i := 0; i < 40 && circuitOpen == 0; i++ {
		_, err := obj.Call(testCtx(t), "Total")
		if errors.Is(err, protocol.ErrCircuitOpen) {
			circuitOpen++
		}
	}
	states = append(states, poolMember(p, owner.Name()).Breaker)
	if circuitOpen == 0 {
		t.Fatal("the session's calls never got CIRCUIT_OPEN")
	}
	if r := runLoad(t, c, 4, 100, time.Second, getOrderReq); r.successRate() != 1 {
		t.Errorf("stateless calls with one breaker open: %v", r.failed)
	}
	_ = owner.Faults().SetFailRate(0)
	proctest.Eventually(t, 5*time.Second, "half-open", func() bool { return poolMember(p, owner.Name()).Breaker == "half-open" })
	states = append(states, "half-open")
	proctest.Eventually(t, 5*time.Second, "closed", func() bool {
		_, _ = obj.Call(testCtx(t), "Total")
		return poolMember(p, owner.Name()).Breaker == "closed"
	})
	states = append(states, "closed")
	t.Logf("breaker of %s: %s", owner.Name(), strings.Join(states, " → "))
	if strings.Join(states, ",") != "closed,open,half-open,closed" {
		t.Errorf("breaker went %v", states)
	}
	if _, err := obj.Call(testCtx(t), "Total"); err != nil {
		t.Errorf("session after recovery: %v", err)
	}
}

// TestPanicMode (issue 5): with 2 of 3 gateways ejected, calls spread over
// all three, and the log says so.
func TestPanicMode(t *testing.T) {
	gs := []*gateway.Gateway{testgwStart(t, "gw1", 1), testgwStart(t, "gw2", 1), testgwStart(t, "gw3", 0)}
	sink := &logSink{}
	log := zerolog.New(sink).Level(zerolog.InfoLevel)
	p := startProxy(t, gs, func(c *Config) {
		c.Logger = &log
		c.Health.Outlier = health.OutlierConfig{MaxEjectionPercent: 100}
		c.Health.Breaker = health.Settings{FailureRate: 1} // isolate ejection
	})
	c := dialProxy(t, proxyTargets(p)["tcp"])
	proctest.Eventually(t, 20*time.Second, "gw1 and gw2 ejected", func() bool {
		runLoad(t, c, 4, 100, 5*time.Second, getOrderReq)
		return poolMember(p, "gw1").Ejected && poolMember(p, "gw2").Ejected
	})
	proctest.Eventually(t, 5*time.Second, "panic mode", func() bool { return p.Stats().Panic })
	before := map[string]uint64{}
	for _, m := range p.Pool() {
		before[m.Name] = m.Served
	}
	runLoad(t, c, 4, 600, 5*time.Second, getOrderReq)
	for _, m := range p.Pool() {
		n := m.Served - before[m.Name]
		t.Logf("%s (ejected %v) answered %d calls in panic mode", m.Name, m.Ejected, n)
		if n < 30 {
			t.Errorf("%s answered %d of 600 calls in panic mode, want at least 5%%", m.Name, n)
		}
	}
	if !strings.Contains(sink.b.String(), "panic mode") {
		t.Error("the log does not say the proxy entered panic mode")
	}
}

// startGatewaysNamed starts one embedded gateway.
func startGatewaysNamed(t *testing.T, name string, mutate func(*gateway.Config)) *gateway.Gateway {
	t.Helper()
	return testgwStartRaw(t, name, mutate)
}
