package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Network modes of a run (Config.Net).
const (
	NetLoopback = "loopback" // every process on 127.0.0.1: no partitions
	NetNetns    = "netns"    // every process in a network namespace of its own: partitions
)

// netns is the network of a run in NetNetns mode: a hub namespace holding
// a bridge, one namespace per process name (gw1, p1...) with a veth to the
// bridge and an address of a private /24, and a veth from the run's own
// namespace to the bridge (address .1), through which the workload, the
// monitor and the fault setters reach every process. The bridge is in a
// namespace of its own, not in the host's, because a host's firewall
// (Docker's FORWARD policy DROP with br_netfilter) filters bridged
// traffic.
//
// A partition is a set of addresses a namespace drops, in and out (an nft
// table made with the namespace); heal flushes the set. Everything is named
// after the run's process id, so that a run that was SIGKILLed and could
// not clean up is cleaned up by the next run (sweepStale).
type netns struct {
	pid    int
	prefix string // "10.213.N": the /24 of the run
	hub    string // the hub namespace

	mu     sync.Mutex
	spaces map[string]*space // process name → its namespace
	next   int               // last host number given
	made   []string          // namespaces made, hub first, for close
	links  []string          // links made in the run's own namespace
}

// space is the namespace of one process name: a restarted process gets the
// same one, and so the same address.
type space struct {
	ns, ip string
}

const (
	nsPrefix = "graftlb-chaos-"
	nftTable = "graftlb_chaos"
)

// runCmd runs a command of the network's set-up and says what failed.
func runCmd(stdin string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chaos: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// NetnsUsable says why this machine cannot run NetNetns, or nil: it needs
// root (CAP_NET_ADMIN and CAP_SYS_ADMIN), ip and nft.
func NetnsUsable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("chaos: --net netns needs root (network namespaces, veths and nft rules); run as root or use --net loopback (no partitions)")
	}
	for _, t := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("chaos: --net netns needs %s (iproute2, nftables): %v", t, err)
		}
	}
	return nil
}

// tag names the run's links: interface names have at most 15 bytes.
func (n *netns) tag() string { return "gc" + strconv.FormatInt(int64(n.pid), 36) }

// newNetns makes the hub and the run's own link to it. On error nothing
// it made is left.
func newNetns() (n *netns, err error) {
	if err := NetnsUsable(); err != nil {
		return nil, err
	}
	sweepStale()
	n = &netns{pid: os.Getpid(), spaces: map[string]*space{}, next: 1}
	n.hub = nsPrefix + strconv.Itoa(n.pid)
	if n.prefix, err = freeSubnet(n.pid); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	br, root, peer := n.tag()+"br", n.tag()+"r", n.tag()+"rp"
	steps := [][]string{
		{"netns", "add", n.hub},
		{"-n", n.hub, "link", "add", br, "type", "bridge"},
		{"-n", n.hub, "link", "set", br, "up"},
		{"link", "add", root, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", n.hub},
		{"-n", n.hub, "link", "set", peer, "master", br, "up"},
		{"addr", "add", n.prefix + ".1/24", "dev", root},
		{"link", "set", root, "up"},
	}
	for i, s := range steps {
		if err := runCmd("", "ip", s...); err != nil {
			return n, err
		}
		switch i {
		case 0:
			n.made = append(n.made, n.hub)
		case 3:
			n.links = append(n.links, root)
		}
	}
	return n, nil
}

// freeSubnet picks a 10.213.N.0/24 no interface of this namespace has an
// address in.
func freeSubnet(pid int) (string, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("chaos: ip addr show: %v", err)
	}
	for try := 0; try < 250; try++ {
		p := "10.213." + strconv.Itoa((pid+try)%250+1)
		if !bytes.Contains(out, []byte(" "+p+".")) {
			return p, nil
		}
	}
	return "", fmt.Errorf("chaos: no free subnet in 10.213.0.0/16")
}

// sweepStale removes the namespaces and links of earlier runs whose
// process is gone (a run SIGKILLed cannot clean up after itself).
func sweepStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	dead := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		ps, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(ps)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // a live run's
		}
		dead[pid] = true
		_ = runCmd("", "ip", "netns", "del", name)
	}
	for pid := range dead {
		_ = runCmd("", "ip", "link", "del", (&netns{pid: pid}).tag()+"r")
	}
}

// space returns the namespace of process name, making it on first use:
// a veth to the bridge, the next address of the /24, and the nft table
// of its partitions.
func (n *netns) space(name string) (*space, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.spaces[name]; s != nil {
		return s, nil
	}
	if n.next >= 254 {
		return nil, fmt.Errorf("chaos: no address left for %s", name)
	}
	n.next++
	s := &space{ns: n.hub + "-" + name, ip: n.prefix + "." + strconv.Itoa(n.next)}
	host, in := n.tag()+"h"+strconv.Itoa(n.next), n.tag()+"n"+strconv.Itoa(n.next)
	if err := runCmd("", "ip", "netns", "add", s.ns); err != nil {
		return nil, err
	}
	n.made = append(n.made, s.ns)
	steps := [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", in},
		{"link", "set", host, "netns", n.hub},
		{"-n", n.hub, "link", "set", host, "master", n.tag() + "br", "up"},
		{"link", "set", in, "netns", s.ns},
		{"-n", s.ns, "addr", "add", s.ip + "/24", "dev", in},
		{"-n", s.ns, "link", "set", in, "up"},
		{"-n", s.ns, "link", "set", "lo", "up"},
	}
	for _, st := range steps {
		if err := runCmd("", "ip", st...); err != nil {
			_ = runCmd("", "ip", "link", "del", host) // in case it is still here
			return nil, err
		}
	}
	rules := "table inet " + nftTable + " {\n" +
		"  set cut { type ipv4_addr; flags interval; }\n" +
		"  chain in { type filter hook input priority 0; ip saddr @cut drop; }\n" +
		"  chain out { type filter hook output priority 0; ip daddr @cut drop; }\n}\n"
	if err := runCmd(rules, "ip", "netns", "exec", s.ns, "nft", "-f", "-"); err != nil {
		return nil, err
	}
	n.spaces[name] = s
	return s, nil
}

// command returns how to run bin in the namespace of name: through
// `ip netns exec`, which execs it (the process is the child's own, and
// signals reach it).
func (n *netns) command(name, bin string, args []string) (string, []string, error) {
	s, err := n.space(name)
	if err != nil {
		return "", nil, err
	}
	return "ip", append([]string{"netns", "exec", s.ns, bin}, args...), nil
}

// ip returns the address of name's namespace ("" if it has none yet).
func (n *netns) ip(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.spaces[name]; s != nil {
		return s.ip
	}
	return ""
}

// cut makes name's namespace drop every packet to and from the addresses
// of peers; every other process of the run when peers is nil (the run's
// own address stays reachable: the fault setters and the monitor use it).
func (n *netns) cut(name string, peers []string) error {
	n.mu.Lock()
	s := n.spaces[name]
	var elems []string
	if peers == nil {
		own, _ := strconv.Atoi(s.ip[strings.LastIndexByte(s.ip, '.')+1:])
		if own > 2 {
			elems = append(elems, fmt.Sprintf("%s.2-%s.%d", n.prefix, n.prefix, own-1))
		}
		if own < 254 {
			elems = append(elems, fmt.Sprintf("%s.%d-%s.254", n.prefix, own+1, n.prefix))
		}
	}
	for _, p := range peers {
		if ps := n.spaces[p]; ps != nil {
			elems = append(elems, ps.ip)
		}
	}
	n.mu.Unlock()
	if s == nil || len(elems) == 0 {
		return fmt.Errorf("chaos: nothing to cut %s from", name)
	}
	return runCmd("", "ip", "netns", "exec", s.ns, "nft", "add", "element", "inet", nftTable, "cut", "{ "+strings.Join(elems, ", ")+" }")
}

// heal ends every cut of name's namespace.
func (n *netns) heal(name string) error {
	n.mu.Lock()
	s := n.spaces[name]
	n.mu.Unlock()
	if s == nil {
		return fmt.Errorf("chaos: no namespace for %s", name)
	}
	return runCmd("", "ip", "netns", "exec", s.ns, "nft", "flush", "set", "inet", nftTable, "cut")
}

// reachable reports whether a protocol call from from's namespace to addr
// (a gateway's TCP listener) is answered within d: it runs bin's own
// `graftlb call` there.
func (n *netns) reachable(ctx context.Context, bin, from, addr string, d time.Duration) bool {
	n.mu.Lock()
	s := n.spaces[from]
	n.mu.Unlock()
	if s == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, d+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.ns, bin, "call", "--target", "tcp://"+addr, "--stateless",
		"--timeout", d.String(), "orders@1.Orders.GetOrder", `["o-1"]`)
	return cmd.Run() == nil
}

// close deletes every namespace (their veths and nft tables go with them)
// and the run's own link. The processes in them must have exited.
func (n *netns) close() {
	n.mu.Lock()
	made, links := n.made, n.links
	n.made, n.links = nil, nil
	n.mu.Unlock()
	for i := len(made) - 1; i >= 0; i-- {
		_ = runCmd("", "ip", "netns", "del", made[i])
	}
	for _, l := range links {
		_ = runCmd("", "ip", "link", "del", l)
	}
}
