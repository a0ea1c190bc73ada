package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Pool discovery modes of a scenario's proxy.
const (
	DiscoveryStatic = "static" // --backend tcp://...#name=gwN for each gateway
	DiscoveryGossip = "gossip" // gateways and proxy join one memberlist cluster
)

// readyTimeout bounds the wait for a proxy to be connected to its pool.
const readyTimeout = 20 * time.Second

// cluster is the set of processes a scenario runs: gateways gw1..gwN and
// the proxies in front of them. close kills them all.
type cluster struct {
	bin       string
	discovery string
	gossipKey string // generated per scenario: the pool is encrypted and private
	gateways  []*Proc
	procs     []*Proc
}

func newCluster(bin, discovery string) (*cluster, error) {
	c := &cluster{bin: bin, discovery: discovery}
	if discovery == DiscoveryGossip {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		c.gossipKey = base64.StdEncoding.EncodeToString(k)
	}
	return c, nil
}

// startGateways starts gateways until there are n, named gw1..gwN; extra
// flags go to each.
func (c *cluster) startGateways(ctx context.Context, n int, extra ...string) error {
	for i := len(c.gateways); i < n; i++ {
		name := "gw" + strconv.Itoa(i+1)
		join := ""
		if len(c.gateways) > 0 {
			join = c.gateways[0].Addr.Gossip
		}
		p, err := StartGraftlb(ctx, c.bin, name, c.gatewayArgs(name, join, extra)...)
		if err != nil {
			return err
		}
		c.gateways = append(c.gateways, p)
		c.procs = append(c.procs, p)
	}
	return nil
}

// gatewayArgs are the arguments of gateway name; join is a gossip seed
// (gossip pools, "" for the first gateway).
func (c *cluster) gatewayArgs(name, join string, extra []string) []string {
	args := []string{"gateway", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--log-level", "warn", "--log-format", "json"}
	if c.discovery == DiscoveryGossip {
		args = append(args, "--gossip", "127.0.0.1:0", "--gossip-key", c.gossipKey)
		if join != "" {
			args = append(args, "--join", join)
		}
	}
	return append(args, extra...)
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
	p, err := StartGraftlb(ctx, c.bin, old.Name, c.gatewayArgs(old.Name, join, extra)...)
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
	args := []string{"proxy", "--name", "graftlb", "--tcp", "127.0.0.1:0", "--ws", "",
		"--admin", "127.0.0.1:0", "--log-level", "warn", "--log-format", "json"}
	if c.discovery == DiscoveryGossip {
		args = append(args, "--gossip", "127.0.0.1:0", "--gossip-key", c.gossipKey, "--join", gws[0].Addr.Gossip)
	} else {
		for _, g := range gws {
			args = append(args, "--backend", "tcp://"+g.Addr.TCP+"#name="+g.Name)
		}
	}
	p, err := StartGraftlb(ctx, c.bin, "graftlb", append(args, extra...)...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	if err := waitPool(ctx, p, gws); err != nil {
		return nil, err
	}
	return p, nil
}

// poolMember is what the proxy's GET /pool says of a gateway.
type poolMember struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Conns int    `json:"conns"`
}

// waitPool polls the proxy's admin API until every gateway of gws is ready
// and connected.
func waitPool(ctx context.Context, proxy *Proc, gws []*Proc) error {
	url := "http://" + proxy.Addr.Admin + "/pool"
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	var last []poolMember
	for {
		if ready(hc, url, gws, &last) {
			return nil
		}
		if proxy.Exited() {
			return fmt.Errorf("bench: proxy exited; stderr:\n%s", proxy.Stderr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: proxy not connected to its %d gateways after %v (pool: %+v)", len(gws), readyTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func ready(hc *http.Client, url string, gws []*Proc, last *[]poolMember) bool {
	resp, err := hc.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var pool []poolMember
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&pool) != nil {
		return false
	}
	*last = pool
	up := map[string]bool{}
	for _, m := range pool {
		up[m.Name] = m.State == "ready" && m.Conns > 0
	}
	for _, g := range gws {
		if !up[g.Name] {
			return false
		}
	}
	return true
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
