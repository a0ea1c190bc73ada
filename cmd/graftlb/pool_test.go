package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// gossipCluster is a proxy process with gateways joining it by gossip.
type gossipCluster struct {
	key   string
	proxy *proctest.Proc
	gws   map[string]*proctest.Proc
}

func newGossipCluster(t *testing.T, gateways ...string) *gossipCluster {
	t.Helper()
	c := &gossipCluster{key: newKey(), gws: map[string]*proctest.Proc{}}
	c.proxy = startProxyProc(t, "--gossip", "127.0.0.1:0", "--gossip-key", c.key)
	for _, name := range gateways {
		c.join(t, name)
	}
	c.waitPool(t, gateways...)
	return c
}

// join starts a gateway that joins the cluster through the proxy.
func (c *gossipCluster) join(t *testing.T, name string, extra ...string) *proctest.Proc {
	t.Helper()
	g := startGW(t, name, append([]string{"--gossip", "127.0.0.1:0", "--join", c.proxy.Addr.Gossip, "--gossip-key", c.key}, extra...)...)
	c.gws[name] = g
	return g
}

// waitPool waits until the proxy routes to exactly names, all ready.
func (c *gossipCluster) waitPool(t *testing.T, names ...string) {
	t.Helper()
	proctest.Eventually(t, 15*time.Second, fmt.Sprintf("pool %v", names), func() bool {
		st := poolStates(t, c.proxy.Addr.Admin)
		if len(st) != len(names) {
			return false
		}
		for _, n := range names {
			if st[n] != "ready" {
				return false
			}
		}
		return true
	})
}

// sessionLoad runs workers that each repeat a bounded stateful session: a
// new session and cart, some AddItem calls, then read it all back.
type sessionLoad struct {
	verified, lost, misrouted, failed atomic.Int64
	mu                                sync.Mutex
	perOwner                          map[string]int // verified sessions by gateway
	firstErr                          error
	stop                              chan struct{}
	wg                                sync.WaitGroup
}

func startSessionLoad(t *testing.T, c *client.Conn, workers, calls int, pause time.Duration) *sessionLoad {
	l := &sessionLoad{perOwner: map[string]int{}, stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(t, c, calls, pause)
			}
		}()
	}
	return l
}

func (l *sessionLoad) one(t *testing.T, c *client.Conn, calls int, pause time.Duration) {
	ctx := ctxT(t)
	s := c.NewSession()
	defer c.ForgetSession(s)
	retry := func(f func() error) error { // UNAVAILABLE means it did not run
		for {
			err := f()
			if !errors.Is(err, protocol.ErrUnavailable) {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var obj *client.Object
	err := retry(func() (err error) { obj, err = s.New(ctx, "cart@1", "Cart"); return err })
	cs := testgw.CartSession{ID: s.ID()}
	for i := 0; err == nil && i < calls; i++ {
		err = retry(func() error {
			_, err := obj.Call(ctx, "AddItem", "x", int64(i+1))
			return err
		})
		cs.Total += int64(i + 1)
		cs.Items = append(cs.Items, "x")
		time.Sleep(pause)
	}
	if err == nil {
		cs.Object = obj.ID()
		// The owner is not pinned: a draining gateway may hand the session
		// over between its last write and this read-back, and the state
		// must then be exactly the same on the new owner.
		var owner string
		err = retry(func() (err error) { owner, err = testgw.VerifyCart(ctx, c, cs); return err })
		if err == nil {
			l.verified.Add(1)
			l.mu.Lock()
			l.perOwner[owner]++
			l.mu.Unlock()
			return
		}
	}
	switch {
	case errors.Is(err, protocol.ErrSessionLost):
		l.lost.Add(1)
	default:
		if err != nil && len(err.Error()) > 10 && err.Error()[:10] == "misrouted:" {
			l.misrouted.Add(1)
		} else {
			l.failed.Add(1)
		}
		l.mu.Lock()
		if l.firstErr == nil {
			l.firstErr = err
		}
		l.mu.Unlock()
	}
}

func (l *sessionLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

// TestScaleOutByGossip (issue 4): a gateway started under steady load joins
// the pool by gossip and serves calls within 3 s, with no failed call.
func TestScaleOutByGossip(t *testing.T) {
	c := newGossipCluster(t, "gw1", "gw2")
	load := startStatelessLoad(t, dialT(t, "tcp://"+c.proxy.Addr.TCP), 8, false)
	load.waitOK(t, 200)
	started := time.Now()
	c.join(t, "gw3")
	proctest.Eventually(t, 10*time.Second, "gw3 to serve a call", func() bool {
		_, ok := load.first("gw3")
		return ok
	})
	at, _ := load.first("gw3")
	joinedIn := at.Sub(started)
	load.waitOK(t, 200)
	load.halt()
	t.Logf("gw3 served its first call %v after its process started; served %v", joinedIn.Round(time.Millisecond), load.served)
	if joinedIn > 3*time.Second {
		t.Errorf("gw3 took %v to serve, want ≤ 3s", joinedIn)
	}
	if n := load.failed(); n != 0 {
		t.Errorf("%d calls failed during scale-out: %v", n, load.failures)
	}
}

// TestDrainByGossip (issue 4): SIGTERM one of three gateways under mixed
// load: no stateless call fails, no session is lost, the drained gateway's
// sessions finish their work there, and it exits 0.
func TestDrainByGossip(t *testing.T) {
	c := newGossipCluster(t, "gw1", "gw2", "gw3")
	conn := dialT(t, "tcp://"+c.proxy.Addr.TCP)
	stateless := startStatelessLoad(t, conn, 6, false)
	sessions := startSessionLoad(t, conn, 100, 8, 20*time.Millisecond)
	proctest.Eventually(t, 20*time.Second, "sessions on gw2 before the drain", func() bool {
		sessions.mu.Lock()
		defer sessions.mu.Unlock()
		return sessions.perOwner["gw2"] >= 20
	})
	sessions.mu.Lock()
	beforeOnGW2 := sessions.perOwner["gw2"]
	sessions.mu.Unlock()
	if err := c.gws["gw2"].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	drainStart := time.Now()
	code, ok := c.gws["gw2"].Wait(30 * time.Second)
	t.Logf("gw2 drained and exited %v after SIGTERM (code %d)", time.Since(drainStart).Round(time.Millisecond), code)
	c.waitPool(t, "gw1", "gw3")
	stateless.waitOK(t, 100)
	sessions.halt()
	stateless.halt()
	if !ok || code != 0 {
		t.Fatalf("gw2 exit: code %d, exited %v; stderr:\n%s", code, ok, c.gws["gw2"].Stderr())
	}
	if n := stateless.failed(); n != 0 {
		t.Errorf("%d stateless calls failed during the drain: %v", n, stateless.failures)
	}
	sessions.mu.Lock()
	defer sessions.mu.Unlock()
	t.Logf("sessions verified %d (per gateway %v), lost %d, misrouted %d, failed %d",
		sessions.verified.Load(), sessions.perOwner, sessions.lost.Load(), sessions.misrouted.Load(), sessions.failed.Load())
	if sessions.lost.Load() != 0 || sessions.misrouted.Load() != 0 || sessions.failed.Load() != 0 {
		t.Errorf("sessions lost %d, misrouted %d, failed %d during a drain; first error: %v",
			sessions.lost.Load(), sessions.misrouted.Load(), sessions.failed.Load(), sessions.firstErr)
	}
	// gw2's sessions at the drain finished on it, or it handed them over
	// to the next gateways of their preference lists (which then answered
	// them, exactly: none misrouted).
	moved := movedInLog(c.gws["gw2"].Stderr())
	t.Logf("gw2 handed %d sessions over", moved)
	if sessions.perOwner["gw2"] <= beforeOnGW2 && moved == 0 {
		t.Errorf("no session finished on gw2 after its drain began (%d before), and it moved none", beforeOnGW2)
	}
}

// movedInLog returns sessions_moved from a drained gateway's last log line
// that has it.
func movedInLog(stderr string) int {
	n := 0
	for _, line := range strings.Split(stderr, "\n") {
		var e struct {
			Moved *int `json:"sessions_moved"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Moved != nil {
			n = *e.Moved
		}
	}
	return n
}

// TestDeathByGossip (issue 4): SIGKILL one of three gateways under load:
// it leaves the pool (time measured), its sessions get SESSION_LOST, none is
// misrouted; a gateway that comes back under the same name is a new
// member: old sessions stay lost, new ones may land on it.
func TestDeathByGossip(t *testing.T) {
	c := newGossipCluster(t, "gw1", "gw2", "gw3")
	conn := dialT(t, "tcp://"+c.proxy.Addr.TCP)
	carts := testgw.BuildCarts(t, conn, 60)
	onGW2 := 0
	for _, cs := range carts {
		if cs.Owner == "gw2" {
			onGW2++
		}
	}
	stateless := startStatelessLoad(t, conn, 6, false)
	stateless.waitOK(t, 100)
	if err := c.gws["gw2"].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	proctest.Eventually(t, 20*time.Second, "gw2 to leave the pool", func() bool {
		st, ok := poolStates(t, c.proxy.Addr.Admin)["gw2"]
		return !ok || st == "down"
	})
	removedIn := time.Since(killed)
	proctest.Eventually(t, 30*time.Second, "memberlist to drop gw2", func() bool {
		_, ok := poolStates(t, c.proxy.Addr.Admin)["gw2"]
		return !ok
	})
	forgottenIn := time.Since(killed)
	stateless.waitOK(t, 100)
	stateless.halt()
	t.Logf("SIGKILL gw2: out of routing after %v (failed connection), dropped from membership after %v; stateless calls failed: %d %v of %d",
		removedIn.Round(time.Millisecond), forgottenIn.Round(time.Millisecond), stateless.failed(), stateless.failures, stateless.ok.Load())
	check := func(phase string) {
		lost := 0
		for _, cs := range carts {
			_, err := testgw.VerifyCart(ctxT(t), conn, cs)
			switch {
			case cs.Owner == "gw2" && errors.Is(err, protocol.ErrSessionLost):
				lost++
			case cs.Owner == "gw2":
				t.Errorf("%s: session on dead gw2: %v, want SESSION_LOST", phase, err)
			case err != nil:
				t.Errorf("%s: session on %s: %v", phase, cs.Owner, err)
			}
		}
		if lost != onGW2 {
			t.Errorf("%s: %d sessions lost, gw2 owned %d", phase, lost, onGW2)
		}
	}
	check("after the kill")

	// gw2 comes back: a new member. Old sessions stay lost; new ones land.
	c.join(t, "gw2")
	c.waitPool(t, "gw1", "gw2", "gw3")
	check("after gw2 came back")
	fresh := testgw.BuildCarts(t, conn, 60)
	landed := 0
	for _, cs := range fresh {
		if cs.Owner == "gw2" {
			landed++
		}
	}
	if landed == 0 {
		t.Error("no new session landed on the new gw2")
	}
}

// TestWrongKeyNeverServes (issue 4): a gateway with another gossip key
// never enters the pool and never receives a call.
func TestWrongKeyNeverServes(t *testing.T) {
	c := newGossipCluster(t, "gw1")
	intruder := startGW(t, "intruder", "--gossip", "127.0.0.1:0", "--join", c.proxy.Addr.Gossip, "--gossip-key", newKey())
	load := startStatelessLoad(t, dialT(t, "tcp://"+c.proxy.Addr.TCP), 4, false)
	// The cluster refuses it: the proxy logs the refusal, the intruder
	// finds no seed that answers.
	proctest.Eventually(t, 15*time.Second, "the proxy to refuse the intruder", func() bool {
		return strings.Contains(c.proxy.Stderr(), "refused a gossip peer")
	})
	proctest.Eventually(t, 15*time.Second, "the intruder to give up on its seed", func() bool {
		return strings.Contains(intruder.Stderr(), "no gossip seed answered")
	})
	load.waitOK(t, 300)
	load.halt()
	if st := poolStates(t, c.proxy.Addr.Admin); len(st) != 1 {
		t.Errorf("pool %v, want only gw1", st)
	}
	if n := load.served["intruder"]; n != 0 {
		t.Errorf("the gateway with the wrong key served %d calls", n)
	}
	var stats struct {
		CallsServed map[string]uint64 `json:"calls_served"`
	}
	waitHTTP(t, "http://"+intruder.Addr.HTTP+"/stats", func(b []byte) bool { return jsonInto(b, &stats) })
	for m, n := range stats.CallsServed {
		if n != 0 {
			t.Errorf("intruder served %d calls of %s", n, m)
		}
	}
}

// TestTwoProxiesAgreeByGossip (issue 4): two proxies in one cluster route
// 200 sessions to the same owners.
func TestTwoProxiesAgreeByGossip(t *testing.T) {
	c := newGossipCluster(t, "gw1", "gw2", "gw3")
	pb := startProxyProc(t, "--name", "graftlb-b", "--gossip", "127.0.0.1:0", "--join", c.proxy.Addr.Gossip, "--gossip-key", c.key)
	proctest.Eventually(t, 15*time.Second, "proxy B to see the pool", func() bool {
		return len(poolStates(t, pb.Addr.Admin)) == 3
	})
	carts := testgw.BuildCarts(t, dialT(t, "tcp://"+c.proxy.Addr.TCP), 200)
	cb := dialT(t, "tcp://"+pb.Addr.TCP)
	for _, cs := range carts {
		if _, err := testgw.VerifyCart(ctxT(t), cb, cs); err != nil {
			t.Errorf("session %v (owner %s) through proxy B: %v", cs.ID, cs.Owner, err)
		}
	}
}
