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
// clients' redials reach it.
type cluster struct {
	bin        string
	key        string
	logDir     string   // every process's stderr goes to a file there; "": kept in memory only
	gatewayArg []string // extra flags for every gateway
	proxyArg   []string // extra flags for every proxy

	mu      sync.Mutex
	gws     map[string]*gateway
	proxies map[string]*proxy
	order   []string       // gateway names in the order they first started
	all     []*child.Proc  // every process started, for the end's leak check
	runs    map[string]int // processes started per name, for log file names
}

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

func newCluster(bin, logDir string, gatewayArgs, proxyArgs []string) (*cluster, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return &cluster{bin: bin, logDir: logDir, key: base64.StdEncoding.EncodeToString(k), gatewayArg: gatewayArgs, proxyArg: proxyArgs,
		gws: map[string]*gateway{}, proxies: map[string]*proxy{}, runs: map[string]int{}}, nil
}

// logLevel is the processes' log level: info when their logs are kept in
// files (drains, handoffs and pool changes are logged at info), else warn.
func (c *cluster) logLevel() string {
	if c.logDir != "" {
		return "info"
	}
	return "warn"
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
	p, err := child.Start(ctx, name, c.bin, args, o)
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

// seed returns the gossip address of a live member to join through.
func (c *cluster) seed() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.order {
		if g := c.gws[n]; !g.down && !g.stopped && !g.draining {
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
	args := []string{"gateway", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--gossip", "127.0.0.1:0", "--gossip-key", c.key, "--log-level", c.logLevel(), "--log-format", "json"}
	if s := c.seed(); s != "" {
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
	var err error
	for try := 0; try < 20; try++ {
		if first || pr.tcp == "" {
			if pr.tcp, err = freePort(); err != nil {
				return err
			}
		}
		if pr.admin, err = freePort(); err != nil {
			return err
		}
		args := []string{"proxy", "--name", name, "--tcp", pr.tcp, "--ws", "", "--admin", pr.admin,
			"--gossip", "127.0.0.1:0", "--gossip-key", c.key, "--log-level", c.logLevel(), "--log-format", "json"}
		if s := c.seed(); s != "" {
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
func (c *cluster) serving() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.order {
		if g := c.gws[n]; !g.down && !g.stopped && !g.draining {
			out = append(out, n)
		}
	}
	return out
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
// cleanly otherwise), then SIGKILL, and waits for them.
func (c *cluster) close() {
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
