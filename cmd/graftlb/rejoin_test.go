package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// TestDeadMemberRejoinsWithinSeconds (issue 13): a gateway frozen
// (SIGSTOP) until gossip declares it dead, then thawed, is the same process
// and reachable again; it used to stay out of the pool until memberlist's
// next push/pull (about 30 s). The periodic re-join of the seeds brings it
// back within a few seconds.
func TestDeadMemberRejoinsWithinSeconds(t *testing.T) {
	c := newGossipCluster(t, "gw1", "gw2")
	gw2 := c.gws["gw2"]
	if err := gw2.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = gw2.Signal(syscall.SIGCONT)
		}
	}()
	proctest.Eventually(t, 30*time.Second, "gossip to declare gw2 dead", func() bool {
		_, ok := poolStates(t, c.proxy.Addr.Admin)["gw2"]
		return !ok
	})
	if err := gw2.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	thawed = true
	start := time.Now()
	const limit = 8 * time.Second
	proctest.Eventually(t, 40*time.Second, "gw2 back in the pool, ready", func() bool {
		return poolStates(t, c.proxy.Addr.Admin)["gw2"] == "ready"
	})
	took := time.Since(start)
	t.Logf("gw2 was back in the pool %v after SIGCONT", took.Round(10*time.Millisecond))
	if took > limit {
		t.Fatalf("gw2 took %v to come back, want under %v", took, limit)
	}
}
