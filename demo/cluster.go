package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/internal/child"
)

const (
	// listenTimeout bounds how long a child may take to print its
	// listening line.
	listenTimeout = 15 * time.Second
	// stopGrace is how long a child has to exit after SIGTERM before it
	// gets SIGKILL. A gateway takes about a second (its drain waits for a
	// quiet second).
	stopGrace = 5 * time.Second
	// pollEvery is the admin API polling period while waiting for a state.
	pollEvery = 20 * time.Millisecond
	// gossipLabel keeps the demo's cluster apart from any other on the host
	// (the random key does too).
	gossipLabel = "graftlb-demo"
)

// proc is one child process: the proxy or a gateway.
type proc = child.Proc

// cluster is the demo's pool: a proxy and gateways, each a child process of
// this one, in one gossip cluster with a key made up for the run.
type cluster struct {
	// Immutable after startCluster.
	bin   string
	env   []string
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
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, discovery.KeyEnv+"=") })
	env = append(env, discovery.KeyEnv+"="+base64.StdEncoding.EncodeToString(key))
	c := &cluster{bin: bin, env: env, gws: map[string]*proc{}, http: &http.Client{Timeout: 2 * time.Second}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	c.proxy, err = c.spawn(ctx, "proxy", "proxy", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--gossip-label", gossipLabel, "--log-level", "warn")
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
	_, err = c.waitPool(ctx, 20*time.Second, func(pool map[string]poolMember) bool {
		for _, name := range names {
			if pool[name].State != "ready" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the proxy to route to %s: %w", strings.Join(names, ", "), err)
	}
	return c, nil
}

// addGateway starts gateway name, joined to the cluster through the proxy.
// It does not wait for the proxy to see it.
func (c *cluster) addGateway(ctx context.Context, name string) (*proc, error) {
	p, err := c.spawn(ctx, name, "gateway", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--join", c.proxy.Addr.Gossip,
		"--gossip-label", gossipLabel, "--modules", "orders,cart", "--drain-grace", "10s", "--log-level", "warn")
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

// spawn starts `graftlb args...` and waits for its listening line.
func (c *cluster) spawn(ctx context.Context, name string, args ...string) (*proc, error) {
	return child.Start(ctx, name, c.bin, args, child.Options{Env: c.env, OwnGroup: true, ListenTimeout: listenTimeout})
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
	var wg sync.WaitGroup
	for _, p := range ps[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(stopGrace)
		}()
	}
	wg.Wait()
	if ps[0] != nil {
		ps[0].Stop(stopGrace)
	}
}

// poolMember is a gateway as the proxy's GET /pool shows it.
type poolMember struct {
	Name     string `json:"name"`
	State    string `json:"state"` // ready, draining or down
	InFlight int64  `json:"in_flight"`
	Sessions int64  `json:"sessions"`
	Served   uint64 `json:"served"`
}

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

func (c *cluster) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.adminURL(path), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// pool returns the proxy's view of the pool by gateway name.
func (c *cluster) pool(ctx context.Context) (map[string]poolMember, error) {
	var ms []poolMember
	if err := c.getJSON(ctx, "/pool", &ms); err != nil {
		return nil, err
	}
	out := make(map[string]poolMember, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out, nil
}

func (c *cluster) stats(ctx context.Context) (proxyStats, error) {
	var s proxyStats
	err := c.getJSON(ctx, "/stats", &s)
	return s, err
}

// waitPool polls GET /pool until cond holds, for at most within.
func (c *cluster) waitPool(ctx context.Context, within time.Duration, cond func(map[string]poolMember) bool) (map[string]poolMember, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var lastErr error
	for {
		pool, err := c.pool(ctx)
		if err == nil && cond(pool) {
			return pool, nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
			}
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
