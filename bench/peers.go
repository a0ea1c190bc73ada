package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/graftlb/graftlb/internal/child"
)

// The transports of the compare scenario's runs.
const (
	transportTCP = "tcp"
	transportWS  = "ws"
)

// peerThreads is the threads (HAProxy nbthread) or worker processes
// (nginx worker_processes) a peer proxy gets in compare: one per core the
// bench may use, which is also Go's default GOMAXPROCS for the graftlb
// proxy. No proxy is pinned to a core; each may use them all.
func peerThreads() int { return runtime.NumCPU() }

// peerStopGrace bounds a peer's shutdown on SIGTERM before SIGKILL.
const peerStopGrace = 5 * time.Second

// findSbin returns the binary name: path if set, else name on PATH, else in
// /usr/sbin or /usr/local/sbin (where Debian installs servers, off the PATH
// of ordinary users).
func findSbin(name, path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if p, err2 := exec.LookPath(filepath.Join(dir, name)); err2 == nil {
			return p, nil
		}
	}
	return "", err
}

// startOnFreePort starts a server that cannot listen on port 0 and report
// the port (HAProxy, nginx): the bench picks a free port, args writes the
// server's configuration for it and returns its arguments, and the server
// is up once it listens on the port. If another process takes the port
// first, it tries again with another.
func startOnFreePort(ctx context.Context, name, bin string, o child.Options, args func(addr string) ([]string, error)) (*Proc, error) {
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		a, err := args(addr)
		if err != nil {
			return nil, err
		}
		p, err := child.Run(name, bin, a, o)
		if err != nil {
			return nil, err
		}
		lastErr = waitDial(ctx, p, addr, 10*time.Second)
		if lastErr == nil {
			// Another process may have taken the port first (the server then
			// fails to bind) and be what answered.
			var ours bool
			if ours, lastErr = p.Listens(addr); ours {
				p.Addr = Listening{Event: "listening", Name: name, TCP: addr}
				return p, nil
			}
			if lastErr == nil {
				lastErr = fmt.Errorf("bench: %s: another process listens on %s; stderr:\n%s", name, addr, p.Stderr())
			}
		}
		p.Stop(peerStopGrace)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, lastErr
}
