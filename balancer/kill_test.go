package balancer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// startGatewayProcs runs n gateway processes gw1..gwN and a proxy in front
// of them (static list).
func startGatewayProcs(t *testing.T, n int) ([]*proctest.Proc, *Proxy) {
	t.Helper()
	return startGatewayProcsWith(t, n, nil)
}

// startGatewayProcsWith is startGatewayProcs with the proxy's config
// changed by mutate (nil: none).
func startGatewayProcsWith(t *testing.T, n int, mutate func(*Config)) ([]*proctest.Proc, *Proxy) {
	t.Helper()
	procs := make([]*proctest.Proc, n)
	ms := make([]discovery.Member, n)
	for i := range procs {
		procs[i] = proctest.Start(t, "gateway", "--name", gwName(i), "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0",
			"--http", "127.0.0.1:0", "--log-level", "warn")
		ms[i] = discovery.Member{Name: gwName(i), Role: discovery.RoleGateway,
			Addrs: discovery.Addrs{TCP: procs[i].Addr.TCP, WS: procs[i].Addr.WS, HTTP: procs[i].Addr.HTTP}}
	}
	cfg := Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0"}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg, discovery.NewStatic(ms))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return procs, p
}

// liveCart is a session that keeps adding to its cart and checks what the
// gateway says against its own tally.
type liveCart struct {
	testgw.CartSession
	lost      bool
	misrouted error
}

// TestGatewayKilledUnderMixedLoad SIGKILLs one of three gateways while
// stateful sessions and idempotent stateless calls run through the proxy:
// every session the dead gateway owned gets SESSION_LOST, every other
// session reads back exactly what it built, and no idempotent stateless
// call fails.
func TestGatewayKilledUnderMixedLoad(t *testing.T) {
	procs, p := startGatewayProcs(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "tcp://"+p.Addrs().TCP, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	carts := make([]*liveCart, 60)
	for i, cs := range testgw.BuildCarts(t, c, len(carts)) {
		carts[i] = &liveCart{CartSession: cs}
	}
	owned := 0
	for _, lc := range carts {
		if lc.Owner == "gw2" {
			owned++
		}
	}
	if owned == 0 {
		t.Fatal("no session landed on gw2; the test would prove nothing")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var statelessOK, statelessFailed atomic.Int64
	var firstStatelessErr atomic.Value
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := c.NewSession()
			req := client.Request{Target: protocol.Target{Module: "orders@1", Type: "Orders", Method: "GetOrder"},
				Stateless: true, Idempotent: true}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req.Args = []any{fmt.Sprintf("o-%d-%d", w, i)}
				if _, err := s.Do(ctx, req); err != nil {
					statelessFailed.Add(1)
					firstStatelessErr.CompareAndSwap(nil, err)
				} else {
					statelessOK.Add(1)
				}
			}
		}(w)
	}
	for _, lc := range carts {
		wg.Add(1)
		go func(lc *liveCart) {
			defer wg.Done()
			obj := c.ResumeSession(lc.ID).Object("cart@1", "Cart", lc.Object)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := obj.Call(ctx, "AddItem", "more", int64(1))
				switch {
				case errors.Is(err, protocol.ErrSessionLost):
					lc.lost = true
					return
				case errors.Is(err, protocol.ErrUnavailable):
					// DESIGN.md section 4: the owner's death is SESSION_LOST,
					// not a transient failure.
					lc.misrouted = fmt.Errorf("UNAVAILABLE instead of SESSION_LOST: %w", err)
					return
				case err != nil:
					lc.misrouted = err
					return
				}
				var a cart.Added
				if err := res.Decode(&a); err != nil {
					lc.misrouted = fmt.Errorf("AddItem answered %v", err)
					return
				}
				if lc.State, err = lc.Add(a, "more", 1, func(gw string) bool { return gw == lc.Owner }); err != nil {
					lc.misrouted = err
					return
				}
			}
		}(lc)
	}

	time.Sleep(300 * time.Millisecond) // load before the kill
	if err := procs[1].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	proctest.Eventually(t, 10*time.Second, "gw2 to leave the routing table", func() bool {
		for _, m := range p.Pool() {
			if m.Name == "gw2" && m.State == "down" {
				return true
			}
		}
		return false
	})
	t.Logf("gw2 marked down %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // load after the kill
	close(stop)
	wg.Wait()

	if n := statelessFailed.Load(); n != 0 {
		t.Errorf("%d of %d idempotent stateless calls failed; first: %v", n, n+statelessOK.Load(), firstStatelessErr.Load())
	}
	lost := 0
	for _, lc := range carts {
		if lc.misrouted != nil {
			t.Errorf("session %v on %s: %v", lc.ID, lc.Owner, lc.misrouted)
			continue
		}
		switch {
		case lc.Owner == "gw2" && !lc.lost:
			// Its worker stopped before noticing; the next call must say so.
			_, err := testgw.VerifyCart(ctx, c, lc.CartSession)
			if !errors.Is(err, protocol.ErrSessionLost) {
				t.Errorf("session %v owned by the dead gw2: %v, want SESSION_LOST", lc.ID, err)
			}
			lost++
		case lc.Owner == "gw2":
			lost++
		case lc.lost:
			t.Errorf("session %v on live %s got SESSION_LOST", lc.ID, lc.Owner)
		default:
			if _, err := testgw.VerifyCart(ctx, c, lc.CartSession); err != nil {
				t.Errorf("session %v on %s: %v", lc.ID, lc.Owner, err)
			}
		}
	}
	t.Logf("sessions: %d on gw2 lost (of %d owned), %d on live gateways verified; stateless calls ok %d",
		lost, owned, len(carts)-owned, statelessOK.Load())
}
