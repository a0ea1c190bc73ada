package balancer

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/proctest"
)

// front is an L4 balancer in the test: it forwards each connection to the
// first backend that accepts it, as HAProxy with `option redispatch` does
// when a proxy's listener is closed.
type front struct {
	ln       net.Listener
	backends atomic.Pointer[[]string]
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     map[net.Conn]struct{}
}

func startFront(t *testing.T, backends ...string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, open: map[net.Conn]struct{}{}}
	f.set(backends...)
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *front) set(backends ...string) { f.backends.Store(&backends) }

func (f *front) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		var up net.Conn
		for _, addr := range *f.backends.Load() {
			if up, err = net.Dial("tcp", addr); err == nil {
				break
			}
		}
		if up == nil {
			_ = c.Close()
			continue
		}
		f.mu.Lock()
		f.open[c], f.open[up] = struct{}{}, struct{}{}
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(c, up)
		go f.pipe(up, c)
	}
}

func (f *front) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

func (f *front) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.open {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TestRollingRestartOfProxies restarts both proxies behind an L4 front,
// one after the other, under a mixed load of stateless calls and carts
// that pause between calls: every proxy drains (not ready, listeners
// closed, GOAWAY RECONNECT to its clients), the Go client moves to the
// other proxy and resumes, and not one call fails nor one cart is lost.
func TestRollingRestartOfProxies(t *testing.T) {
	gs := startGateways(t, 3, nil)
	quick := func(c *Config) { c.DrainDelay = 50 * time.Millisecond }
	for _, binding := range []string{"tcp", "ws"} {
		t.Run(binding, func(t *testing.T) {
			addrOf := func(p *Proxy) string {
				if binding == "ws" {
					return p.Addrs().WS
				}
				return p.Addrs().TCP
			}
			pa, pb := startProxy(t, gs, quick), startProxy(t, gs, quick)
			fr := startFront(t, addrOf(pa), addrOf(pb))
			target := "tcp://" + fr.ln.Addr().String()
			if binding == "ws" {
				target = "ws://" + fr.ln.Addr().String() + "/ws"
			}
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var calls, failed atomic.Int64
			var firstErr atomic.Pointer[error]
			fail := func(err error) {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
			var wg sync.WaitGroup
			for w := range 6 {
				c, err := client.Dial(ctx, target, client.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if w%2 == 0 {
							if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil && ctx.Err() == nil {
								fail(err)
							}
							calls.Add(1)
							continue
						}
						// A cart of 5 items, 20 ms apart, read back exactly.
						obj, err := c.NewSession().New(ctx, "cart@1", "Cart")
						if err != nil {
							if ctx.Err() == nil {
								fail(err)
							}
							continue
						}
						for i := range 5 {
							if _, err := obj.Call(ctx, "AddItem", "pen", int64(i)); err != nil && ctx.Err() == nil {
								fail(err)
							}
							calls.Add(1)
							time.Sleep(20 * time.Millisecond) // the cart's own pace, not a wait for the test
						}
						r, err := obj.Call(ctx, "Total")
						var tot cart.TotalResult
						if err == nil {
							err = r.Decode(&tot)
						}
						if err == nil && tot.Total != 10 {
							err = errors.New("cart read back wrong")
						}
						if err != nil && ctx.Err() == nil {
							fail(err)
						}
					}
				}()
			}
			waitCalls := func(n int64) {
				t.Helper()
				base := calls.Load()
				proctest.Eventually(t, 10*time.Second, "calls flowing", func() bool { return calls.Load() >= base+n })
			}
			restart := func(p *Proxy, other string) *Proxy {
				t.Helper()
				waitCalls(200)
				if n := p.Stats().Conns; n < 6 {
					t.Fatalf("the proxy to restart has %d clients, want all 6", n)
				}
				dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer dcancel()
				if err := p.Drain(dctx); err != nil {
					t.Fatalf("drain: %v (clients left %d)", err, p.Stats().Conns)
				}
				_ = p.Close()
				np := startProxy(t, gs, quick)
				fr.set(other, addrOf(np))
				return np
			}
			pa = restart(pa, addrOf(pb))
			if n := pb.Stats().Conns; n < 6 {
				t.Fatalf("after the first drain the other proxy has %d clients, want all 6", n)
			}
			restart(pb, addrOf(pa))
			if n := pa.Stats().Conns; n < 6 {
				t.Fatalf("after the second drain the restarted proxy has %d clients, want all 6", n)
			}
			waitCalls(200)
			cancel()
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d of %d calls failed during the rolling restart; first: %v", n, calls.Load(), *firstErr.Load())
			}
		})
	}
}

// TestDrainWithNowhereToMove drains a proxy under load whose clients have
// no other proxy to move to (they dial it directly, as a client of a single
// proxy does during its restart): the proxy still empties and stops well
// inside its drain grace, because calls that keep coming after the move
// window are refused unrun with DRAINING, and the Go client never shows
// that refusal to the caller (it waits to resend the call elsewhere).
func TestDrainWithNowhereToMove(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, func(c *Config) { c.DrainDelay = 50 * time.Millisecond })
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var drainingSeen, calls atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		c, err := client.Dial(ctx, "tcp://"+p.Addrs().TCP, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, time.Second)
				_, err := c.Session().CallStateless(cctx, "chaos@1.Chaos.Sleep", 5)
				ccancel()
				calls.Add(1)
				if errors.Is(err, client.ErrDraining) {
					drainingSeen.Add(1)
				}
				if err != nil && !c.Connected() {
					return // the proxy is gone and there is nowhere else
				}
			}
		}()
	}
	proctest.Eventually(t, 10*time.Second, "load flowing", func() bool { return calls.Load() > 100 })
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer dcancel()
	start := time.Now()
	if err := p.Drain(dctx); err != nil {
		t.Fatalf("drain under load with nowhere to move: %v after %v", err, time.Since(start))
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("drain took %v, want well inside its 20 s grace", took)
	}
	cancel()
	wg.Wait()
	if n := drainingSeen.Load(); n > 0 {
		t.Fatalf("%d calls showed the proxy's DRAINING refusal to the caller", n)
	}
}
