package balancer

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/jobs"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

// natsPool is an embedded NATS server, gateways subscribed to it, and a
// proxy whose routes send calls over it.
type natsPool struct {
	srv *transport.Embedded
	gs  []*gateway.Gateway
	sub []*gateway.NATS
	tr  *transport.NATS
	p   *Proxy
}

// startNATSPool starts an embedded NATS server, n gateways each subscribed
// to NATS with sub (its zero value subscribes every module and subject;
// nil subscribes none: see subscribe), and a proxy in front of them with
// routes. Everything stops when the test ends.
func startNATSPool(t *testing.T, n int, gwMutate func(*gateway.Config), sub *transport.SubscriberConfig, routes ...string) *natsPool {
	t.Helper()
	return startNATSPoolWith(t, n, gwMutate, sub, nil, routes...)
}

// startNATSPoolWith is startNATSPool with the proxy's Config mutated by
// pMutate (nil: none) besides its routes.
func startNATSPoolWith(t *testing.T, n int, gwMutate func(*gateway.Config), sub *transport.SubscriberConfig,
	pMutate func(*Config), routes ...string) *natsPool {
	t.Helper()
	srv, err := transport.StartEmbedded(transport.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	np := &natsPool{srv: srv, gs: startGateways(t, n, gwMutate)}
	if sub != nil {
		np.subscribe(t, *sub)
	}
	// A fan-out window long enough for a loaded machine.
	np.tr, err = transport.Connect(transport.Config{URL: srv.URL(), FanoutWindow: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = np.tr.Close() })
	rs, err := transport.ParseRoutes(routes)
	if err != nil {
		t.Fatal(err)
	}
	np.p = startProxy(t, np.gs, func(c *Config) {
		c.Routes, c.Transport = rs, np.tr
		if pMutate != nil {
			pMutate(c)
		}
	})
	return np
}

// subscribe subscribes every gateway of the pool to NATS with cfg.
func (np *natsPool) subscribe(t *testing.T, cfg transport.SubscriberConfig) {
	t.Helper()
	for _, g := range np.gs {
		np.sub = append(np.sub, np.subscribeOne(t, g, cfg))
	}
}

func (np *natsPool) subscribeOne(t *testing.T, g *gateway.Gateway, cfg transport.SubscriberConfig) *gateway.NATS {
	t.Helper()
	cfg.URL = np.srv.URL()
	s, err := g.ServeNATS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestNATSQueueSpreads: stateless calls of a module routed nats:queue each
// run on exactly one gateway, spread over all of them, and come back to
// the client as a direct call's result would.
func TestNATSQueueSpreads(t *testing.T) {
	np := startNATSPool(t, 3, nil, &transport.SubscriberConfig{}, "orders@1=nats:queue")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)
	seen := map[string]int{}
	const calls = 90
	for i := range calls {
		id := "o-" + string(rune('a'+i%26))
		res, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", id)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var o orders.Order
		if err := res.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if want := orders.Make(id, o.Gateway); o != want {
			t.Fatalf("call %d: got %+v, want %+v", i, o, want)
		}
		seen[o.Gateway]++
	}
	if len(seen) != 3 {
		t.Fatalf("calls ran on %v, want all 3 gateways", seen)
	}
	var executed int64
	for _, s := range np.sub {
		executed += s.Counters().Executed.Load()
	}
	if executed != calls {
		t.Fatalf("gateways executed %d calls over NATS, want exactly %d (each call once)", executed, calls)
	}
}

// TestNATSQueueErrors: no subscriber is UNAVAILABLE at once (NATS's
// no-responders status, not a timeout); a deadline travels and is
// enforced (DEADLINE_EXCEEDED); a module's APP_EXCEPTION arrives as it
// would directly.
func TestNATSQueueErrors(t *testing.T) {
	np := startNATSPool(t, 1, nil, &transport.SubscriberConfig{Modules: []string{"chaos@1"}},
		"orders@1=nats:queue", "chaos@1=nats:queue")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)

	start := time.Now()
	_, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
	wantCode(t, err, protocol.CodeUnavailable)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("no-subscriber answer took %v: a timeout, not no-responders", d)
	}

	dctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.Session().CallStateless(dctx, "chaos@1.Chaos.Sleep", 2000)
	if !errors.Is(err, context.DeadlineExceeded) {
		wantCode(t, err, protocol.CodeDeadlineExceeded)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("deadline of 150ms answered after %v", d)
	}

	_, err = c.Session().CallStateless(ctx, "chaos@1.Chaos.Fail", "APP_EXCEPTION")
	wantCode(t, err, protocol.CodeAppException)
	// The same call directly, for comparison: the same error.
	g := dialProxy(t, "tcp://"+np.gs[0].Addrs().TCP)
	_, direct := g.Session().CallStateless(ctx, "chaos@1.Chaos.Fail", "APP_EXCEPTION")
	var pn, pd *protocol.Error
	if !errors.As(err, &pn) || !errors.As(direct, &pd) || pn.Code != pd.Code || pn.Message != pd.Message || pn.Type != pd.Type {
		t.Fatalf("over NATS %v, directly %v: want the same error", err, direct)
	}
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

// jobsGateways adds jobs@1 to each gateway, recording with its own
// recorder.
func jobsGateways(recs []*jobs.Recorder) func(*gateway.Config) {
	next := 0
	return func(c *gateway.Config) {
		c.Modules = append(c.Modules, jobs.Module(recs[next]))
		next++
	}
}

// TestNATSFanout: a ONEWAY fan-out call runs once on every subscribed
// gateway; a fan-out call with a result gathers every gateway's answer,
// each naming its gateway, results and errors alike.
func TestNATSFanout(t *testing.T) {
	recs := []*jobs.Recorder{{}, {}, {}}
	np := startNATSPool(t, 3, jobsGateways(recs), &transport.SubscriberConfig{},
		"jobs@1=nats:fanout", "orders@1.Orders.GetOrder=nats:fanout", "chaos@1=nats:fanout")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)

	run := protocol.Target{Module: "jobs@1", Type: "Jobs", Method: "Run"}
	if _, err := c.Session().Do(ctx, client.Request{Target: run, Args: []any{"j-1", 0}, Stateless: true, Oneway: true}); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 5*time.Second, "the ONEWAY call ran on every gateway", func() bool {
		for _, r := range recs {
			if s, _ := r.Counts(); s["j-1"] != 1 {
				return false
			}
		}
		return true
	})

	res, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-7")
	if err != nil {
		t.Fatal(err)
	}
	var list []transport.FanoutAnswer
	if err := res.Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d answers, want 3: %+v", len(list), list)
	}
	for i, a := range list {
		if want := gwName(i); a.Gateway != want || a.Error != nil {
			t.Fatalf("answer %d: %+v, want a result from %s", i, a, want)
		}
		var o orders.Order
		if err := protocol.Unmarshal(a.Result, &o); err != nil || o != orders.Make("o-7", a.Gateway) {
			t.Fatalf("answer %d: %+v (%v)", i, o, err)
		}
	}
	// The ONEWAY call ran once only, also after a later call passed.
	for i, r := range recs {
		if s, _ := r.Counts(); s["j-1"] != 1 {
			t.Fatalf("gateway %d ran the ONEWAY call %d times", i, s["j-1"])
		}
	}

	res, err = c.Session().CallStateless(ctx, "chaos@1.Chaos.Fail", "APP_EXCEPTION")
	if err != nil {
		t.Fatal(err)
	}
	list = nil
	if err := res.Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d answers, want 3", len(list))
	}
	for _, a := range list {
		if a.Error == nil || a.Error.Code != uint16(protocol.CodeAppException) || a.Error.Name != "APP_EXCEPTION" || a.Result != nil {
			t.Fatalf("answer %+v, want an APP_EXCEPTION", a)
		}
	}
}

// TestNATSFanoutNoSubscriber: a fan-out call nobody subscribes to is
// UNAVAILABLE at once, not an empty list after the window.
func TestNATSFanoutNoSubscriber(t *testing.T) {
	np := startNATSPool(t, 1, nil, &transport.SubscriberConfig{Queue: true}, "orders@1=nats:fanout")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	start := time.Now()
	_, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1")
	wantCode(t, err, protocol.CodeUnavailable)
	if d := time.Since(start); d >= 2*time.Second {
		t.Fatalf("answered after %v: waited for the window", d)
	}
}

// TestNATSDurable: durable calls are stored and accepted while no gateway
// subscribes, run once each when gateways come, and a submission repeated
// (same session, call id, target, arguments) is stored once.
func TestNATSDurable(t *testing.T) {
	recs := []*jobs.Recorder{{}, {}}
	np := startNATSPool(t, 2, jobsGateways(recs), nil, "jobs@1=nats:durable")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)
	run := protocol.Target{Module: "jobs@1", Type: "Jobs", Method: "Run"}
	const n = 20
	for i := range n {
		res, err := c.Session().Do(ctx, client.Request{Target: run, Args: []any{jobID(i), 20}, Stateless: true, Idempotent: i%2 == 0})
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		var a transport.Accepted
		if err := res.Decode(&a); err != nil || !a.Accepted || a.Duplicate || a.ID == "" {
			t.Fatalf("submit %d: %+v %v", i, a, err)
		}
	}
	// The same call twice, straight to the transport: stored once.
	frame := jobFrame(t, "dup", protocol.FlagStateless)
	var first, again transport.Accepted
	for _, a := range []*transport.Accepted{&first, &again} {
		got := make(chan []byte, 1)
		np.tr.Call(&transport.Call{Mode: transport.Durable, Frame: frame, Module: []byte("jobs@1"), Flags: protocol.FlagStateless, ClientID: 7},
			func(b []byte) { got <- b })
		var f protocol.Frame
		if err := protocol.Decode(<-got, &f); err != nil || f.Type != protocol.TypeResult {
			t.Fatalf("durable submit: %v %v", f.Type, err)
		}
		if err := protocol.Unmarshal(f.Body, a); err != nil {
			t.Fatal(err)
		}
	}
	if !again.Duplicate || first.Duplicate || again.ID != first.ID {
		t.Fatalf("first %+v, again %+v: want the second a duplicate", first, again)
	}
	for _, r := range recs {
		if s, _ := r.Counts(); len(s) != 0 {
			t.Fatalf("jobs ran before any gateway subscribed: %v", s)
		}
	}
	// A ONEWAY durable call: no answer, stored all the same.
	if _, err := c.Session().Do(ctx, client.Request{Target: run, Args: []any{"oneway", 20}, Stateless: true, Oneway: true}); err != nil {
		t.Fatal(err)
	}
	np.subscribe(t, transport.SubscriberConfig{Modules: []string{"jobs@1"}})
	proctest.Eventually(t, 15*time.Second, "every durable call ran", func() bool {
		return len(doneTotals(recs)) == n+2
	})
	for id, k := range doneTotals(recs) {
		if k != 1 {
			t.Fatalf("job %s ran %d times", id, k)
		}
	}
}

func jobID(i int) string { return "j-" + strconv.Itoa(i) }

func jobFrame(t *testing.T, id string, flags protocol.Flags) []byte {
	t.Helper()
	f := protocol.Frame{Type: protocol.TypeCall, Flags: flags, Session: protocol.NewSessionID(),
		Module: []byte("jobs@1"), TypeName: []byte("Jobs"), Method: []byte("Run")}
	f.Body, _ = protocol.MarshalArgs(id, 10)
	b, err := protocol.AppendFrame(nil, &f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// doneTotals sums the finished jobs of every recorder, by job id.
func doneTotals(recs []*jobs.Recorder) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		_, d := r.Counts()
		for id, k := range d {
			out[id] += k
		}
	}
	return out
}

// TestNATSDurableGatewayLost: a gateway lost while it runs durable calls
// leaves the IDEMPOTENT one to another gateway (it was not acked), while
// the other one, acked when it started, does not run again.
func TestNATSDurableGatewayLost(t *testing.T) {
	recs := []*jobs.Recorder{{}, {}}
	np := startNATSPool(t, 2, jobsGateways(recs), nil, "jobs@1=nats:durable")
	cfg := transport.SubscriberConfig{Modules: []string{"jobs@1"}, Durable: true, AckWait: time.Second}
	np.subscribeOne(t, np.gs[0], cfg)
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)
	run := protocol.Target{Module: "jobs@1", Type: "Jobs", Method: "Run"}
	for _, idem := range []bool{true, false} {
		id := map[bool]string{true: "idem", false: "once"}[idem]
		if _, err := c.Session().Do(ctx, client.Request{Target: run, Args: []any{id, 3000}, Stateless: true, Idempotent: idem}); err != nil {
			t.Fatal(err)
		}
	}
	proctest.Eventually(t, 10*time.Second, "both jobs running on gw1", func() bool {
		s, _ := recs[0].Counts()
		return s["idem"] == 1 && s["once"] == 1
	})
	_ = np.gs[0].Close() // lost with both calls running
	np.subscribeOne(t, np.gs[1], cfg)
	proctest.Eventually(t, 15*time.Second, "the idempotent job ran on gw2", func() bool {
		_, d := recs[1].Counts()
		return d["idem"] == 1
	})
	if s, _ := recs[1].Counts(); s["once"] != 0 {
		t.Fatalf("the non-idempotent job ran again on gw2")
	}
}

// rawCall sends one CALL frame f over a new protocol connection to the
// proxy and returns the answer.
func rawCall(t *testing.T, p *Proxy, f *protocol.Frame) *protocol.Frame {
	t.Helper()
	nc, err := net.Dial("tcp", p.Addrs().TCP)
	if err != nil {
		t.Fatal(err)
	}
	pc := protocol.NewStreamConn(nc, protocol.ConnOptions{})
	defer pc.Close()
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.ReadFrame(); err != nil { // WELCOME
		t.Fatal(err)
	}
	if err := pc.Send(f); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := pc.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	var a protocol.Frame
	if err := protocol.Decode(b, &a); err != nil {
		t.Fatal(err)
	}
	a.Body = append([]byte(nil), a.Body...)
	return &a
}

// TestNATSDelayed: a durable CALL flagged NOT_BEFORE is accepted at once
// and runs at its not-before time, not before, although no gateway was
// subscribed when it was submitted (the schedule lives in the NATS server).
// NOT_BEFORE on a call not routed durable is refused.
func TestNATSDelayed(t *testing.T) {
	recs := []*jobs.Recorder{{}}
	np := startNATSPool(t, 1, jobsGateways(recs), nil, "jobs@1=nats:durable", "orders@1=nats:queue")
	notBefore := time.Now().Add(2 * time.Second)
	f := protocol.Frame{Type: protocol.TypeCall, CallID: 1, Flags: protocol.FlagStateless | transport.FlagNotBefore,
		Object: uint64(notBefore.UnixMilli()), Module: []byte("jobs@1"), TypeName: []byte("Jobs"), Method: []byte("Run")}
	f.Body, _ = protocol.MarshalArgs("later", 0)
	a := rawCall(t, np.p, &f)
	var acc transport.Accepted
	if a.Type != protocol.TypeResult || protocol.Unmarshal(a.Body, &acc) != nil || !acc.Accepted {
		t.Fatalf("answer %s %+v, want accepted", a.Type, acc)
	}
	np.subscribe(t, transport.SubscriberConfig{Modules: []string{"jobs@1"}})
	proctest.Eventually(t, 15*time.Second, "the delayed call ran", func() bool {
		_, ok := recs[0].FirstStart("later")
		return ok
	})
	if started, _ := recs[0].FirstStart("later"); started.Before(notBefore) {
		t.Fatalf("started %v before its not-before time", notBefore.Sub(started))
	}

	f.Module, f.TypeName, f.Method = []byte("orders@1"), []byte("Orders"), []byte("GetOrder")
	f.Body, _ = protocol.MarshalArgs("o-1")
	if a := rawCall(t, np.p, &f); a.Type != protocol.TypeError || protocol.ErrorFromBody(a.Body).Code != protocol.CodeBadArgs {
		t.Fatalf("NOT_BEFORE on a queue route answered %s, want BAD_ARGS", a.Type)
	}
}

// TestNATSGatewayDrainLeaves: a draining gateway leaves NATS at once:
// queue calls go to the others, and none fails.
func TestNATSGatewayDrainLeaves(t *testing.T) {
	np := startNATSPool(t, 2, nil, &transport.SubscriberConfig{Queue: true}, "orders@1=nats:queue")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)
	drained := make(chan error, 1)
	go func() { drained <- np.gs[0].Drain(ctx) }()
	<-np.gs[0].Draining()
	proctest.Eventually(t, 10*time.Second, "gw1 left NATS", func() bool {
		return !np.sub[0].Subscribed()
	})
	for i := range 20 {
		res, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var o orders.Order
		if err := res.Decode(&o); err != nil || o.Gateway != "gw2" {
			t.Fatalf("call %d ran on %q (%v), want gw2", i, o.Gateway, err)
		}
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}
