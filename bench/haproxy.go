package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// haproxyConfig is HAProxy in TCP mode in front of the gateways: it
// balances connections (leastconn, its advice for long-lived ones), so each
// client connection stays on one gateway for its life.
const haproxyConfig = `global
    maxconn 4096

defaults
    mode tcp
    timeout connect 2s
    timeout client 10m
    timeout server 10m

frontend bench
    bind %s
    default_backend gateways

backend gateways
    balance leastconn
%s`

// FindHAProxy returns the haproxy binary: path if set, else haproxy on
// PATH, else in /usr/sbin or /usr/local/sbin (where Debian installs it,
// off the PATH of ordinary users).
func FindHAProxy(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	p, err := exec.LookPath("haproxy")
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if p, err2 := exec.LookPath(filepath.Join(dir, "haproxy")); err2 == nil {
			return p, nil
		}
	}
	return "", err
}

// startHAProxy runs HAProxy in front of gws and waits until it accepts
// connections. HAProxy cannot report a port it chose, so the bench picks a
// free one; if another process takes it first, it tries again.
func startHAProxy(ctx context.Context, bin, dir string, gws []*Proc) (*Proc, error) {
	var servers strings.Builder
	for _, g := range gws {
		fmt.Fprintf(&servers, "    server %s %s\n", g.Name, g.Addr.TCP)
	}
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(haproxyConfig, addr, servers.String())), 0o600); err != nil {
			return nil, err
		}
		p, err := startProc("haproxy", bin, []string{"-db", "-f", cfg})
		if err != nil {
			return nil, err
		}
		if lastErr = waitDial(ctx, p, addr, 10*time.Second); lastErr == nil {
			p.Addr = Listening{Event: "listening", Name: "haproxy", TCP: addr}
			return p, nil
		}
		p.Kill()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, lastErr
}
