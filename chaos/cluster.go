package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/internal/child"
)

// cluster is the processes of a run: gateways gw1..gwN and proxies
// p1..pM, one gossip pool. A gateway restarted keeps its name (a new
// process, a new member); a proxy restarted keeps its ports, so that its
// clients' redials reach it. On loopback (net nil) every process listens
// on 127.0.0.1; with a netns network each name has a namespace and an
// address of its own, kept across restarts, and gateways can be cut off.
type cluster struct {
	bin        string
	key        string
	logDir     string   // every process's stderr goes to a file there; "": kept in memory only
	gatewayArg []string // extra flags for every gateway
	proxyArg   []string // extra flags for every proxy
	net        *netns   // nil: loopback

	mu      sync.Mutex
	gws     map[string]*gateway
	proxies map[string]*proxy
	order   []string       // gateway names in the order they first started
	all     []*child.Proc  // every process started, for the end's leak check
	runs    map[string]int // processes started per name, for log file names
	cuts    map[string]cut // gateway → the partition it is under
}

// cut is a gateway's partition: from the proxies named, or from every
// other process of the run.
type cut struct {
	all     bool
	proxies []string
}

// from reports whether the cut separates its gateway from process p.
func (c cut) from(p string) bool { return c.all || slices.Contains(c.proxies, p) }

type gateway struct {
	proc     *child.Proc
	stopped  bool // SIGSTOPped
	draining bool // SIGTERMed, not yet restarted
	down     bool // killed or exited, not yet restarted
}

type proxy struct {
	name, tcp, admin string
	proc             *child.Proc
	down             bool
	fds              int // open fds once connected to the pool, before the workload
}

// newCluster makes a cluster on loopback, or in network namespaces when
// mode is NetNetns (then close removes them).
func newCluster(bin, logDir, mode string, gatewayArgs, proxyArgs []string) (*cluster, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, logDir: logDir, key: base64.StdEncoding.EncodeToString(k), gatewayArg: gatewayArgs, proxyArg: proxyArgs,
		gws: map[string]*gateway{}, proxies: map[string]*proxy{}, runs: map[string]int{}, cuts: map[string]cut{}}
	switch mode {
	case "", NetLoopback:
	case NetNetns:
		var err error
		if c.net, err = newNetns(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("chaos: unknown network mode %q (loopback or netns)", mode)
	}
	return c, nil
}

// host returns the address process name listens on: its namespace's (made
// on first use) or loopback.
func (c *cluster) host(name string) (string, error) {
	if c.net == nil {
		return "127.0.0.1", nil
	}
	s, err := c.net.space(name)
	if err != nil {
		return "", err
	}
	return s.ip, nil
}

// logLevel is a process's log level: warn, unless their logs are kept in
// files; then info for proxies (pool changes, drains) and debug for
// gateways (every session a drain hands over, and to whom).
func (c *cluster) logLevel(gateway bool) string {
	switch {
	case c.logDir == "":
		return "warn"
	case gateway:
		return "debug"
	}
	return "info"
}

// start runs a graftlb command named name, its stderr in a file of the log
// directory (name.N.log for its N-th process) if there is one.
func (c *cluster) start(ctx context.Context, name string, args []string) (*child.Proc, error) {
	var o child.Options
	var f *os.File
	if c.logDir != "" {
		c.mu.Lock()
		c.runs[name]++
		n := c.runs[name]
		c.mu.Unlock()
		var err error
		if f, err = os.Create(filepath.Join(c.logDir, fmt.Sprintf("%s.%d.log", name, n))); err != nil {
			return nil, err
		}
		o.Stderr = f
	}
	bin := c.bin
	if c.net != nil {
		var err error
		if bin, args, err = c.net.command(name, c.bin, args); err != nil {
			return nil, err
		}
	}
	p, err := child.Start(ctx, name, bin, args, o)
	if f != nil {
		if err != nil {
			_ = f.Close()
		} else {
			go func() { // ends when the process does
				<-p.Done()
				_ = f.Close()
			}()
		}
	}
	return p, err
}

// seed returns the gossip address of a live member for name to join
// through: one not cut off from it.
func (c *cluster) seed(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.order {
		if g := c.gws[n]; !g.down && !g.stopped && !g.draining && !c.cutLocked(n, name) {
			return g.proc.Addr.Gossip
		}
	}
	for _, p := range c.proxies {
		if !p.down {
			return p.proc.Addr.Gossip
		}
	}
	return ""
}

// startGateway starts (or restarts) gateway name.
func (c *cluster) startGateway(ctx context.Context, name string) error {
	h, err := c.host(name)
	if err != nil {
		return err
	}
	args := []string{"gateway", "--name", name, "--tcp", h + ":0", "--ws", h + ":0", "--http", h + ":0",
		"--gossip", h + ":0", "--gossip-key", c.key, "--log-level", c.logLevel(true), "--log-format", "json"}
	if s := c.seed(name); s != "" {
		args = append(args, "--join", s)
	}
	p, err := c.start(ctx, name, append(args, c.gatewayArg...))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, p)
	if _, ok := c.gws[name]; !ok {
		c.order = append(c.order, name)
	}
	c.gws[name] = &gateway{proc: p}
	return nil
}

// startProxy starts proxy name, on its client port of before if it ran
// already (its clients redial that). A port another process took since it
// was chosen is chosen again: any port on a first start, the admin port on
// a restart.
func (c *cluster) startProxy(ctx context.Context, name string) error {
	c.mu.Lock()
	pr := c.proxies[name]
	c.mu.Unlock()
	first := pr == nil
	if first {
		pr = &proxy{name: name}
	}
	var p *child.Proc
	h, err := c.host(name)
	if err != nil {
		return err
	}
	for try := 0; try < 20; try++ {
		switch {
		case c.net != nil: // its namespace's ports are its own
			pr.tcp, pr.admin = h+":9990", h+":9991"
		default:
			if first || pr.tcp == "" {
				if pr.tcp, err = freePort(); err != nil {
					return err
				}
			}
			if pr.admin, err = freePort(); err != nil {
				return err
			}
		}
		args := []string{"proxy", "--name", name, "--tcp", pr.tcp, "--ws", "", "--admin", pr.admin,
			"--gossip", h + ":0", "--gossip-key", c.key, "--log-level", c.logLevel(false), "--log-format", "json"}
		if c.net != nil {
			args = append(args, "--admin-insecure") // on the run's private bridge, reachable from the run alone
		}
		if s := c.seed(name); s != "" {
			args = append(args, "--join", s)
		}
		if p, err = c.start(ctx, name, append(args, c.proxyArg...)); err == nil {
			break
		}
		select { // the old process's port may take a moment to be free
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, p)
	pr.proc, pr.down = p, false
	c.proxies[name] = pr
	return nil
}

// freePort returns a loopback address nobody listens on now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// signalGateway sends sig to gateway name's process and records what it
// does to the truth.
func (c *cluster) signalGateway(name string, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gws[name]
	if g == nil || g.down {
		return fmt.Errorf("chaos: gateway %s is not running", name)
	}
	if err := g.proc.Signal(sig); err != nil {
		return err
	}
	switch sig {
	case syscall.SIGKILL:
		g.down = true
	case syscall.SIGSTOP:
		g.stopped = true
	case syscall.SIGCONT:
		g.stopped = false
	case syscall.SIGTERM:
		g.draining = true
	}
	return nil
}

// gatewayProc returns gateway name's current process.
func (c *cluster) gatewayProc(name string) *child.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.gws[name]; g != nil {
		return g.proc
	}
	return nil
}

// signalProxy sends sig to proxy name.
func (c *cluster) signalProxy(name string, sig syscall.Signal) (*child.Proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proxies[name]
	if p == nil || p.down {
		return nil, fmt.Errorf("chaos: proxy %s is not running", name)
	}
	p.down = true
	return p.proc, p.proc.Signal(sig)
}

// serving returns the gateways that should serve now: running, not
// stopped, not draining.
func (c *cluster) serving() []string { return c.servingFor("") }

// servingFor returns the gateways proxy p should route to now: those that
// serve and are not cut off from it ("": from any proxy).
func (c *cluster) servingFor(p string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.order {
		if g := c.gws[n]; !g.down && !g.stopped && !g.draining && (p == "" || !c.cutLocked(n, p)) {
			out = append(out, n)
		}
	}
	return out
}

// cutLocked reports whether a cut separates processes a and b (either
// may be the gateway). Caller holds c.mu.
func (c *cluster) cutLocked(a, b string) bool {
	if k, ok := c.cuts[a]; ok && k.from(b) {
		return true
	}
	k, ok := c.cuts[b]
	return ok && k.from(a)
}

// partition cuts gateway gw off from the proxies named, or from every
// other process when proxies is nil: its namespace drops their packets.
func (c *cluster) partition(gw string, proxies []string) error {
	if c.net == nil {
		return fmt.Errorf("chaos: partitions need --net netns")
	}
	if err := c.net.cut(gw, proxies); err != nil {
		return err
	}
	c.mu.Lock()
	c.cuts[gw] = cut{all: proxies == nil, proxies: proxies}
	c.mu.Unlock()
	return nil
}

// heal ends gateway gw's partition.
func (c *cluster) heal(gw string) error {
	c.mu.Lock()
	delete(c.cuts, gw)
	c.mu.Unlock()
	return c.net.heal(gw)
}

// liveProxies returns the proxies running now.
func (c *cluster) liveProxies() []*proxy {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*proxy
	for _, p := range c.proxies {
		if !p.down {
			out = append(out, p)
		}
	}
	return out
}

// proxyAddr returns proxy name's client address.
func (c *cluster) proxyAddr(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proxies[name].tcp
}

// poolMember is what a proxy's GET /pool says of a gateway.
type poolMember struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Check string `json:"check"`
	Conns int    `json:"conns"`
}

// poolServing returns the gateways proxy p's pool says it routes to, and
// what it says of every gateway.
func poolServing(hc *http.Client, p *proxy) ([]string, []poolMember, error) {
	resp, err := hc.Get("http://" + p.admin + "/pool")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var pool []poolMember
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("chaos: GET /pool of %s: %s", p.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&pool); err != nil {
		return nil, nil, err
	}
	var out []string
	for _, m := range pool {
		if m.State == "ready" && m.Check == "up" && m.Conns > 0 {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out, pool, nil
}

// openFDs counts a process's open file descriptors.
func openFDs(pid int) int {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// close stops every process: SIGCONT first (a stopped one cannot die
// cleanly otherwise), then SIGKILL, and waits for them; then it removes
// the namespaces, if any.
func (c *cluster) close() {
	if c.net != nil {
		defer c.net.close()
	}
	c.mu.Lock()
	all := append([]*child.Proc(nil), c.all...)
	c.mu.Unlock()
	for _, p := range all {
		if !p.Exited() {
			_ = p.Signal(syscall.SIGCONT)
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range all {
		<-p.Done()
	}
}
