// Package cluster runs a graftlb pool as child processes of the caller:
// gateways and proxies of one graftlb binary, every listener on a loopback
// port the system picks, their pool a static list (--backend) or one
// gossip cluster under a key made up for the run, and waits on a proxy's
// admin API until it routes to them. The demo and the bench scenarios run
// their clusters with it; each keeps its own record of which processes it
// started.
package cluster

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

// Pool discovery modes.
const (
	Static = "static" // the proxy gets --backend tcp://...#name=gwN for each gateway
	Gossip = "gossip" // gateways and proxies join one memberlist cluster
)

// Options configure a Runner.
type Options struct {
	// Bin is the graftlb binary.
	Bin string
	// Discovery is Static (the default) or Gossip.
	Discovery string
	// Label is the gossip cluster label (default: graftlb's), which keeps
	// the cluster apart from any other on the host; the key, made up per
	// Runner, does too.
	Label string
	// OwnGroup puts each child in a process group of its own, so that a
	// Ctrl-C on the caller's terminal reaches the caller only, which then
	// stops its children in order.
	OwnGroup bool
	// ListenTimeout bounds how long a child may take to print its
	// listening line (child's default when zero).
	ListenTimeout time.Duration
}

// Runner starts the processes of one cluster. Its methods are safe for
// concurrent use.
type Runner struct {
	o   Options
	env []string // the caller's environment, with the cluster's gossip key
}

// New returns a Runner; with Gossip discovery it makes up the cluster's
// key, which its children get in their environment ($GRAFTLB_GOSSIP_KEY),
// not on their command line.
func New(o Options) (*Runner, error) {
	switch o.Discovery {
	case "":
		o.Discovery = Static
	case Static, Gossip:
	default:
		return nil, fmt.Errorf("cluster: discovery %q: want %s or %s", o.Discovery, Static, Gossip)
	}
	r := &Runner{o: o}
	if o.Discovery == Gossip {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("cluster: gossip key: %w", err)
		}
		r.env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, discovery.KeyEnv+"=") })
		r.env = append(r.env, discovery.KeyEnv+"="+base64.StdEncoding.EncodeToString(key))
	}
	return r, nil
}

// Gossip reports whether the cluster's pool is a gossip cluster.
func (r *Runner) Gossip() bool { return r.o.Discovery == Gossip }

// Gateway starts gateway name with its TCP, WebSocket and HTTP listeners;
// in a gossip cluster it joins through join (a member's gossip address; ""
// for the first member). extra flags come last, so they override.
func (r *Runner) Gateway(ctx context.Context, name, join string, extra ...string) (*child.Proc, error) {
	args := []string{"gateway", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"}
	return r.start(ctx, name, r.gossipArgs(args, join), extra)
}

// Proxy starts a proxy (named graftlb, its process label) with its TCP
// and admin listeners and no WebSocket one, in front of gws: a static pool
// of exactly them, or, in a gossip cluster, joined through the first of
// them (none: the proxy is the first member). extra flags come last, so
// they override ("--ws", "127.0.0.1:0" turns WebSocket on).
func (r *Runner) Proxy(ctx context.Context, label string, gws []*child.Proc, extra ...string) (*child.Proc, error) {
	args := []string{"proxy", "--name", "graftlb", "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "127.0.0.1:0"}
	switch {
	case !r.Gossip():
		for _, g := range gws {
			args = append(args, "--backend", "tcp://"+g.Addr.TCP+"#name="+g.Name)
		}
		return r.start(ctx, label, args, extra)
	case len(gws) > 0:
		return r.start(ctx, label, r.gossipArgs(args, gws[0].Addr.Gossip), extra)
	}
	return r.start(ctx, label, r.gossipArgs(args, ""), extra)
}

func (r *Runner) gossipArgs(args []string, join string) []string {
	if !r.Gossip() {
		return args
	}
	args = append(args, "--gossip", "127.0.0.1:0")
	if r.o.Label != "" {
		args = append(args, "--gossip-label", r.o.Label)
	}
	if join != "" {
		args = append(args, "--join", join)
	}
	return args
}

// start runs `graftlb args... --log-level warn --log-format json extra...`
// and waits for its listening line.
func (r *Runner) start(ctx context.Context, label string, args, extra []string) (*child.Proc, error) {
	args = append(append(args, "--log-level", "warn", "--log-format", "json"), extra...)
	return child.Start(ctx, label, r.o.Bin, args, child.Options{Env: r.env, OwnGroup: r.o.OwnGroup, ListenTimeout: r.o.ListenTimeout})
}

// Stop stops every process of ps (nil ones skipped) at once and waits for
// them: SIGTERM (a graftlb process drains), then SIGKILL after grace.
func Stop(grace time.Duration, ps ...*child.Proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.Stop(grace)
			}()
		}
	}
	wg.Wait()
}

// PoolMember is a gateway as a proxy's GET /pool shows it.
type PoolMember struct {
	Name     string `json:"name"`
	State    string `json:"state"` // ready, draining or down
	Conns    int    `json:"conns"`
	InFlight int64  `json:"in_flight"`
	Sessions int64  `json:"sessions"`
	Served   uint64 `json:"served"`
}

// httpClient asks the proxies' admin APIs, a connection per request: no
// idle connection (and its goroutines) outlives a caller's poll.
var httpClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// GetJSON decodes the answer of the admin API of proxy at path into v.
func GetJSON(ctx context.Context, proxy *child.Proc, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+proxy.Addr.Admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Pool returns the proxy's view of its pool, by gateway name.
func Pool(ctx context.Context, proxy *child.Proc) (map[string]PoolMember, error) {
	var ms []PoolMember
	if err := GetJSON(ctx, proxy, "/pool", &ms); err != nil {
		return nil, err
	}
	out := make(map[string]PoolMember, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out, nil
}

// pollEvery is WaitPool's polling period.
const pollEvery = 20 * time.Millisecond

// WaitPool polls the proxy's pool until cond holds, and returns it; it
// fails when within passes, ctx ends or the proxy exits, saying the last
// pool it saw.
func WaitPool(ctx context.Context, proxy *child.Proc, within time.Duration, cond func(map[string]PoolMember) bool) (map[string]PoolMember, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var last map[string]PoolMember
	var lastErr error
	for {
		pool, err := Pool(ctx, proxy)
		if err == nil && cond(pool) {
			return pool, nil
		}
		if err == nil {
			last = pool
		} else {
			lastErr = err
		}
		if proxy.Exited() {
			return nil, fmt.Errorf("cluster: proxy exited (code %d); stderr:\n%s", proxy.ExitCode(), proxy.Stderr())
		}
		select {
		case <-ctx.Done():
			err := ctx.Err()
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("not within %v", within)
			}
			return nil, fmt.Errorf("cluster: waiting for the proxy's pool: %w (last pool %v, last error %v)", err, last, lastErr)
		case <-t.C:
		}
	}
}

// Routes is a WaitPool condition: every gateway of names is ready in the
// pool and connected.
func Routes(names ...string) func(map[string]PoolMember) bool {
	return func(pool map[string]PoolMember) bool {
		for _, n := range names {
			if m := pool[n]; m.State != "ready" || m.Conns == 0 {
				return false
			}
		}
		return true
	}
}

// Names returns the names of ps.
func Names(ps []*child.Proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}
