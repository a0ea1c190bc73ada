package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/graftlb/graftlb/internal/child"
)

// haproxyConfig is HAProxy in front of the gateways, with nbthread
// threads (%[1]d; one per core, its default) and mode %[2]s: tcp, or http
// for WebSocket, whose upgrade HAProxy passes on before it relays the
// connection as a tunnel (timeout tunnel, as its docs advise for
// WebSocket). It balances connections (leastconn, its advice for
// long-lived ones), so each client connection stays on one gateway for its
// life. The servers have no health checks and no maxconn: nothing takes a
// gateway out or queues calls (no breaker), and nothing is logged.
const haproxyConfig = `global
    maxconn 4096
    nbthread %[1]d

defaults
    mode %[2]s
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout tunnel 10m

frontend bench
    bind %[3]s
    default_backend gateways

backend gateways
    balance leastconn
%[4]s`

// FindHAProxy returns the haproxy binary: path if set, else haproxy on
// PATH, else in /usr/sbin or /usr/local/sbin (where Debian installs it,
// off the PATH of ordinary users).
func FindHAProxy(path string) (string, error) { return findSbin("haproxy", path) }

// startHAProxy runs HAProxy in front of gws, in TCP mode (transport tcp)
// or HTTP mode (ws), and waits until it accepts connections.
func startHAProxy(ctx context.Context, bin, dir string, gws []*Proc, transport string) (*Proc, error) {
	mode := "tcp"
	var servers strings.Builder
	for _, g := range gws {
		addr := g.Addr.TCP
		if transport == transportWS {
			mode, addr = "http", g.Addr.WS
		}
		fmt.Fprintf(&servers, "    server %s %s\n", g.Name, addr)
	}
	return startOnFreePort(ctx, "haproxy", bin, child.Options{}, func(addr string) ([]string, error) {
		cfg := filepath.Join(dir, "haproxy-"+transport+".cfg")
		text := fmt.Sprintf(haproxyConfig, peerThreads(), mode, addr, servers.String())
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			return nil, err
		}
		return []string{"-db", "-f", cfg}, nil
	})
}
