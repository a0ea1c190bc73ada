package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// staticPool runs three gateway processes and returns them and the
// --backend flags that describe them.
func staticPool(t *testing.T) (names []string, flags []string) {
	for _, name := range []string{"gw1", "gw2", "gw3"} {
		g := startGW(t, name)
		names = append(names, name)
		flags = append(flags, "--backend", fmt.Sprintf("tcp://%s#name=%s", g.Addr.TCP, name))
	}
	return names, flags
}

// TestProxySpreadsOneConnection (issue 3): one client connection to a
// proxy process, three gateway processes, 3000 stateless calls with 64 in
// flight: each gateway serves 20–47%, every result right.
func TestProxySpreadsOneConnection(t *testing.T) {
	names, flags := staticPool(t)
	p := startProxyProc(t, flags...)
	c := dialT(t, "tcp://"+p.Addr.TCP)
	load := startStatelessLoad(t, c, 64, false)
	load.waitOK(t, 3000)
	load.halt()
	if n := load.failed(); n != 0 {
		t.Fatalf("%d calls failed: %v", n, load.failures)
	}
	total := 0
	for _, n := range load.served {
		total += n
	}
	t.Logf("served: %v of %d", load.served, total)
	for _, name := range names {
		share := float64(load.served[name]) / float64(total)
		if share < 0.20 || share > 0.47 {
			t.Errorf("%s served %.1f%%, want 20%%–47%%", name, 100*share)
		}
	}
}

// TestSessionsAgreeAcrossProxyProcesses (issue 3): 300 cart sessions built
// through proxy A read back exactly through proxy B, a second process
// started later that shares nothing with A.
func TestSessionsAgreeAcrossProxyProcesses(t *testing.T) {
	_, flags := staticPool(t)
	pa := startProxyProc(t, flags...)
	carts := testgw.BuildCarts(t, dialT(t, "tcp://"+pa.Addr.TCP), 300)
	pb := startProxyProc(t, flags...)
	for _, target := range []string{"tcp://" + pb.Addr.TCP, "ws://" + pb.Addr.WS + "/ws"} {
		cb := dialT(t, target)
		var wg sync.WaitGroup
		errs := make(chan error, len(carts))
		for _, cs := range carts {
			wg.Add(1)
			go func(cs testgw.CartSession) {
				defer wg.Done()
				if _, err := testgw.VerifyCart(ctxT(t), cb, cs); err != nil {
					errs <- fmt.Errorf("%s: session %v: %w", target, cs.ID, err)
				}
			}(cs)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// TestCallbacksAndEventsThroughProxyProcess (issue 3): a callback and
// events work through a proxy process as directly, over TCP and WebSocket.
func TestCallbacksAndEventsThroughProxyProcess(t *testing.T) {
	_, flags := staticPool(t)
	p := startProxyProc(t, flags...)
	for _, target := range []string{"tcp://" + p.Addr.TCP, "ws://" + p.Addr.WS + "/ws"} {
		s := dialT(t, target).NewSession()
		ref := s.Callback(func(_ context.Context, args []protocol.RawValue) (any, error) {
			var i int64
			err := protocol.Unmarshal(args[0], &i)
			return 2 * i, err
		})
		res, err := s.Call(ctxT(t), "ticker@1.Ticker.Each", 4, ref)
		var sum int64
		if err == nil {
			err = res.Decode(&sum)
		}
		if err != nil || sum != 12 {
			t.Fatalf("%s: Each = %d, %v; want 12", target, sum, err)
		}
		var mu sync.Mutex
		n := 0
		s.OnEvent(func(e client.Event) {
			var tk ticker.Tick
			if e.Decode(&tk) == nil && tk.Topic == "x" {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
		if _, err := s.Call(ctxT(t), "ticker@1.Ticker.Subscribe", "x", 25); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if n != 25 {
			t.Errorf("%s: %d events, want 25", target, n)
		}
		mu.Unlock()
	}
}

// TestPassthroughProcess (issue 3): pass-through mode in front of gateway
// processes: connections with the same key reach the same gateway,
// different keys spread, and a killed gateway's keys are served elsewhere.
func TestPassthroughProcess(t *testing.T) {
	var flags []string
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"gw1", "gw2", "gw3"} {
		g := startGW(t, name)
		procs[name] = g
		flags = append(flags, "--passthrough", fmt.Sprintf("ws://%s/ws#name=%s,http=%s", g.Addr.WS, name, g.Addr.HTTP))
	}
	p := startProxyProc(t, append(flags, "--passthrough-key", "query:session")...)
	if p.Addr.TCP != "" {
		t.Fatalf("a pass-through proxy with only WebSocket backends listens on TCP %s", p.Addr.TCP)
	}
	waitHTTP(t, "http://"+p.Addr.Admin+"/pool", func(b []byte) bool {
		var pool []poolMember
		return jsonInto(b, &pool) && len(pool) == 3 && pool[0].State == "ready"
	})
	serverOf := func(key string) (string, error) {
		c, err := client.Dial(ctxT(t), "ws://"+p.Addr.WS+"/ws?session="+key, client.Options{})
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.Server(), nil
	}
	seen := map[string]string{}
	spread := map[string]int{}
	for k := 0; k < 24; k++ {
		key := fmt.Sprintf("k%d", k)
		a, err := serverOf(key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := serverOf(key)
		if err != nil || a != b {
			t.Fatalf("key %s reached %s then %s (%v)", key, a, b, err)
		}
		seen[key] = a
		spread[a]++
	}
	if len(spread) < 3 {
		t.Errorf("24 keys reached %v, want all 3 gateways", spread)
	}
	// SIGKILL k0's gateway: its keys go elsewhere, no other key moves.
	victim := seen["k0"]
	_ = procs[victim].Signal(syscall.SIGKILL)
	<-procs[victim].Done()
	for key, was := range seen {
		got, err := serverOf(key)
		if err != nil {
			t.Fatalf("key %s after %s died: %v", key, victim, err)
		}
		if got == victim || (was != victim && got != was) {
			t.Errorf("key %s: was %s, now %s (dead: %s)", key, was, got, victim)
		}
	}
}
