package bench

import (
	"context"
	"strconv"
	"time"

	runner "github.com/graftlb/graftlb/internal/cluster"
)

// Pool discovery modes of a scenario's proxy.
const (
	DiscoveryStatic = runner.Static // --backend tcp://...#name=gwN for each gateway
	DiscoveryGossip = runner.Gossip // gateways and proxy join one memberlist cluster
)

// readyTimeout bounds the wait for a proxy to be connected to its pool.
const readyTimeout = 20 * time.Second

// cluster is the set of processes a scenario runs: gateways gw1..gwN and
// the proxies in front of them, started by the cluster runner the demo
// uses too. close kills them all.
type cluster struct {
	run      *runner.Runner
	gateways []*Proc
	procs    []*Proc
}

func newCluster(bin, discovery string) (*cluster, error) {
	r, err := runner.New(runner.Options{Bin: bin, Discovery: discovery})
	if err != nil {
		return nil, err
	}
	return &cluster{run: r}, nil
}

// startGateways starts gateways until there are n, named gw1..gwN; extra
// flags go to each. In a gossip pool they join through gw1.
func (c *cluster) startGateways(ctx context.Context, n int, extra ...string) error {
	for i := len(c.gateways); i < n; i++ {
		join := ""
		if len(c.gateways) > 0 {
			join = c.gateways[0].Addr.Gossip
		}
		p, err := c.run.Gateway(ctx, "gw"+strconv.Itoa(i+1), join, extra...)
		if err != nil {
			return err
		}
		c.gateways = append(c.gateways, p)
		c.procs = append(c.procs, p)
	}
	return nil
}

// restartGateway starts gateway i again under its name, as a new process
// (the old one must have exited), joining through a live gateway's gossip.
func (c *cluster) restartGateway(ctx context.Context, i int, extra ...string) (*Proc, error) {
	old := c.gateways[i]
	join := ""
	for _, g := range c.gateways {
		if g != old && !g.Exited() {
			join = g.Addr.Gossip
			break
		}
	}
	p, err := c.run.Gateway(ctx, old.Name, join, extra...)
	if err != nil {
		return nil, err
	}
	c.gateways[i] = p
	c.procs = append(c.procs, p)
	return p, nil
}

// gateway returns the gateway named name, or nil.
func (c *cluster) gateway(name string) *Proc {
	for _, g := range c.gateways {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// startProxy starts a graftlb proxy in front of gws (static) or of the
// gossip pool, and waits until it is connected to every gateway of gws.
func (c *cluster) startProxy(ctx context.Context, gws []*Proc, extra ...string) (*Proc, error) {
	p, err := c.run.Proxy(ctx, "graftlb", gws, extra...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	if err := waitPool(ctx, p, gws); err != nil {
		return nil, err
	}
	return p, nil
}

// waitPool polls the proxy's admin API until every gateway of gws is ready
// and connected.
func waitPool(ctx context.Context, proxy *Proc, gws []*Proc) error {
	_, err := runner.WaitPool(ctx, proxy, readyTimeout, runner.Routes(runner.Names(gws)...))
	return err
}

// stop kills p (a proxy the scenario is done with) and forgets it.
func (c *cluster) stop(p *Proc) {
	p.Kill()
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			break
		}
	}
}

// close kills every process of the cluster.
func (c *cluster) close() {
	killAll(c.procs)
	c.procs, c.gateways = nil, nil
}
