package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// TestSIGHUPDoesNotKill sends SIGHUP to a gateway and a proxy the moment
// their listening lines are out (a process manager's reload at the worst
// moment): both keep serving, say so in the log, and a later SIGTERM still
// stops them cleanly with exit 0.
func TestSIGHUPDoesNotKill(t *testing.T) {
	gw := startGW(t, "gw1")
	px := startProxyProc(t, "--backend", "tcp://"+gw.Addr.TCP+"#name=gw1")
	for _, p := range []*proctest.Proc{gw, px} {
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*proctest.Proc{gw, px} {
		proctest.Eventually(t, 10*time.Second, "SIGHUP logged", func() bool {
			return strings.Contains(p.Stderr(), "SIGHUP")
		})
		if p.Exited() {
			t.Fatalf("a SIGHUP stopped the process: exit %d", p.ExitCode())
		}
	}
	c := dialT(t, "tcp://"+px.Addr.TCP)
	if _, err := c.Session().CallStateless(ctxT(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("a call after SIGHUP: %v", err)
	}
	_ = c.Close()
	for _, p := range []*proctest.Proc{px, gw} {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code, ok := p.Wait(20 * time.Second); !ok || code != 0 {
			t.Fatalf("SIGTERM after SIGHUP: exit %d (exited %v)", code, ok)
		}
	}
}

// TestSIGTERMRightAfterListening stops a gateway and a proxy with SIGTERM
// as soon as their listening lines are read: the signal handlers are in
// place by then, so both exit 0 rather than die of the signal.
func TestSIGTERMRightAfterListening(t *testing.T) {
	for i := 0; i < 3; i++ {
		gw := startGW(t, "gw1")
		px := startProxyProc(t, "--backend", "tcp://"+gw.Addr.TCP+"#name=gw1")
		for _, p := range []*proctest.Proc{px, gw} {
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code, ok := p.Wait(20 * time.Second); !ok || code != 0 {
				t.Fatalf("SIGTERM right after listening: exit %d (exited %v)\n%s", code, ok, p.StderrTail(10))
			}
		}
	}
}
