package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/discovery"
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

// listening is the JSON line a graftlb server prints on stdout at start
// (DESIGN.md section 6).
type listening struct {
	Event  string `json:"event"`
	Name   string `json:"name"`
	TCP    string `json:"tcp"`
	HTTP   string `json:"http"`
	Admin  string `json:"admin"`
	Gossip string `json:"gossip"`
}

// proc is one child process: the proxy or a gateway.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr listening
	logs *tailBuffer
	done chan struct{} // closed once the process has exited and been reaped
	// forced is set when stop had to SIGKILL it; read it after done.
	forced bool
}

// exitCode is the child's exit code, -1 if a signal ended it. Call it
// after done is closed.
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process has exited already.
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// stop ends the process: SIGTERM (a gateway drains, the proxy closes),
// then SIGKILL once grace has passed. It returns when the process is reaped.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.forced = true
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

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
		"--http", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--join", c.proxy.addr.Gossip,
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
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	cmd.SysProcAttr = sysProcAttr()
	line := &firstLine{ch: make(chan []byte, 1)}
	p := &proc{name: name, cmd: cmd, logs: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	cmd.Stdout = line
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t := time.NewTimer(listenTimeout)
	defer t.Stop()
	select {
	case b := <-line.ch:
		if err := json.Unmarshal(b, &p.addr); err != nil || p.addr.Event != "listening" {
			p.stop(0)
			return nil, fmt.Errorf("%s printed %q, not its listening line", name, b)
		}
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited with code %d before listening:\n%s", name, p.exitCode(), p.logs.tail(10))
	case <-t.C:
		p.stop(0)
		return nil, fmt.Errorf("%s printed no listening line within %v", name, listenTimeout)
	case <-ctx.Done():
		p.stop(0)
		return nil, ctx.Err()
	}
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
		if !c.gws[name].exited() {
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
			p.stop(stopGrace)
		}()
	}
	wg.Wait()
	if ps[0] != nil {
		ps[0].stop(stopGrace)
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

func (c *cluster) adminURL(path string) string { return "http://" + c.proxy.addr.Admin + path }

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

// firstLine is a child's stdout: it hands over the first line (the
// listening JSON) and discards the rest. Only exec's copying goroutine
// writes to it.
type firstLine struct {
	buf  []byte
	ch   chan []byte
	sent bool
}

func (w *firstLine) Write(p []byte) (int, error) {
	if !w.sent {
		w.buf = append(w.buf, p...)
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			w.ch <- w.buf[:i]
			w.sent, w.buf = true, nil
		}
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes a child wrote to stderr, to show
// when something goes wrong.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// tail returns the last n complete lines.
func (t *tailBuffer) tail(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(t.b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
