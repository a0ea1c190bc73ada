package bench

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/internal/child"
)

// Listening is the JSON line a graftlb command prints on stdout at start
// (DESIGN.md section 6).
type Listening = child.Listening

// Proc is a process a scenario started. Kill it when done: Kill waits for
// the exit. If the bench dies first, the kernel kills it (Linux).
type Proc = child.Proc

// StartGraftlb runs `bin args...` (a graftlb command) and waits for its
// listening line.
func StartGraftlb(ctx context.Context, bin, name string, args ...string) (*Proc, error) {
	return child.Start(ctx, name, bin, args, child.Options{})
}

// killAll kills every process and waits for them.
func killAll(ps []*Proc) {
	for _, p := range ps {
		if p != nil {
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range ps {
		if p != nil {
			<-p.Done()
		}
	}
}

// freePort returns a loopback address with a port nobody listens on now,
// for programs that cannot take port 0 and report it (HAProxy).
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitDial waits until addr accepts a TCP connection, p exits, or d passes.
func waitDial(ctx context.Context, p *Proc, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if p.Exited() {
			return fmt.Errorf("bench: %s exited (code %d) before listening on %s; stderr:\n%s", p.Name, p.ExitCode(), addr, p.Stderr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not listening on %s after %v: %w", p.Name, addr, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
