package child_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/child"
	"github.com/graftlb/graftlb/internal/proctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(proctest.Cleanup)) }

func TestStartReadsListeningAndStops(t *testing.T) {
	bin := proctest.Binary(t)
	p, err := child.Start(context.Background(), "gw1", bin,
		[]string{"gateway", "--name", "gw1", "--tcp", "127.0.0.1:0", "--ws", "", "--http", "127.0.0.1:0"}, child.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr.Name != "gw1" || p.Addr.TCP == "" || p.Addr.HTTP == "" || p.Addr.WS != "" {
		t.Fatalf("listening line read as %+v", p.Addr)
	}
	if cpu, err := p.CPU(); err != nil || cpu < 0 {
		t.Fatalf("CPU = %v, %v", cpu, err)
	}
	if ok, err := p.Listens(p.Addr.TCP); !ok || err != nil {
		t.Fatalf("Listens(%s) = %v, %v: the gateway said it listens there", p.Addr.TCP, ok, err)
	}
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ok, err := p.Listens(other.Addr().String()); ok || err != nil {
		t.Fatalf("Listens(%s) = %v, %v: the test holds that socket, not the gateway", other.Addr(), ok, err)
	}
	p.Stop(10 * time.Second) // SIGTERM drains the gateway, which exits 0
	if p.Forced() || p.ExitCode() != 0 {
		t.Fatalf("after SIGTERM: forced %v, exit %d; stderr:\n%s", p.Forced(), p.ExitCode(), p.Stderr())
	}
}

func TestStartFailsClearly(t *testing.T) {
	bin := proctest.Binary(t)
	_, err := child.Start(context.Background(), "bad", bin, []string{"gateway", "--nope"}, child.Options{})
	if err == nil || !strings.Contains(err.Error(), "exited with code 2 before listening") ||
		!strings.Contains(err.Error(), "flag provided but not defined") {
		t.Fatalf("a failing command: %v", err)
	}
	// A server that prints no listening line in time is killed.
	_, err = child.Start(context.Background(), "silent", "sleep", []string{"30"}, child.Options{ListenTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no listening line") {
		t.Fatalf("a silent command: %v", err)
	}
}

func TestRunAndKill(t *testing.T) {
	p, err := child.Run("sleep", "sleep", []string{"30"}, child.Options{OwnGroup: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("exited at once")
	}
	p.Stop(0) // no grace: SIGTERM, then SIGKILL at once
	if !p.Exited() || p.ExitCode() != -1 {
		t.Fatalf("after Stop: exited %v, code %d", p.Exited(), p.ExitCode())
	}
}

func TestUsageCountsDescendants(t *testing.T) {
	// A master with two workers, as nginx runs; on SIGTERM it stops them
	// (its own process group) and exits.
	p, err := child.Run("master", "sh", []string{"-c", `trap 'kill 0; exit 0' TERM; sleep 30 & sleep 30 & wait`},
		child.Options{OwnGroup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	var u child.Usage
	proctest.Eventually(t, 5*time.Second, "the master and its 2 workers counted", func() bool {
		u, err = p.Usage()
		return err == nil && u.Procs == 3
	})
	if u.RSS <= 0 {
		t.Fatalf("usage %+v", u)
	}
	single, err := child.Run("sleep", "sleep", []string{"30"}, child.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Kill()
	if u, err := single.Usage(); err != nil || u.Procs != 1 {
		t.Fatalf("a process without children: usage %+v, %v", u, err)
	}
}
