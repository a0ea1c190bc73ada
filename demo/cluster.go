package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/graftlb/graftlb/internal/child"
	runner "github.com/graftlb/graftlb/internal/cluster"
)

const (
	// listenTimeout bounds how long a child may take to print its
	// listening line.
	listenTimeout = 15 * time.Second
	// stopGrace is how long a child has to exit after SIGTERM before it
	// gets SIGKILL. A gateway takes about a second (its drain waits for a
	// quiet second).
	stopGrace = 5 * time.Second
	// gossipLabel keeps the demo's cluster apart from any other on the host
	// (the random key does too).
	gossipLabel = "graftlb-demo"
)

// proc is one child process: the proxy or a gateway.
type proc = child.Proc

// cluster is the demo's pool: a proxy and gateways, each a child process of
// this one (started by the cluster runner the bench uses too), in one
// gossip cluster with a key made up for the run.
type cluster struct {
	// Immutable after startCluster.
	run   *runner.Runner
	proxy *proc
	http  *http.Client

	// mu guards gws and order.
	mu    sync.Mutex
	gws   map[string]*proc
	order []string // gateway names, gw2 before gw10
}

// startCluster starts a proxy and n gateways gw1..gwN joined to it by
// gossip, and waits until the proxy routes to all of them. On error the
// children started so far are stopped.
func startCluster(ctx context.Context, bin string, n int) (_ *cluster, err error) {
	r, err := runner.New(runner.Options{Bin: bin, Discovery: runner.Gossip, Label: gossipLabel, OwnGroup: true, ListenTimeout: listenTimeout})
	if err != nil {
		return nil, err
	}
	c := &cluster{run: r, gws: map[string]*proc{}, http: &http.Client{Timeout: 2 * time.Second}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	c.proxy, err = r.Proxy(ctx, "proxy", nil, "--ws", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range names {
		names[i] = fmt.Sprintf("gw%d", i+1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = c.addGateway(ctx, names[i])
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := c.waitPool(ctx, 20*time.Second, runner.Routes(names...)); err != nil {
		return nil, fmt.Errorf("waiting for the proxy to route to %s: %w", strings.Join(names, ", "), err)
	}
	return c, nil
}

// addGateway starts gateway name, joined to the cluster through the proxy.
// It does not wait for the proxy to see it.
func (c *cluster) addGateway(ctx context.Context, name string) (*proc, error) {
	p, err := c.run.Gateway(ctx, name, c.proxy.Addr.Gossip, "--modules", "orders,cart", "--drain-grace", "10s")
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.gws[name] = p
	c.order = append(c.order, name)
	slices.SortFunc(c.order, compareNames)
	c.mu.Unlock()
	return p, nil
}

// gateway returns the gateway process name, or nil.
func (c *cluster) gateway(name string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gws[name]
}

// live returns the names of the gateways whose process runs, in order.
func (c *cluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, name := range c.order {
		if !c.gws[name].Exited() {
			out = append(out, name)
		}
	}
	return out
}

// procs returns every child, the proxy first.
func (c *cluster) procs() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []*proc{c.proxy}
	for _, name := range c.order {
		out = append(out, c.gws[name])
	}
	return out
}

// close stops every child that still runs, each with SIGTERM and then
// SIGKILL after stopGrace: the gateways at once, then the proxy. The order
// matters: a gateway leaving the gossip cluster waits (up to 3s) until its
// leave has been gossiped to a live member, and the proxy is the one that
// stays until they are gone.
func (c *cluster) close() {
	ps := c.procs()
	runner.Stop(stopGrace, ps[1:]...)
	runner.Stop(stopGrace, ps[0])
}

// poolMember is a gateway as the proxy's GET /pool shows it.
type poolMember = runner.PoolMember

// proxyStats is the part of the proxy's GET /stats the demo reads.
type proxyStats struct {
	Sessions     int   `json:"sessions"`
	SessionsLost int64 `json:"sessions_lost"`
	Retries      int64 `json:"retries"`
}

// gatewayStats is the part of a gateway's GET /stats the demo reads.
type gatewayStats struct {
	SessionsMoved       int64            `json:"sessions_moved"`
	SessionsMovedTo     map[string]int64 `json:"sessions_moved_to"`
	SessionsLostAtDrain int64            `json:"sessions_lost_at_drain"`
}

// watchHandoff polls the /stats of gateway p, which drains, until it exits
// or ctx ends, and returns its last answer: a drained gateway stays up for
// its drain quiet period after its last move, so the last poll sees them all.
func (c *cluster) watchHandoff(ctx context.Context, p *proc) gatewayStats {
	var last gatewayStats
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr.HTTP+"/stats", nil)
		if err == nil {
			if resp, err := c.http.Do(req); err == nil {
				var s gatewayStats
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil {
					last = s
				}
				resp.Body.Close()
			}
		}
		select {
		case <-p.Done():
			return last
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}

func (c *cluster) adminURL(path string) string { return "http://" + c.proxy.Addr.Admin + path }

// pool returns the proxy's view of the pool by gateway name.
func (c *cluster) pool(ctx context.Context) (map[string]poolMember, error) {
	return runner.Pool(ctx, c.proxy)
}

func (c *cluster) stats(ctx context.Context) (proxyStats, error) {
	var s proxyStats
	err := runner.GetJSON(ctx, c.proxy, "/stats", &s)
	return s, err
}

// waitPool polls GET /pool until cond holds, for at most within.
func (c *cluster) waitPool(ctx context.Context, within time.Duration, cond func(map[string]poolMember) bool) (map[string]poolMember, error) {
	return runner.WaitPool(ctx, c.proxy, within, cond)
}
