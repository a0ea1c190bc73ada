package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/child"
	runner "github.com/graftlb/graftlb/internal/cluster"
	"github.com/graftlb/graftlb/transport"
)

// natsGateways is how many gateways the NATS step subscribes.
const natsGateways = 3

// natsCalls is how many queue calls the NATS step makes.
const natsCalls = 60

// nats is step 6: calls routed over NATS. It runs beside the main cluster,
// with processes of its own: a NATS server (`graftlb nats`), gateways that
// only subscribe to it, and a proxy whose routes send orders@1 over a
// queue group and chaos@1 to every gateway (fan-out); the main load goes
// on meanwhile, untouched.
func (d *demo) nats(ctx context.Context, s *stepRun) {
	s.title("NATS transport", "Calls routed through NATS: a queue spreads them, a fan-out reaches every gateway")
	d.p.say("The same clients and calls, another path: a route on the proxy sends a module's stateless")
	d.p.say("calls over NATS. nats:queue gives each call to ONE of the gateways of a queue group;")
	d.p.say("nats:fanout gives it to ALL of them and gathers their answers.")
	var procs []*proc
	defer func() { runner.Stop(stopGrace, procs...) }()
	fail := func(err error) {
		s.check(false, "the NATS processes started", "%v", err)
	}
	srv, err := d.spawnAlone(ctx, "nats", "nats", "--log-level", "warn")
	if err != nil {
		fail(err)
		return
	}
	procs = append(procs, srv)
	names := make([]string, natsGateways)
	for i := range names {
		names[i] = fmt.Sprintf("nats-gw%d", i+1)
		g, err := d.spawnAlone(ctx, names[i], "gateway", "--name", names[i], "--tcp", "", "--ws", "", "--http", "",
			"--modules", "orders,chaos", "--nats", srv.Addr.NATS, "--log-level", "warn")
		if err != nil {
			fail(err)
			return
		}
		procs = append(procs, g)
	}
	px, err := d.spawnAlone(ctx, "nats-proxy", "proxy", "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "",
		"--nats", srv.Addr.NATS, "--fanout-window", "3s", "--route", "orders@1=nats:queue", "--route", "chaos@1=nats:fanout", "--log-level", "warn")
	if err != nil {
		fail(err)
		return
	}
	procs = append(procs, px)
	d.p.event("started a NATS server (%s), %d gateways subscribed to it, and a proxy routing over it", srv.Addr.NATS, natsGateways)
	c, err := client.Dial(ctx, "tcp://"+px.Addr.TCP, client.Options{})
	if err != nil {
		fail(err)
		return
	}
	defer c.Close()

	by, failed := map[string]int64{}, 0
	for i := range natsCalls {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		id := fmt.Sprintf("n-%d", i)
		res, err := c.Session().CallStateless(cctx, ordersTarget.Module+".Orders.GetOrder", id)
		cancel()
		var o orders.Order
		if err != nil || res.Decode(&o) != nil || o != orders.Make(id, o.Gateway) {
			failed++
			continue
		}
		by[o.Gateway]++
	}
	d.p.bars(fmt.Sprintf("%d calls over nats:queue, by the gateway that ran them:", natsCalls), by, names)

	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	res, err := c.Session().CallStateless(cctx, "chaos@1.Chaos.Sleep", 1)
	cancel()
	var answers []transport.FanoutAnswer
	if err == nil {
		err = res.Decode(&answers)
	}
	reached := map[string]int64{}
	for _, a := range answers {
		if a.Error == nil {
			reached[a.Gateway]++
		}
	}
	d.p.bars("ONE call over nats:fanout, answers by gateway:", reached, names)
	s.hold(ctx)
	spread := 0
	for _, n := range names {
		if by[n] > 0 {
			spread++
		}
	}
	s.check(failed == 0 && spread == natsGateways, "queue calls ran on every subscribed gateway, none failed",
		"%d of %d gateways, %d failed", spread, natsGateways, failed)
	why := ""
	if err != nil {
		why = ": " + err.Error()
	}
	s.check(err == nil && len(reached) == natsGateways && len(answers) == natsGateways,
		"one fan-out call reached every gateway once", "%d answers from %d gateways%s", len(answers), len(reached), why)
}

// spawnAlone starts `graftlb args...` outside the demo's gossip cluster and
// waits for its listening line.
func (d *demo) spawnAlone(ctx context.Context, name string, args ...string) (*proc, error) {
	return child.Start(ctx, name, d.cfg.Binary, args, child.Options{OwnGroup: true, ListenTimeout: listenTimeout})
}
